"""Typed records that cross the wire between the ServerApp and the nodes.

Train and evaluate messages follow Flower's conventions (an ``arrays``
ArrayRecord, a ``config`` ConfigRecord, a ``metrics`` MetricRecord carrying
``num-examples``), so stock Flower strategies and clients interoperate when
privacy and encryption are off. fedcurate's own fields are declared here once
and parsed with validation on the receiving side.
"""

from __future__ import annotations

import json
import math
from dataclasses import Field, dataclass, fields
from typing import Any

from flwr.app import ConfigRecord, MetricRecord, RecordDict

from fedcurate.curation.curator import Decision
from fedcurate.curation.ledger import RoundRecord

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
NODE = "node"

NUM_EXAMPLES = "num-examples"
SERVER_ROUND = "server-round"
PROXIMAL_MU = "proximal-mu"

STATUS = "status"
PRIVACY = "privacy"
TIMING = "timing"
ROUNDS_TRAINED = "rounds-trained"
AGGREGATION_WEIGHT = "aggregation-weight"
ENCRYPTED_UPDATE = "encrypted-update"

DESCRIBE = "query.describe"

# What the server asks of the curator node (the CKKS secret-key holder).
CURATOR_PUBLIC_CONTEXT = "query.public_context"
CURATOR_GRADIENT = "query.validation_gradient"
CURATOR_ASSESS = "query.assess_scores"
CURATOR_DECRYPT = "query.decrypt_aggregate"
CURATOR_VALIDATE = "query.validate"
#: The curator's answer to CURATOR_GRADIENT: the public vectors the server multiplies
#: each encrypted update by, GRADIENT (always) and SHARPENING (when nonzero).
DIRECTIONS = "directions"
GRADIENT = "gradient"
SHARPENING = "sharpening"
#: Fields of CURATOR_ASSESS's ``scores`` record holding the masked inner products
#: with GRADIENT and with SHARPENING.
MASKED_FIELDS = {GRADIENT: "masked", SHARPENING: "masked-sharpening"}

ROLE_OWNER = "owner"
ROLE_CURATOR = "curator"
ROLES = (ROLE_OWNER, ROLE_CURATOR)


class ProtocolError(ValueError):
    """A record is missing a field or holds a value that cannot be right."""


@dataclass(frozen=True)
class NodeDescription:
    """A node's answer to ``query.describe``: who it is and how much data it trains on.

    The example count is the weight FedAvg gives the owner; it is public
    metadata in every FedAvg deployment (it travels with each update anyway).
    """

    role: str
    name: str
    num_examples: int = 0

    def to_content(self) -> RecordDict:
        """As message content."""
        record = ConfigRecord(
            {"role": self.role, "name": self.name, NUM_EXAMPLES: self.num_examples}
        )
        return RecordDict({NODE: record})

    @staticmethod
    def from_content(content: RecordDict) -> NodeDescription:
        """Parse and validate a ``query.describe`` reply."""
        try:
            record = content.config_records[NODE]
            role, name = str(record["role"]), str(record["name"])
            num_examples = int(record.get(NUM_EXAMPLES, 0))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as error:
            raise ProtocolError(f"describe reply lacks or mangles {error}") from None
        if role not in ROLES:
            raise ProtocolError(f"unknown role '{role}' (expected one of {ROLES})")
        if not name:
            raise ProtocolError("describe reply has an empty name")
        if role == ROLE_OWNER and num_examples <= 0:
            raise ProtocolError(f"owner '{name}' reports {num_examples} examples")
        return NodeDescription(role, name, num_examples)


@dataclass(frozen=True)
class TrainMetrics:
    """Metrics an owner reports with its update.

    ``train_loss`` and ``train_accuracy`` are measured on the owner's raw data:
    owners training with DP-SGD leave them out, since no DP guarantee covers them.
    """

    num_examples: int
    train_seconds: float
    train_loss: float | None = None
    train_accuracy: float | None = None

    def to_record(self) -> MetricRecord:
        """As a Flower MetricRecord with Flower's ``num-examples`` key."""
        return MetricRecord(
            {
                _wire(f.name): getattr(self, f.name)
                for f in fields(self)
                if getattr(self, f.name) is not None
            }
        )

    @staticmethod
    def wire_keys(with_data_metrics: bool) -> set[str]:
        """The exact metric keys of a train reply, with or without loss and accuracy."""
        return {
            _wire(f.name)
            for f in fields(TrainMetrics)
            if with_data_metrics or f.default is not None
        }

    @staticmethod
    def from_record(record: MetricRecord) -> TrainMetrics:
        """Parse and validate (known keys, positive example count, finite values)."""
        keys = set(record)
        if keys not in (TrainMetrics.wire_keys(True), TrainMetrics.wire_keys(False)):
            raise ProtocolError(f"unexpected metric keys {sorted(keys)}")
        present = [f for f in fields(TrainMetrics) if _wire(f.name) in keys]
        metrics = TrainMetrics(**_read_fields(present, record))  # type: ignore[arg-type]
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
        return EvalMetrics(**_read_fields(list(fields(EvalMetrics)), record))  # type: ignore[arg-type]


