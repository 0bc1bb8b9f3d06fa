"""The ServerApp's resumable round loop.

Flower's ``Strategy.start()`` has no per-round hook, no checkpoint and always
counts from round 1, so fedcurate drives the strategy's ``configure_*`` /
``aggregate_*`` methods itself. One round:

1. sample owners by name with a generator seeded by ``(seed, round)``;
2. ``configure_train`` on a grid restricted to them, send, collect replies;
3. drop failed or invalid replies with a logged reason (retry or stop when too
   few remain: never continue silently with the old model);
4. ``aggregate_train`` over the accepted replies, sorted by owner name so the
   floating-point sum is the same on every backend;
5. central evaluation on the held-out test set, federated evaluation on owners;
6. checkpoint, metrics record, progress line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid

from fedcurate.config import Config, config_to_dict
from fedcurate.data import ArrayDataset, build_federation, owner_name
from fedcurate.io import atomic_write_pickle
from fedcurate.models import ParamLayout, build_model, load_record, model_to_record
from fedcurate.protocol import (
    CONFIG,
    METRICS,
    PRIVACY,
    ROUNDS_TRAINED,
    EvalMetrics,
    ProtocolError,
    declined_reason,
)
from fedcurate.reporting import RoundProgress, RunOutputs
from fedcurate.reporting.report import render_report
from fedcurate.seeding import numpy_rng
from fedcurate.training import evaluate
from server.checkpoint import CheckpointStore, ServerState, experiment_fingerprint
from server.grids import SubsetGrid, content_bytes
from server.nodes import NodeDirectory, discover_nodes
from server.privacy import PrivacyMonitor
from server.strategies import build_strategy, load_strategy_state_dict, strategy_state_dict
from server.validation import check_plain_update, check_train_metrics

log = logging.getLogger(__name__)


class RoundFailedError(RuntimeError):
    """A round kept getting too few valid replies; the run stops rather than stall."""


class RunStoppedError(RuntimeError):
    """The run cannot go on by design (e.g. every owner's privacy budget is spent)."""


@dataclass
class TrainPhase:
    """What came back from the owners asked to train in one round."""

    sampled: list[str]
    accepted: list[Message] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    declined: dict[str, str] = field(default_factory=dict)
    bytes_down: int = 0
    bytes_up: int = 0
    attempts: int = 1

    def problems(self) -> str:
        """Every owner that did not contribute, and why."""
        return f"failed: {self.failed}; rejected: {self.rejected}; declined: {self.declined}"


@dataclass
class RunTotals:
    """Running totals that end up in ``summary.json`` (checkpointed)."""

    bytes_up: int = 0
    bytes_down: int = 0
    train_bytes_up: int = 0
    train_replies: int = 0
    best_round: int = 0
    best_accuracy: float = float("-inf")
    best_score: float = float("-inf")
    updates_received: dict[str, int] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data copy."""
        state = dict(vars(self))
        state["updates_received"] = dict(self.updates_received)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        for key, value in state.items():
            setattr(self, key, value)


class FederatedRun:
    """One federated run driven by the ServerApp.

    Parameters
    ----------
    config : Config
        The experiment.
    grid : Grid
        Flower grid of the run (simulation engine, in-process or deployment).
    run_dir : Path
        Where outputs and checkpoints go; a checkpoint there is resumed.
    """

    def __init__(self, config: Config, grid: Grid, run_dir: Path) -> None:
        self.config = config
        self.grid = grid
        self.outputs = RunOutputs(run_dir)
        self.federation = build_federation(config)
        self.model = build_model(config.model, self.federation.spec, config.seed)
        self.layout = ParamLayout.of(model_to_record(self.model))
        self.strategy = build_strategy(config)
        self.checkpoints = CheckpointStore(run_dir / "checkpoints", experiment_fingerprint(config))
        self.best_model_path = run_dir / "checkpoints" / "best.pkl"
        self.totals = RunTotals()
        self.privacy = PrivacyMonitor(config)
        self.progress = RoundProgress(config.num_rounds)
        self.nodes = NodeDirectory()

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        """Run (or resume) every remaining round and return the summary."""
        started = time.perf_counter()
        state = self._restore()
        self.nodes = discover_nodes(
            self.grid,
            self.config.num_clients,
            need_curator=False,
            timeout=self.config.round_timeout,
        )
        last, status = state, "completed"
        for server_round in range(state.round + 1, self.config.num_rounds + 1):
            try:
                last = self._run_round(server_round, last)
            except RunStoppedError as stop:
                status = f"stopped: {stop}"
                self.progress.message(f"run stopped early: {stop}")
                break
            last.wall_seconds = state.wall_seconds + time.perf_counter() - started
            self.checkpoints.save(last)
            self.outputs.write_summary(self._summary(last, status="running"))
        last.wall_seconds = state.wall_seconds + time.perf_counter() - started
        summary = self._summary(last, status=status)
        self.outputs.write_summary(summary)
        render_report(self.outputs.run_dir)
        return summary

    def _restore(self) -> ServerState:
        state = self.checkpoints.load_latest()
        if state is None:
            self.outputs.truncate_metrics(0)
            return ServerState(round=0, arrays=model_to_record(self.model))
        self.progress.message(
            f"resuming after round {state.round} from {self.checkpoints.directory}"
        )
        load_strategy_state_dict(self.strategy, state.strategy)
        self.totals.load_state_dict(state.components["totals"])
        self.privacy.load_state_dict(state.components["privacy"])
        self.outputs.truncate_metrics(state.round)
        return state

    # ---------------------------------------------------------------- round
    def _run_round(self, server_round: int, state: ServerState) -> ServerState:
        start = time.perf_counter()
        phase = self._train_phase(server_round, state.arrays)
        arrays, train_metrics = self.strategy.aggregate_train(server_round, phase.accepted)
        if arrays is None:
            raise RoundFailedError(f"round {server_round}: the strategy produced no model")
        central = self._evaluate(arrays, self.federation.test)
        validation = self._evaluate(arrays, self.federation.validation)
        federated = self._federated_evaluation(server_round, arrays)
        self._update_totals(server_round, phase)
        self._select_model(server_round, arrays, central, validation)
        record = self._round_record(
            server_round,
            phase=phase,
            train_metrics=train_metrics,
            central=central,
            federated=federated,
            start=start,
        )
        record["validation"] = validation
        record["declined"] = phase.declined
        record["privacy"] = self.privacy.round_record()
        self.outputs.append_metrics(record)
        self.progress.round_done(record)
        return ServerState(
            round=server_round,
            arrays=_picklable(arrays),
            strategy=strategy_state_dict(self.strategy),
            components={"totals": self.totals.state_dict(), "privacy": self.privacy.state_dict()},
        )

    def _sample_owners(self, server_round: int, fraction: float, purpose: str) -> list[str]:
        names = self.nodes.owner_names
        count = min(len(names), max(1, round(fraction * len(names))))
        rng = numpy_rng(self.config.seed, purpose, server_round)
        return sorted(str(n) for n in rng.choice(names, size=count, replace=False))

    def _train_phase(self, server_round: int, arrays: ArrayRecord) -> TrainPhase:
        sampled = self._sample_owners(server_round, self.config.fraction_train, "sample-train")
        for attempt in range(1, self.config.round_retries + 2):
            phase = self._ask_to_train(server_round, arrays, sampled)
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

    def _ask_to_train(
        self, server_round: int, arrays: ArrayRecord, sampled: list[str]
    ) -> TrainPhase:
        phase = TrainPhase(sampled=sampled)
        view = SubsetGrid(self.grid, [self.nodes.owners[name] for name in sampled])
        messages = [
            self._personalise(message)
            for message in self.strategy.configure_train(server_round, arrays, ConfigRecord(), view)
        ]
        phase.bytes_down = sum(content_bytes(m.content) for m in messages)
        replies = list(self.grid.send_and_receive(messages, timeout=self.config.round_timeout))
        by_name: dict[str, Message] = {}
        for reply in replies:
            name = self.nodes.name_of(reply.metadata.src_node_id)
            if reply.has_error():
                phase.failed[name] = f"error reply: {reply.error.reason}"
                continue
            phase.bytes_up += content_bytes(reply.content)
            if self._declined(server_round, name, reply.content, phase):
                continue
            self.totals.updates_received[name] = self.totals.updates_received.get(name, 0) + 1
            problem = self._check_train_reply(reply.content)
            if problem:
                phase.rejected[name] = problem
                log.warning("round %d: rejected reply of %s: %s", server_round, name, problem)
            else:
                by_name[name] = reply
        answered = (
            by_name.keys() | phase.failed.keys() | phase.rejected.keys() | phase.declined.keys()
        )
        for name in sampled:
            if name not in answered:
                phase.failed[name] = f"no reply within {self.config.round_timeout:.0f}s"
        phase.accepted = [by_name[name] for name in sorted(by_name)]
        return phase

    def _personalise(self, message: Message) -> Message:
        """A message of its own for one owner (Flower's strategies share one RecordDict).

        Each owner is told how many of its updates the server has received, so an
        owner that lost its privacy ledger cannot silently restart its budget.
        """
        name = self.nodes.name_of(message.metadata.dst_node_id)
        content = message.content
        config = ConfigRecord(dict(content.config_records[CONFIG]))
        config[ROUNDS_TRAINED] = self.totals.updates_received.get(name, 0)
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

    def _check_train_reply(self, content: RecordDict) -> str | None:
        """Why a train reply cannot be aggregated, or ``None`` when it can."""
        with_data_metrics = not self.privacy.enabled
        return check_train_metrics(content, with_data_metrics) or check_plain_update(
            content, self.layout
        )

    # ----------------------------------------------------------- evaluation
    def _evaluate(self, arrays: ArrayRecord, data: ArrayDataset) -> dict[str, float] | None:
        if len(data) == 0:
            return None
        load_record(self.model, arrays)
        result = evaluate(self.model, data)
        return {"loss": result.loss, "accuracy": result.accuracy}

    def _federated_evaluation(
        self, server_round: int, arrays: ArrayRecord
    ) -> dict[str, Any] | None:
        due = (
            server_round % self.config.evaluate_every == 0 or server_round == self.config.num_rounds
        )
        if self.config.fraction_evaluate == 0.0 or not due or self.privacy.enabled:
            return None
        sampled = self._sample_owners(server_round, self.config.fraction_evaluate, "sample-eval")
        view = SubsetGrid(self.grid, [self.nodes.owners[name] for name in sampled])
        messages = list(
            self.strategy.configure_evaluate(server_round, arrays, ConfigRecord(), view)
        )
        replies = self.grid.send_and_receive(messages, timeout=self.config.round_timeout)
        per_owner: dict[str, dict[str, float]] = {}
        valid: list[Message] = []
        for reply in replies:
            name = self.nodes.name_of(reply.metadata.src_node_id)
            if reply.has_error() or METRICS not in reply.content.metric_records:
                continue
            try:
                metrics = EvalMetrics.from_record(reply.content.metric_records[METRICS])
            except ProtocolError as error:
                log.warning("round %d: ignored evaluation of %s: %s", server_round, name, error)
                continue
            per_owner[name] = {"loss": metrics.loss, "accuracy": metrics.accuracy}
            valid.append(reply)
        aggregate = self.strategy.aggregate_evaluate(server_round, valid) if valid else None
        if aggregate is None:
            return None
        return {
            "loss": float(_scalar(aggregate, "loss")),
            "accuracy": float(_scalar(aggregate, "accuracy")),
            "per_owner": dict(sorted(per_owner.items())),
        }

    # -------------------------------------------------------------- records
    def _update_totals(self, server_round: int, phase: TrainPhase) -> None:
        totals = self.totals
        totals.bytes_up += phase.bytes_up
        totals.bytes_down += phase.bytes_down
        totals.train_bytes_up += phase.bytes_up
        totals.train_replies += len(phase.accepted) + len(phase.rejected)

    def _select_model(
        self,
        server_round: int,
        arrays: ArrayRecord,
        central: dict[str, float] | None,
        validation: dict[str, float] | None,
    ) -> None:
        """Keep the best model by the curator's validation accuracy.

        Selecting on the test set would leak it into the choice; only when the
        run has no validation split does the test accuracy decide.
        """
        judged = validation or central
        if judged is None or judged["accuracy"] <= self.totals.best_score:
            return
        self.totals.best_score = judged["accuracy"]
        self.totals.best_round = server_round
        self.totals.best_accuracy = central["accuracy"] if central else float("nan")
        atomic_write_pickle(
            self.best_model_path, {"round": server_round, "arrays": _picklable(arrays)}
        )

    def _round_record(
        self,
        server_round: int,
        *,
        phase: TrainPhase,
        train_metrics: MetricRecord | None,
        central: dict[str, float] | None,
        federated: dict[str, Any] | None,
        start: float,
    ) -> dict[str, Any]:
        replied = [self.nodes.name_of(m.metadata.src_node_id) for m in phase.accepted]
        return {
            "round": server_round,
            "sampled": phase.sampled,
            "replied": replied,
            "failed": phase.failed,
            "rejected": phase.rejected,
            "attempts": phase.attempts,
            "train": dict(train_metrics) if train_metrics else {},
            "central": central,
            "federated": federated,
            "bytes_up": phase.bytes_up,
            "bytes_down": phase.bytes_down,
            "round_seconds": time.perf_counter() - start,
        }

    def _summary(self, state: ServerState, status: str) -> dict[str, Any]:
        records = self.outputs.read_metrics()
        by_validation = len(self.federation.validation) > 0
        final = (records[-1]["central"] if records else None) or {"loss": None, "accuracy": None}
        totals = self.totals
        per_param = (
            totals.train_bytes_up / (totals.train_replies * self.layout.size)
            if totals.train_replies
            else None
        )
        return {
            "status": status,
            "rounds_completed": state.round,
            "num_clients": self.config.num_clients,
            "num_params": self.layout.size,
            "final": final,
            "best": {
                "round": totals.best_round or None,
                "accuracy": totals.best_accuracy if totals.best_round else None,
                "selected_by": "validation" if by_validation else "test",
                "validation_accuracy": totals.best_score
                if totals.best_round and by_validation
                else None,
            },
            "validation": records[-1].get("validation") if records else None,
            "wall_seconds": state.wall_seconds,
            "communication": {
                "bytes_up": totals.bytes_up,
                "bytes_down": totals.bytes_down,
                "bytes_up_per_param": per_param,
            },
            "privacy": self.privacy.summary(),
            "curator": None,
            "corruption": {
                owner_name(i): kind for i, kind in sorted(self.federation.corruption.items())
            },
            "config": config_to_dict(self.config),
        }


def _picklable(arrays: ArrayRecord) -> ArrayRecord:
    """A copy of ``arrays`` that pickles.

    Sending a record through a deployment grid caches memoryview chunks on each
    ``Array`` (Flower's zero-copy upload), and pickle refuses memoryviews; the
    checkpoint and the best model therefore store a fresh copy.
    """
    return ArrayRecord(
        {
            name: Array(
                dtype=array.dtype, shape=array.shape, stype=array.stype, data=bytes(array.data)
            )
            for name, array in arrays.items()
        }
    )


def _scalar(record: MetricRecord, key: str) -> float:
    value = record[key]
    if isinstance(value, list):
        raise ProtocolError(f"aggregated metric '{key}' is a list")
    return float(value)
