"""The ServerApp's resumable round loop.

Flower's ``Strategy.start()`` has no per-round hook, no checkpoint and always
counts from round 1, so fedcurate drives the strategy's ``configure_*`` /
``aggregate_*`` methods itself. One round (DESIGN.md section 2):

1. sample owners by name with a generator seeded by ``(seed, round)`` and ask
   them to train (:mod:`server.train_phase`);
2. sort replies into accepted / failed / rejected / declined, with reasons;
3. value and select owners (curator) and aggregate, in plaintext or under CKKS
   (:mod:`server.aggregation`), through the strategy's ``aggregate_train``;
4. evaluate on the test set, the curator's validation split and the owners
   (:mod:`server.evaluation`); keep the best model by validation accuracy;
5. checkpoint everything, append the round's record, print a progress line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import Array, ArrayRecord
from flwr.serverapp import Grid

from fedcurate.config import Config, config_to_dict
from fedcurate.crypto import resolve_preset
from fedcurate.curation.ledger import ContributionLedger
from fedcurate.data import build_federation, owner_name
from fedcurate.io import atomic_write_pickle, atomic_write_text
from fedcurate.models import ParamLayout, build_model, model_to_record
from fedcurate.protocol import METRICS, TrainMetrics
from fedcurate.reporting import RoundProgress, RunOutputs
from fedcurate.reporting.report import LEDGER_FILE, render_report
from server.aggregation import Aggregate, EncryptedAggregation, PlaintextAggregation
from server.checkpoint import CheckpointStore, ServerState, experiment_fingerprint
from server.curator_link import CuratorNode, InProcessCurator
from server.errors import RoundFailedError, RunStoppedError
from server.evaluation import Evaluations, Metrics
from server.nodes import AttributedGrid, NodeDirectory, discover_nodes
from server.privacy import PrivacyMonitor
from server.strategies import build_strategy, load_strategy_state_dict, strategy_state_dict
from server.train_phase import TrainPhase, TrainRequest

log = logging.getLogger(__name__)

Pipeline = PlaintextAggregation | EncryptedAggregation


@dataclass
class RunTotals:
    """Running totals that end up in ``summary.json`` (checkpointed)."""

    bytes_up: int = 0
    bytes_down: int = 0
    curator_bytes: int = 0
    train_bytes_up: int = 0
    train_replies: int = 0
    best_round: int = 0
    best_accuracy: float = float("-inf")
    best_score: float = float("-inf")
    updates_received: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data copy."""
        state = dict(vars(self))
        state["updates_received"] = dict(self.updates_received)
        state["seconds"] = dict(self.seconds)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        for key, value in state.items():
            setattr(self, key, value)