def declined_content(reason: str) -> RecordDict:
    """A reply saying the node declines the request, and why."""
    return RecordDict({STATUS: ConfigRecord({"declined": reason})})


def declined_reason(content: RecordDict) -> str | None:
    """Why a node declined, or ``None`` when the reply is not a refusal."""
    status = content.config_records.get(STATUS)
    return None if status is None else str(status.get("declined", "declined"))


def _wire(name: str) -> str:
    return name.replace("_", "-")


def _read_fields(wanted: list[Field[Any]], record: MetricRecord) -> dict[str, float | int]:
    values: dict[str, float | int] = {}
    for field in wanted:
        key = _wire(field.name)
        if key not in record:
            raise ProtocolError(f"metrics lack '{key}'")
        value = record[key]
        if isinstance(value, list) or not math.isfinite(float(value)):
            raise ProtocolError(f"metric '{key}' is not a finite number: {value!r}")
        values[field.name] = int(value) if field.type in ("int", int) else float(value)
    return values


@dataclass(frozen=True)
class CuratorVerdict:
    """The curator's :class:`~fedcurate.curation.Decision` on a round, as it crosses the wire.

    ``entry`` is the round's ledger entry; the server keeps its own copy of the
    ledger from these, so a message stays the size of one round however long
    the run (the whole ledger, sent every round, grew with it).
    """

    decision: Decision
    entry: RoundRecord

    def to_content(self) -> RecordDict:
        """As message content (parallel lists keyed by owner, sorted)."""
        decision = self.decision
        owners = sorted(decision.values)
        record = ConfigRecord(
            {
                "round": decision.round,
                "method": decision.method,
                "utility": decision.utility,
                "evaluations": decision.evaluations,
                "note": decision.note,
                "owners": owners,
                "values": [float(decision.values[o]) for o in owners],
                "weights": [float(decision.weights[o]) for o in owners],
                "reasons": [decision.reasons[o] for o in owners],
                "ledger_round": json.dumps(self.entry.to_dict()),
            }
        )
        return RecordDict({"verdict": record})

    @staticmethod
    def from_content(content: RecordDict) -> CuratorVerdict:
        """Parse and validate a verdict (every owner has a value, weight and reason)."""
        try:
            record = content.config_records["verdict"]
            owners = [str(o) for o in _list(record["owners"])]
            values = [float(v) for v in _list(record["values"])]
            weights = [float(w) for w in _list(record["weights"])]
            reasons = [str(r) for r in _list(record["reasons"])]
            header = {k: record[k] for k in ("round", "method", "utility", "evaluations", "note")}
        except (KeyError, TypeError, ValueError) as error:
            raise ProtocolError(f"curator verdict lacks or mangles {error}") from None
        if not len(owners) == len(values) == len(weights) == len(reasons):
            raise ProtocolError("curator verdict columns differ in length")
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise ProtocolError(f"curator verdict has invalid weights {weights}")
        decision = Decision(
            round=int(header["round"]),  # type: ignore[arg-type]
            method=str(header["method"]),
            utility=str(header["utility"]),
            values=dict(zip(owners, values, strict=True)),
            weights=dict(zip(owners, weights, strict=True)),
            reasons=dict(zip(owners, reasons, strict=True)),
            evaluations=int(header["evaluations"]),  # type: ignore[arg-type]
            note=str(header["note"]),
        )
        return CuratorVerdict(decision, _ledger_entry(record, decision))


def _ledger_entry(record: ConfigRecord, decision: Decision) -> RoundRecord:
    """The verdict's ledger entry, which must be of the decision's round and owners."""
    try:
        entry = RoundRecord.from_dict(json.loads(str(record["ledger_round"])))
    except (KeyError, TypeError, ValueError) as error:
        raise ProtocolError(f"curator verdict's ledger entry lacks or mangles {error}") from None
    if entry.round != decision.round or set(entry.owners) != set(decision.values):
        raise ProtocolError(
            f"curator verdict's ledger entry (round {entry.round}, owners "
            f"{sorted(entry.owners)}) is not of its decision (round {decision.round}, "
            f"owners {sorted(decision.values)})"
        )
    return entry


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value
