"""The curator facade the ServerApp calls once per round (DESIGN.md, steps 4-5).

Plaintext mode::

    curator = Curator.from_config(config, federation.validation, federation.spec)
    decision = curator.assess(server_round, updates, weights, global_weights)
    # aggregate with decision.weights (0 = left out); log decision.to_record();
    # checkpoint curator.state_dict(); write curator.ledger.report() to ledger.json

Encrypted mode (first-order method only; the curator never sees an update)::

    g = curator.validation_gradient(global_weights)        # sent to the server
    w = curator.sharpening_direction(global_weights)       # sent too (None: skip)
    # server: <p_i Δ_i, g> and <p_i Δ_i, w> on each ciphertext, masked;
    # the curator decrypts those scalars only
    decision = curator.assess_from_scores(
        server_round, products, weights, prescaled=True, sharpening=projections
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from torch import nn

from fedcurate.config import Config, CuratorConfig, TrainConfig
from fedcurate.curation.evaluator import ValidationEvaluator
from fedcurate.curation.first_order import descent_alignment
from fedcurate.curation.free_riding import PublicHistory, screen_scores, screen_updates
from fedcurate.curation.ledger import (
    ContributionLedger,
    OwnerRecord,
    RoundRecord,
    relative_values,
)
from fedcurate.curation.methods import (
    SCALAR_METHODS,
    VALUATION_METHODS,
    Valuation,
    ValuationContext,
    first_order_from_products,
)
from fedcurate.curation.policies import OwnerDecision, decide
from fedcurate.curation.quality import (
    ENCRYPTED_SIGNAL,
    InputSpan,
    data_signals,
    sharpening_direction,
)
from fedcurate.curation.rounds import RoundUpdates, check_participants
from fedcurate.curation.settings import check_curator_config
from fedcurate.data.arrays import ArrayDataset
from fedcurate.data.federation import DatasetSpec
from fedcurate.models.zoo import build_model
from fedcurate.seeding import numpy_rng


@dataclass(frozen=True)
class Decision:
    """The curator's verdict on one round.

    Attributes
    ----------
    round : int
        Server round.
    method, utility : str
        Valuation method and the unit of its values.
    values : dict[str, float]
        Owner name -> value this round.
    weights : dict[str, float]
        Owner name -> aggregation weight to use; 0 means left out. The server
        normalises them (only their ratios matter).
    reasons : dict[str, str]
        Owner name -> why it got its weight.
    evaluations : int
        Validation passes the valuation spent.
    note : str
        How the round was valued.
    """

    round: int
    method: str
    utility: str
    values: dict[str, float]
    weights: dict[str, float]
    reasons: dict[str, str]
    evaluations: int
    note: str

    @property
    def included(self) -> list[str]:
        """Owners whose updates enter the aggregate, sorted."""
        return sorted(name for name, weight in self.weights.items() if weight > 0.0)

    @property
    def excluded(self) -> dict[str, str]:
        """Owner name -> reason, for owners left out of the aggregate."""
        return {name: self.reasons[name] for name, w in sorted(self.weights.items()) if w <= 0.0}

    def to_record(self) -> dict[str, Any]:
        """JSON-serialisable summary for ``metrics.jsonl``."""
        return {
            "method": self.method,
            "utility": self.utility,
            "evaluations": self.evaluations,
            "values": dict(sorted(self.values.items())),
            "weights": dict(sorted(self.weights.items())),
            "excluded": self.excluded,
            "note": self.note,
        }


@dataclass(frozen=True)
class UpdateEvidence:
    """What the curator learns from the updates themselves besides their values.

    Attributes
    ----------
    signals : dict[str, dict[str, float]]
        Owner -> its data-quality signals (see :mod:`fedcurate.curation.quality`).
    alignment : dict[str, float]
        Owner -> descent alignment ``cos(Δ_i, -∇L_val(w_t))``.

    Under encryption the curator never sees an update: no alignment, and the
    only signal is the ``sharpening_projection`` scalar computed on the ciphertext.
    """

    signals: dict[str, dict[str, float]] = field(default_factory=dict)
    alignment: dict[str, float] = field(default_factory=dict)


class Curator:
    """Values each round's updates, decides weights and exclusions, keeps the ledger.

    Parameters
    ----------
    config : CuratorConfig
        Method (``name``), ``utility``, ``policy`` and their knobs.
    model : nn.Module
        Template of the global model's architecture (its weights are unused).
    validation : ArrayDataset
        The curator's validation set (also FLTrust's root set).
    train : TrainConfig, optional
        Local-training settings, used by FLTrust's root update.
    seed : int
        Experiment seed; each round's randomness derives from it and the round.
    """

    def __init__(
        self,
        config: CuratorConfig,
        model: nn.Module,
        validation: ArrayDataset,
        train: TrainConfig | None = None,
        seed: int = 0,
    ) -> None:
        check_curator_config(config)
        self.config = config
        self.evaluator = ValidationEvaluator(model, validation)
        self.validation = validation
        self.train = train if train is not None else TrainConfig()
        self.seed = seed
        self.ledger = ContributionLedger()
        # Recent global models, to recognise updates made of public information.
        self.public = PublicHistory(config.free_rider_memory)
        self._public_products: dict[str, float] = {}
        self.input_span = InputSpan.of(self.evaluator) if config.input_span_signal else None

    @classmethod
    def from_config(cls, config: Config, validation: ArrayDataset, spec: DatasetSpec) -> Curator:
        """The curator of an experiment, with the experiment's model and training settings."""
        model = build_model(config.model, spec, config.seed)
        return cls(config.curator, model, validation, config.train, config.seed)

    def _context(self, server_round: int) -> ValuationContext:
        rng = numpy_rng(self.seed, "curator", self.config.name, server_round)
        return ValuationContext(self.evaluator, self.validation, self.config, self.train, rng)

    def assess(
        self,
        server_round: int,
        updates: Mapping[str, np.ndarray],
        weights: Mapping[str, float],
        global_weights: np.ndarray,
    ) -> Decision:
        """Value the round's plaintext updates, decide weights, record the round.

        Parameters
        ----------
        server_round : int
            The round (strictly increasing across calls).
        updates : Mapping[str, np.ndarray]
            Owner name -> flat update ``Δ_i = w_i - w_t``.
        weights : Mapping[str, float]
            Owner name -> reported aggregation weight (e.g. number of examples).
        global_weights : np.ndarray
            ``w_t``, the flat global model the owners started from.
        """
        self.ledger.check_next(server_round)
        round_updates = RoundUpdates(np.asarray(global_weights, np.float64), updates, weights)
        self.public.observe(round_updates.global_weights)
        screened = screen_updates(
            round_updates.updates, self.public.changes(), self.config.free_rider_tolerance
        )
        method = VALUATION_METHODS[self.config.name]
        valuation = method(round_updates, self._context(server_round))
        evidence = self._update_evidence(round_updates, screened)
        return self._conclude(server_round, valuation, weights, screened, evidence)

    def _update_evidence(
        self, updates: RoundUpdates, screened: Mapping[str, str]
    ) -> UpdateEvidence:
        """Data-quality signals and descent alignment of the updates not screened (plaintext)."""
        judged = {name: updates.updates[name] for name in updates.owners if name not in screened}
        gradient = self.evaluator.loss_gradient(updates.global_weights)
        signals = data_signals(self.evaluator, updates, skip=screened)
        if self.input_span is not None:
            for name, extra in self.input_span.signals(updates, skip=screened).items():
                signals[name] = {**signals[name], **extra}
        return UpdateEvidence(signals=signals, alignment=descent_alignment(judged, gradient))

    def validation_gradient(self, global_weights: np.ndarray) -> np.ndarray:
        """``g_t = ∇L_val(w_t)``, flat float64 (step 4: sent to the server for ``⟨Δ_i, g_t⟩``).

        Call it every round before :meth:`assess_from_scores`: it also computes
        ``⟨w_t - w_{t-k}, g_t⟩`` for the recent global changes, against which the
        owners' scalars are screened for replays.
        """
        weights = np.asarray(global_weights, np.float64)
        gradient = self.evaluator.loss_gradient(weights)
        self.public.observe(weights)
        self._public_products = {
            f"the replay of w_t - w_(t-{k})": float(np.dot(change, gradient))
            for k, change in enumerate(self.public.changes(), start=1)
        }
        return gradient

    def sharpening_direction(self, global_weights: np.ndarray) -> np.ndarray | None:
        """``w_t`` on the weight matrices (step 4: sent to the server for ``⟨Δ_i, w⟩``).

        ``None`` when that part of ``w_t`` is all zero: there is nothing to project on.
        """
        return sharpening_direction(global_weights, self.evaluator.matrix_mask)

    def assess_from_scores(
        self,
        server_round: int,
        inner_products: Mapping[str, float],
        weights: Mapping[str, float],
        *,
        prescaled: bool = False,
        sharpening: Mapping[str, float] | None = None,
    ) -> Decision:
        """First-order valuation from decrypted scalars ``⟨Δ_i, g_t⟩`` only.

        Parameters
        ----------
        server_round : int
            The round (strictly increasing across calls).
        inner_products : Mapping[str, float]
            Owner name -> ``⟨Δ_i, g_t⟩`` with ``g_t`` from :meth:`validation_gradient`.
        weights : Mapping[str, float]
            Owner name -> aggregation weight ``p_i``.
        prescaled : bool
            True when each product was computed on ``p_i Δ_i`` (owners multiply by
            their weight before encrypting): the curator divides by ``p_i``.
        sharpening : Mapping[str, float], optional
            Owner name -> ``⟨Δ_i, w⟩`` with ``w`` from :meth:`sharpening_direction`
            (prescaled like ``inner_products``): the data-quality signal of the
            encrypted path. Omitted: credit is the only evidence.

        Raises
        ------
        ValueError
            The configured method needs plaintext updates.
        """
        if self.config.name not in SCALAR_METHODS:
            raise ValueError(
                f"curator.name={self.config.name} needs plaintext updates; with encrypted "
                f"updates use one of {list(SCALAR_METHODS)}"
            )
        self.ledger.check_next(server_round)
        check_participants(inner_products, weights)
        if sharpening is not None:
            check_participants(sharpening, weights)

        def unscaled(values: Mapping[str, float]) -> dict[str, float]:
            return {
                name: float(value) / (float(weights[name]) if prescaled else 1.0)
                for name, value in values.items()
            }

        products = unscaled(inner_products)
        screened = screen_scores(products, self._public_products, self.config.free_rider_tolerance)
        self._public_products = {}
        valuation = first_order_from_products(products, weights, self._context(server_round))
        # A screened update carries no data of its owner: no signal is read from it.
        signals = {
            name: {ENCRYPTED_SIGNAL: value}
            for name, value in unscaled(sharpening or {}).items()
            if name not in screened
        }
        evidence = UpdateEvidence(signals=signals)
        return self._conclude(server_round, valuation, weights, screened, evidence)

    def _conclude(
        self,
        server_round: int,
        valuation: Valuation,
        weights: Mapping[str, float],
        screened: Mapping[str, str],
        evidence: UpdateEvidence,
    ) -> Decision:
        """Turn values into credit, apply the policy and record the round in the ledger.

        ``evidence``: data-quality signals and alignment of the owners they were measured for.
        """
        credit = {
            name: min(share, 0.0) if name in screened else share
            for name, share in relative_values(valuation.values).items()
        }
        valued = _valued_round(
            server_round,
            valuation,
            credit=credit,
            weights=weights,
            screened=screened,
            evidence=evidence,
        )
        log = self.ledger.evidence.extended(valued.observations())
        base_weights = {name: float(weights[name]) for name in sorted(valuation.values)}
        decisions = decide(self.config.policy, log, base_weights, self.config)
        self.ledger.record(_decided(valued, decisions))
        return Decision(
            round=server_round,
            method=valuation.method,
            utility=valuation.utility,
            values=dict(valuation.values),
            weights={name: d.weight for name, d in decisions.items()},
            reasons={
                name: "; ".join([d.reason, *([screened[name]] if name in screened else [])])
                for name, d in decisions.items()
            },
            evaluations=valuation.evaluations,
            note=valuation.note,
        )

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint state: the ledger (JSON-serialisable) and the recent global models.

        The models are numpy arrays (a pickled checkpoint holds them); write
        ``ledger.report()`` to ``ledger.json``, not this.
        """
        return {"ledger": self.ledger.state_dict(), "public": self.public.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.ledger.load_state_dict(state["ledger"])
        self.public.load_state_dict(state["public"])


def _valued_round(
    server_round: int,
    valuation: Valuation,
    *,
    credit: Mapping[str, float],
    weights: Mapping[str, float],
    screened: Mapping[str, str],
    evidence: UpdateEvidence,
) -> RoundRecord:
    """The round as valued, before the policy decides: every owner at its reported weight."""
    owners = {
        name: OwnerRecord(
            value=float(valuation.values[name]),
            relative=credit[name],
            weight=float(weights[name]),
            included=True,
            reason="awaiting the policy",
            score=valuation.scores.get(name),
            screen=screened.get(name),
            signals=evidence.signals.get(name),
            alignment=evidence.alignment.get(name),
        )
        for name in sorted(valuation.values)
    }
    return RoundRecord(
        server_round,
        valuation.method,
        valuation.utility,
        valuation.evaluations,
        valuation.note,
        owners,
    )


def _decided(valued: RoundRecord, decisions: Mapping[str, OwnerDecision]) -> RoundRecord:
    """``valued`` with the policy's weight, inclusion and reason for every owner."""
    owners = {
        name: replace(
            owner,
            weight=decisions[name].weight,
            included=decisions[name].included,
            reason=decisions[name].reason,
        )
        for name, owner in valued.owners.items()
    }
    return replace(valued, owners=owners)