def needs_curator_node(config: Config) -> bool:
    """Whether the run has a curator node: it holds the CKKS secret key."""
    return config.crypto.name == "ckks"


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
        self.config_dict = config_to_dict(config)
        # Every exchange of the run (discovery, training, evaluation, curator)
        # goes through this grid: replies attributed to the node asked, pulled promptly.
        self.grid = AttributedGrid(grid)
        self.outputs = RunOutputs(run_dir)
        self.federation = build_federation(config)
        self.model = build_model(config.model, self.federation.spec, config.seed)
        self.layout = ParamLayout.of(model_to_record(self.model))
        self.privacy = PrivacyMonitor(config)
        central = self.privacy.central
        self.strategy = build_strategy(config, central.noise_multiplier if central else None)
        self.checkpoints = CheckpointStore(run_dir / "checkpoints", experiment_fingerprint(config))
        self.best_model_path = run_dir / "checkpoints" / "best.pkl"
        self.totals = RunTotals()
        self.progress = RoundProgress(config.num_rounds)
        self.in_process_curator = (
            InProcessCurator(config, self.federation)
            if config.curator.name != "none" and not needs_curator_node(config)
            else None
        )
        self.nodes = NodeDirectory()
        # The curator's ledger, kept from each verdict's round entry.
        self.ledger = ContributionLedger()
        self.curator_node: CuratorNode | None = None

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        """Run (or resume) every remaining round and return the summary."""
        started = time.perf_counter()
        state = self._restore()
        self.nodes = discover_nodes(
            self.grid,
            self.config.num_clients,
            need_curator=needs_curator_node(self.config),
            timeout=self.config.round_timeout,
        )
        self.curator_node = self._curator_node()
        pipeline = self._pipeline(self.curator_node)
        evaluations = Evaluations(self.config, self.model, self.federation, self.curator_node)
        last, status = state, "completed"

        def elapsed() -> float:
            return state.wall_seconds + time.perf_counter() - started

        for server_round in range(state.round + 1, self.config.num_rounds + 1):
            try:
                last = self._run_round(server_round, last, pipeline, evaluations)
            except RunStoppedError as stop:
                status = f"stopped: {stop}"
                self.progress.message(f"run stopped early: {stop}")
                break
            except RoundFailedError as failure:
                # Resumable: the checkpoint of the last completed round stays.
                last.wall_seconds = elapsed()
                self.outputs.write_summary(self._summary(last, evaluations, f"failed: {failure}"))
                raise
            last.wall_seconds = elapsed()
            self.checkpoints.save(last)
            self.outputs.write_summary(self._summary(last, evaluations, status="running"))
        last.wall_seconds = elapsed()
        summary = self._summary(last, evaluations, status=status)
        self.outputs.write_summary(summary)
        if self.config.report:
            render_report(self.outputs.run_dir)
        return summary

    def _curator_node(self) -> CuratorNode | None:
        if self.nodes.curator is None:
            return None
        return CuratorNode(self.grid, self.nodes.curator, self.config.round_timeout)

    def _pipeline(self, node: CuratorNode | None) -> Pipeline:
        if node is None:
            return PlaintextAggregation(
                self.strategy,
                self.layout,
                self.in_process_curator,
                release=self.privacy.release if self.privacy.central else None,
            )
        context = node.public_context()
        scoring = self.config.curator.name == "first_order"
        expected = resolve_preset(self.config.crypto.preset, encrypted_scoring=scoring)
        if context.preset.name != expected.name:
            raise ValueError(
                f"the curator's key uses preset '{context.preset.name}', this run needs "
                f"'{expected.name}' (crypto.preset={self.config.crypto.preset}); provision new keys"
            )
        return EncryptedAggregation(self.strategy, self.layout, context, node, scoring)

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
        if self.in_process_curator is not None:
            self.in_process_curator.load_state_dict(state.components["curator"])
        if (ledger := state.components.get("ledger")) is not None:
            self.ledger.load_state_dict(ledger)
        self.outputs.truncate_metrics(state.round)
        return state

    # ---------------------------------------------------------------- round
    def _run_round(
        self,
        server_round: int,
        state: ServerState,
        pipeline: Pipeline,
        evaluations: Evaluations,
    ) -> ServerState:
        start = time.perf_counter()
        self.privacy.check_budget(server_round)
        request = TrainRequest(
            self.config, self.grid, self.nodes, self.privacy, self.totals.updates_received
        )
        phase = request.run(
            server_round,
            self.strategy,
            state.arrays,
            pipeline.check,
            self._weight_assigner(pipeline),
        )
        outcome = pipeline.aggregate(server_round, phase.accepted, state.arrays)
        arrays = outcome.arrays
        central = evaluations.central(arrays)
        validation = evaluations.validation(server_round, arrays)
        federated = evaluations.federated(
            server_round, arrays, self.grid, self.nodes, self.strategy
        )
        self._update_totals(phase, outcome)
        self._select_model(server_round, arrays, central, validation)
        record = self._round_record(server_round, phase, outcome, start)
        record.update(central=central, validation=validation, federated=federated)
        self.outputs.append_metrics(record)
        self.progress.round_done(record)
        return ServerState(
            round=server_round,
            arrays=_picklable(arrays),
            strategy=strategy_state_dict(self.strategy),
            components=self._components(),
        )

    def _weight_assigner(
        self, pipeline: Pipeline
    ) -> Callable[[list[str]], dict[str, float]] | None:
        """Under encryption owners weight their own update: ``p_i = n_i / Σ_sampled n_j``."""
        if not isinstance(pipeline, EncryptedAggregation):
            return None
        examples = self.nodes.examples

        def assign(sampled: list[str]) -> dict[str, float]:
            return pipeline.assign_weights({name: examples[name] for name in sampled})

        return assign

    def _components(self) -> dict[str, Any]:
        components: dict[str, Any] = {
            "totals": self.totals.state_dict(),
            "privacy": self.privacy.state_dict(),
            "ledger": self.ledger.state_dict(),
        }
        if self.in_process_curator is not None:
            components["curator"] = self.in_process_curator.state_dict()
        return components

    # -------------------------------------------------------------- records
    def _update_totals(self, phase: TrainPhase, outcome: Aggregate) -> None:
        totals = self.totals
        totals.bytes_up += phase.bytes_up
        totals.bytes_down += phase.bytes_down
        if self.curator_node is not None:
            totals.curator_bytes += self.curator_node.take_bytes()
        totals.train_bytes_up += phase.bytes_up
        totals.train_replies += len(phase.accepted) + len(phase.rejected)
        for stage, seconds in self._round_seconds(phase, outcome).items():
            totals.seconds[stage] = totals.seconds.get(stage, 0.0) + seconds
        if outcome.verdict is not None:
            self.ledger.record(outcome.verdict.entry)
            atomic_write_text(self.outputs.run_dir / LEDGER_FILE, self.ledger.report_json())

    @staticmethod
    def _round_seconds(phase: TrainPhase, outcome: Aggregate) -> dict[str, float]:
        """Seconds per stage; ``train`` is the owners' summed local training time."""
        train = sum(
            TrainMetrics.from_record(reply.content.metric_records[METRICS]).train_seconds
            for reply in phase.accepted.values()
        )
        return {"train": train, **outcome.seconds}

    def _select_model(
        self,
        server_round: int,
        arrays: ArrayRecord,
        central: Metrics | None,
        validation: Metrics | None,
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
        self, server_round: int, phase: TrainPhase, outcome: Aggregate, start: float
    ) -> dict[str, Any]:
        return {
            "round": server_round,
            "sampled": phase.sampled,
            "replied": list(phase.accepted),
            "failed": phase.failed,
            "rejected": phase.rejected,
            "declined": phase.declined,
            "attempts": phase.attempts,
            "train": dict(outcome.train_metrics) if outcome.train_metrics else {},
            "curator": outcome.verdict.decision.to_record() if outcome.verdict else None,
            "privacy": self.privacy.round_record(),
            "bytes_up": phase.bytes_up,
            "bytes_down": phase.bytes_down,
            "seconds": self._round_seconds(phase, outcome),
            "round_seconds": time.perf_counter() - start,
        }

    def _summary(self, state: ServerState, evaluations: Evaluations, status: str) -> dict[str, Any]:
        records = self.outputs.read_metrics()
        final = (records[-1]["central"] if records else None) or {"loss": None, "accuracy": None}
        totals = self.totals
        by_validation = evaluations.has_validation
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
            "communication": self._communication(),
            "timing": dict(totals.seconds),
            "privacy": self.privacy.summary(),
            "curator": self._curator_summary(),
            "corruption": {
                owner_name(i): kind for i, kind in sorted(self.federation.corruption.items())
            },
            "config": self.config_dict,
        }

    def _communication(self) -> dict[str, Any]:
        totals = self.totals
        per_param = (
            totals.train_bytes_up / (totals.train_replies * self.layout.size)
            if totals.train_replies
            else None
        )
        return {
            "bytes_up": totals.bytes_up,
            "bytes_down": totals.bytes_down,
            "bytes_up_per_param": per_param,
            "curator_bytes": totals.curator_bytes,
        }

    def _curator_summary(self) -> dict[str, Any] | None:
        if self.config.curator.name == "none" or not self.ledger.rounds:
            return None
        # Written with every round's summary: read the records, never serialise them.
        report = self.ledger.report_summary()
        return {
            "method": self.config.curator.name,
            "policy": self.config.curator.policy,
            "values": report["cumulative"],
            "reward_shares": report["reward_shares"],
            "standing": report["standing"],
            "excluded": self.ledger.excluded_at_end(),
            "evaluations": sum(entry.evaluations for entry in self.ledger.rounds),
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
