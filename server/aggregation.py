"""From accepted replies to the next global model, with or without encryption.

Both pipelines end in the Flower strategy's ``aggregate_train`` so server
optimisers (FedAdam, FedYogi, FedAvgM) behave the same either way:

* :class:`PlaintextAggregation` lets the in-process curator (if any) value the
  updates, drops excluded owners, re-weights the others and hands the replies
  to the strategy as they are (robust strategies see every update).
* :class:`EncryptedAggregation` validates ciphertexts, has the curator node
  score owners on the very ciphertexts it will sum (DESIGN.md step 4), sums
  the selected ones without any secret key, has the curator decrypt only that
  sum, and hands the strategy one reply carrying the weighted mean update.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import Strategy
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from fedcurate.crypto import (
    CkksContext,
    CryptoError,
    EncryptedVector,
    from_wire,
    masked_inner_product,
    prepare_inner_product,
    sum_encrypted,
    weighted_sum_encrypted,
)
from fedcurate.models import ParamLayout
from fedcurate.protocol import (
    ARRAYS,
    ENCRYPTED_UPDATE,
    METRICS,
    NUM_EXAMPLES,
    TIMING,
    CuratorVerdict,
    TrainMetrics,
)
from server.curator_link import CuratorNode, InProcessCurator
from server.validation import check_plain_update


@dataclass
class Aggregate:
    """The outcome of one round's aggregation.

    Attributes
    ----------
    arrays : ArrayRecord
        The next global model.
    train_metrics : MetricRecord or None
        Owners' train metrics averaged by example counts.
    verdict : CuratorVerdict or None
        The curator's decision, when a curator runs.
    seconds : dict
        Time spent per stage (``encrypt`` as reported by owners, ``aggregate``,
        ``decrypt``, ``curator``).
    """

    arrays: ArrayRecord
    train_metrics: MetricRecord | None
    verdict: CuratorVerdict | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def _train_metrics(replies: Mapping[str, Message]) -> MetricRecord | None:
    contents = [reply.content for reply in replies.values()]
    return aggregate_metricrecords(contents, NUM_EXAMPLES) if contents else None


def _num_examples(reply: Message) -> int:
    return TrainMetrics.from_record(reply.content.metric_records[METRICS]).num_examples


class PlaintextAggregation:
    """Aggregate plaintext updates (``crypto=none``).

    Parameters
    ----------
    strategy : Strategy
        The Flower strategy.
    layout : ParamLayout
        Layout of the global model.
    curator : InProcessCurator or None
        The curator, when ``curator`` is not ``none``.
    release : callable, optional
        Client-level DP: told the number of updates about to be averaged (the
        noise is scaled to it and the release accounted); owners are then
        averaged with equal weights, as the sensitivity analysis assumes.
    """

    def __init__(
        self,
        strategy: Strategy,
        layout: ParamLayout,
        curator: InProcessCurator | None,
        release: Callable[[Strategy, int], None] | None = None,
    ) -> None:
        self.strategy = strategy
        self.layout = layout
        self.curator = curator
        self.release = release

    def check(self, name: str, content: RecordDict) -> str | None:
        """Why ``name``'s update cannot be aggregated, or ``None``."""
        return check_plain_update(content, self.layout)

    def aggregate(
        self, server_round: int, replies: Mapping[str, Message], global_arrays: ArrayRecord
    ) -> Aggregate:
        """Value (optionally), select and aggregate the accepted replies."""
        verdict, seconds = None, {}
        if self.curator is not None:
            start = time.perf_counter()
            verdict = self._assess(server_round, replies, global_arrays)
            seconds["curator"] = time.perf_counter() - start
        selected = [
            _reweighted(reply, self._weight(name, verdict))
            for name, reply in sorted(replies.items())
            if verdict is None or verdict.decision.weights[name] > 0
        ]
        if self.release is not None:
            self.release(self.strategy, len(selected))
        arrays, _ = self.strategy.aggregate_train(server_round, selected)
        if arrays is None:
            raise ValueError(f"round {server_round}: the strategy produced no model")
        return Aggregate(arrays, _train_metrics(replies), verdict, seconds)

    def _weight(self, name: str, verdict: CuratorVerdict | None) -> float | None:
        """The FedAvg weight to give ``name`` (``None``: its own example count)."""
        if self.release is not None:
            return 1.0
        return verdict.decision.weights[name] if verdict else None

    def _assess(
        self, server_round: int, replies: Mapping[str, Message], global_arrays: ArrayRecord
    ) -> CuratorVerdict:
        assert self.curator is not None
        start = self.layout.flatten(global_arrays)
        updates = {
            name: self.layout.flatten(reply.content.array_records[ARRAYS]) - start
            for name, reply in replies.items()
        }
        weights = {name: float(_num_examples(reply)) for name, reply in replies.items()}
        return self.curator.assess(server_round, updates, weights, start)


def _reweighted(reply: Message, weight: float | None) -> Message:
    """The reply with its FedAvg weight (``num-examples``) replaced, unless ``None``."""
    if weight is None:
        return reply
    metrics = MetricRecord(dict(reply.content.metric_records[METRICS]))
    metrics[NUM_EXAMPLES] = weight
    content = RecordDict({ARRAYS: reply.content.array_records[ARRAYS], METRICS: metrics})
    return _with_content(reply, content)


def _with_content(reply: Message, content: RecordDict) -> Message:
    """A copy of ``reply`` (same sender and metadata) carrying ``content``."""
    clone = copy.copy(reply)
    clone.content = content
    return clone


