"""Typed records that cross the wire between the ServerApp and the nodes.

Train and evaluate messages follow Flower's conventions (an ``arrays``
ArrayRecord, a ``config`` ConfigRecord, a ``metrics`` MetricRecord carrying
``num-examples``), so stock Flower strategies and clients interoperate when
privacy and encryption are off. fedcurate's own fields are declared here once
and parsed with validation on the receiving side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from flwr.app import ConfigRecord, MetricRecord, RecordDict

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
NODE = "node"

NUM_EXAMPLES = "num-examples"
SERVER_ROUND = "server-round"
PROXIMAL_MU = "proximal-mu"

DESCRIBE = "query.describe"

ROLE_OWNER = "owner"
ROLE_CURATOR = "curator"
ROLES = (ROLE_OWNER, ROLE_CURATOR)


class ProtocolError(ValueError):
    """A record is missing a field or holds a value that cannot be right."""


@dataclass(frozen=True)
class NodeDescription:
    """A node's answer to ``query.describe``: who it is."""

    role: str
    name: str

    def to_content(self) -> RecordDict:
        """As message content."""
        return RecordDict({NODE: ConfigRecord({"role": self.role, "name": self.name})})

    @staticmethod
    def from_content(content: RecordDict) -> NodeDescription:
        """Parse and validate a ``query.describe`` reply."""
        try:
            record = content[NODE]
            role, name = str(record["role"]), str(record["name"])
        except KeyError as error:
            raise ProtocolError(f"describe reply lacks {error}") from None
        if role not in ROLES:
            raise ProtocolError(f"unknown role '{role}' (expected one of {ROLES})")
        if not name:
            raise ProtocolError("describe reply has an empty name")
        return NodeDescription(role, name)


@dataclass(frozen=True)
class TrainMetrics:
    """Metrics an owner reports with its update."""

    num_examples: int
    train_loss: float
    train_accuracy: float
    train_seconds: float

    def to_record(self) -> MetricRecord:
        """As a Flower MetricRecord with Flower's ``num-examples`` key."""
        return MetricRecord({_wire(f.name): getattr(self, f.name) for f in fields(self)})

    @staticmethod
    def wire_keys() -> set[str]:
        """The exact metric keys of a train reply."""
        return {_wire(f.name) for f in fields(TrainMetrics)}

    @staticmethod
    def from_record(record: MetricRecord) -> TrainMetrics:
        """Parse and validate (exact keys, positive example count, finite values)."""
        extra = set(record) - TrainMetrics.wire_keys()
        if extra:
            raise ProtocolError(f"unexpected metric keys {sorted(extra)}")
        values = _read_fields(TrainMetrics, record)
        metrics = TrainMetrics(**values)  # type: ignore[arg-type]
        if metrics.num_examples <= 0:
            raise ProtocolError(f"{NUM_EXAMPLES} must be positive, got {metrics.num_examples}")
        return metrics


@dataclass(frozen=True)
class EvalMetrics:
    """Metrics an owner reports after evaluating the global model."""

    num_examples: int
    loss: float
    accuracy: float

    def to_record(self) -> MetricRecord:
        """As a Flower MetricRecord with Flower's ``num-examples`` key."""
        return MetricRecord({_wire(f.name): getattr(self, f.name) for f in fields(self)})

    @staticmethod
    def from_record(record: MetricRecord) -> EvalMetrics:
        """Parse and validate."""
        return EvalMetrics(**_read_fields(EvalMetrics, record))  # type: ignore[arg-type]


def _wire(name: str) -> str:
    return name.replace("_", "-")


def _read_fields(cls: type, record: MetricRecord) -> dict[str, float | int]:
    values: dict[str, float | int] = {}
    for field in fields(cls):
        key = _wire(field.name)
        if key not in record:
            raise ProtocolError(f"metrics lack '{key}'")
        value = record[key]
        if isinstance(value, list) or not math.isfinite(float(value)):
            raise ProtocolError(f"metric '{key}' is not a finite number: {value!r}")
        values[field.name] = int(value) if field.type in ("int", int) else float(value)
    return values
