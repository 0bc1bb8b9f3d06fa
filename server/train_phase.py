"""Asking sampled owners to train and sorting what comes back (DESIGN.md steps 1-3).

Every reply ends in exactly one bucket: accepted, failed (error or no answer),
rejected (failed validation, with the reason) or declined (the owner refused,
e.g. its privacy budget is spent). Too few accepted replies are retried or stop
the run with a clear error; the loop never continues silently with the old model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedcurate.config import Config
from fedcurate.protocol import (
    AGGREGATION_WEIGHT,
    CONFIG,
    PRIVACY,
    ROUNDS_TRAINED,
    declined_reason,
)
from fedcurate.seeding import numpy_rng
from server.errors import RoundFailedError, RunStoppedError
from server.grids import SubsetGrid, content_bytes
from server.nodes import NodeDirectory
from server.privacy import PrivacyMonitor
from server.validation import check_train_metrics

log = logging.getLogger(__name__)


@dataclass
class TrainPhase:
    """What came back from the owners asked to train in one round."""

    sampled: list[str]
    accepted: dict[str, Message] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    declined: dict[str, str] = field(default_factory=dict)
    bytes_down: int = 0
    bytes_up: int = 0
    attempts: int = 1

    def problems(self) -> str:
        """Every owner that did not contribute, and why."""
        return f"failed: {self.failed}; rejected: {self.rejected}; declined: {self.declined}"


def sample_owners(config: Config, names: list[str], server_round: int, purpose: str) -> list[str]:
    """A seeded sample of owner names for ``purpose`` (``sample-train``/``sample-eval``)."""
    fraction = config.fraction_train if purpose == "sample-train" else config.fraction_evaluate
    count = min(len(names), max(1, round(fraction * len(names))))
    rng = numpy_rng(config.seed, purpose, server_round)
    return sorted(str(n) for n in rng.choice(sorted(names), size=count, replace=False))


#: Checks the update part of a reply (plaintext arrays or ciphertexts); name, content.
UpdateCheck = Callable[[str, RecordDict], str | None]


class TrainRequest:
    """One round's training requests and the sorting of their replies.

    Parameters
    ----------
    config : Config
        The experiment.
    grid : Grid
        The run's grid.
    nodes : NodeDirectory
        Owner names and node ids.
    privacy : PrivacyMonitor
        Collects the owners' privacy summaries.
    updates_received : dict
        Owner name -> updates the server has received from it (told to owners
        so one that lost its privacy ledger cannot silently restart its budget).
    """

    def __init__(
        self,
        config: Config,
        grid: Grid,
        nodes: NodeDirectory,
        privacy: PrivacyMonitor,
        updates_received: dict[str, int],
    ) -> None:
        self.config = config
        self.grid = grid
        self.nodes = nodes
        self.privacy = privacy
        self.updates_received = updates_received

    def run(
        self,
        server_round: int,
        strategy: Strategy,
        arrays: ArrayRecord,
        check_update: UpdateCheck,
        assign_weights: Callable[[list[str]], dict[str, float]] | None = None,
    ) -> TrainPhase:
        """Ask the sampled owners to train, retrying while too few replies are valid.

        ``assign_weights``: the aggregation weight to send each sampled owner
        (encrypted aggregation: owners multiply their update by it).
        """
        sampled = sample_owners(self.config, self.nodes.owner_names, server_round, "sample-train")
        weights = assign_weights(sampled) if assign_weights else None
        for attempt in range(1, self.config.round_retries + 2):
            phase = self._ask(
                server_round,
                strategy=strategy,
                arrays=arrays,
                sampled=sampled,
                check_update=check_update,
                weights=weights,
            )
            phase.attempts = attempt
            if len(phase.accepted) >= self.config.min_train_replies:
                return phase
            if not phase.failed and not phase.rejected:
                raise RunStoppedError(
                    f"round {server_round}: every sampled owner declined to train "
                    f"({phase.declined})"
                )
            log.warning(
                "round %d attempt %d: %d valid replies, need %d (%s)",
                server_round,
                attempt,
                len(phase.accepted),
                self.config.min_train_replies,
                phase.problems(),
            )
        raise RoundFailedError(
            f"round {server_round}: {len(phase.accepted)} valid replies after "
            f"{phase.attempts} attempts, min_train_replies={self.config.min_train_replies}; "
            f"{phase.problems()}"
        )

    def _ask(
        self,
        server_round: int,
        *,
        strategy: Strategy,
        arrays: ArrayRecord,
        sampled: list[str],
        check_update: UpdateCheck,
        weights: dict[str, float] | None,
    ) -> TrainPhase:
        phase = TrainPhase(sampled=sampled)
        view = SubsetGrid(self.grid, [self.nodes.owners[name] for name in sampled])
        configured = strategy.configure_train(server_round, arrays, ConfigRecord(), view)
        messages = [self._personalise(message, weights) for message in configured]
        phase.bytes_down = sum(content_bytes(m.content) for m in messages)
        accepted: dict[str, Message] = {}
        for reply in self.grid.send_and_receive(messages, timeout=self.config.round_timeout):
            name = self.nodes.name_of(reply.metadata.src_node_id)
            if reply.has_error():
                phase.failed[name] = f"error reply: {reply.error.reason}"
                continue
            phase.bytes_up += content_bytes(reply.content)
            if self._declined(server_round, name, reply.content, phase):
                continue
            self.updates_received[name] = self.updates_received.get(name, 0) + 1
            problem = check_train_metrics(
                reply.content, with_data_metrics=not self.privacy.withholds_data_metrics
            ) or check_update(name, reply.content)
            if problem:
                phase.rejected[name] = problem
                log.warning("round %d: rejected the reply of %s: %s", server_round, name, problem)
            else:
                accepted[name] = reply
        self._record_silence(phase, accepted)
        phase.accepted = dict(sorted(accepted.items()))
        return phase

    def _record_silence(self, phase: TrainPhase, accepted: dict[str, Message]) -> None:
        answered = accepted.keys() | phase.failed.keys() | phase.rejected.keys()
        for name in phase.sampled:
            if name not in answered | phase.declined.keys():
                phase.failed[name] = f"no reply within {self.config.round_timeout:.0f}s"

    def _personalise(self, message: Message, weights: dict[str, float] | None) -> Message:
        """A message of its own for one owner (Flower's strategies share one RecordDict)."""
        name = self.nodes.name_of(message.metadata.dst_node_id)
        content = message.content
        config = ConfigRecord(dict(content.config_records[CONFIG]))
        config[ROUNDS_TRAINED] = self.updates_received.get(name, 0)
        if weights is not None:
            config[AGGREGATION_WEIGHT] = weights[name]
        personal = RecordDict({**content.array_records, CONFIG: config})
        return Message(
            personal,
            dst_node_id=message.metadata.dst_node_id,
            message_type=message.metadata.message_type,
        )

    def _declined(
        self, server_round: int, name: str, content: RecordDict, phase: TrainPhase
    ) -> bool:
        """Record an owner's privacy summary; ``True`` when it declined to train."""
        reason = declined_reason(content)
        if PRIVACY in content.config_records:
            self.privacy.observe(
                name, content.config_records[PRIVACY], server_round, reason is not None
            )
        if reason is not None:
            phase.declined[name] = reason
            log.info("round %d: %s declined: %s", server_round, name, reason)
        return reason is not None