class EncryptedAggregation:
    """Aggregate CKKS-encrypted updates (``crypto=ckks``) through the curator node.

    Owners encrypt ``p_i Δ_i`` with ``p_i = n_i / Σ_sampled n_j``; the server
    sums the selected ciphertexts (weighted by the curator's factors when it
    re-weights), the curator decrypts the sum only, and the server divides by
    the total weight of the selected owners.

    Parameters
    ----------
    strategy : Strategy
        A FedAvg-family Flower strategy (robust strategies need plaintext).
    layout : ParamLayout
        Layout of the global model.
    context : CkksContext
        The curator's public context (the server has no secret key).
    node : CuratorNode
        The curator node.
    scoring : bool
        Whether the curator scores owners (``curator=first_order``).
    """

    def __init__(
        self,
        strategy: Strategy,
        layout: ParamLayout,
        context: CkksContext,
        node: CuratorNode,
        scoring: bool,
    ) -> None:
        self.strategy = strategy
        self.layout = layout
        self.context = context
        self.node = node
        self.scoring = scoring
        self.weights: dict[str, float] = {}
        self._vectors: dict[str, EncryptedVector] = {}

    def assign_weights(self, examples: Mapping[str, int]) -> dict[str, float]:
        """``p_i`` of this round's sampled owners (sent to them with the model)."""
        total = float(sum(examples.values()))
        self.weights = {name: count / total for name, count in examples.items()}
        self._vectors = {}
        return self.weights

    def check(self, name: str, content: RecordDict) -> str | None:
        """Validate ``name``'s ciphertexts against the public context (and keep them)."""
        record = content.config_records.get(ENCRYPTED_UPDATE)
        if record is None or content.array_records:
            return f"expected an '{ENCRYPTED_UPDATE}' record and no plaintext arrays"
        try:
            vector = from_wire(record, self.context)
        except CryptoError as error:
            return f"invalid ciphertext: {error}"
        if vector.length != self.layout.size:
            return f"encrypts {vector.length} values, the model has {self.layout.size}"
        self._vectors[name] = vector
        return None

    def aggregate(
        self, server_round: int, replies: Mapping[str, Message], global_arrays: ArrayRecord
    ) -> Aggregate:
        """Score (optionally), select, sum, decrypt the sum, and step the strategy."""
        seconds = {"encrypt": sum(_encrypt_seconds(r) for r in replies.values())}
        names = sorted(replies)
        verdict = (
            self._assess(server_round, names, global_arrays, seconds) if self.scoring else None
        )
        factors = self._factors(names, verdict)
        start = time.perf_counter()
        total = self._sum(factors)
        seconds["aggregate"] = seconds.get("aggregate", 0.0) + time.perf_counter() - start
        start = time.perf_counter()
        summed = self.node.decrypt_aggregate(total)
        seconds["decrypt"] = time.perf_counter() - start
        weight = sum(self.weights[n] * f for n, f in factors.items())
        mean_update = summed / weight
        arrays = self._step(server_round, global_arrays, mean_update, factors, replies)
        return Aggregate(arrays, _train_metrics(replies), verdict, seconds)

    def _assess(
        self,
        server_round: int,
        names: list[str],
        global_arrays: ArrayRecord,
        seconds: dict[str, float],
    ) -> CuratorVerdict:
        start = time.perf_counter()
        directions = self.node.scoring_directions(server_round, global_arrays)
        seconds["curator"] = time.perf_counter() - start
        start = time.perf_counter()
        masked = {}
        for direction, vector in directions.items():
            operand = prepare_inner_product(vector, self.context)
            masked[direction] = {
                n: masked_inner_product(self._vectors[n], operand, self.context) for n in names
            }
        seconds["aggregate"] = time.perf_counter() - start
        start = time.perf_counter()
        verdict = self.node.assess_scores(server_round, masked, {n: self.weights[n] for n in names})
        seconds["curator"] += time.perf_counter() - start
        return verdict

    def _factors(self, names: list[str], verdict: CuratorVerdict | None) -> dict[str, float]:
        """Multiplier of each selected owner's ``p_i Δ_i`` (1 unless the curator re-weights)."""
        if verdict is None:
            return dict.fromkeys(names, 1.0)
        chosen = verdict.decision.weights
        return {n: chosen[n] / self.weights[n] for n in names if chosen[n] > 0}

    def _sum(self, factors: Mapping[str, float]) -> EncryptedVector:
        vectors = [self._vectors[n] for n in sorted(factors)]
        if all(np.isclose(f, 1.0) for f in factors.values()):
            return sum_encrypted(vectors, self.context)
        return weighted_sum_encrypted(vectors, [factors[n] for n in sorted(factors)], self.context)

    def _step(
        self,
        server_round: int,
        global_arrays: ArrayRecord,
        mean_update: np.ndarray,
        factors: Mapping[str, float],
        replies: Mapping[str, Message],
    ) -> ArrayRecord:
        """The strategy's step from one reply holding ``w_t`` + the mean update."""
        averaged = self.layout.unflatten(self.layout.flatten(global_arrays) + mean_update)
        examples = sum(_num_examples(replies[n]) for n in factors)
        content = RecordDict({ARRAYS: averaged, METRICS: MetricRecord({NUM_EXAMPLES: examples})})
        reply = _with_content(replies[sorted(factors)[0]], content)
        arrays, _ = self.strategy.aggregate_train(server_round, [reply])
        if arrays is None:
            raise ValueError(f"round {server_round}: the strategy produced no model")
        return arrays


def _encrypt_seconds(reply: Message) -> float:
    timing = reply.content.config_records.get(TIMING)
    value = timing.get("encrypt-seconds", 0.0) if timing is not None else 0.0
    return float(value)  # type: ignore[arg-type]
