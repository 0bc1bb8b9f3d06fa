"""Registry of valuation methods: one round's updates in, per-owner values out.

Every method takes a :class:`~fedcurate.curation.rounds.RoundUpdates` and a
:class:`ValuationContext` and returns a :class:`Valuation`: the values, the
utility they are measured in, the validation passes spent (distinct coalition
models for coalition methods, one gradient pass for ``first_order``, the
training epochs of the root update for ``fltrust``) and a note on how the round
was valued. Method names are the ``curator.name`` options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from fedcurate.config import CuratorConfig, TrainConfig
from fedcurate.curation.banzhaf import msr_banzhaf
from fedcurate.curation.evaluator import ValidationEvaluator
from fedcurate.curation.exact import exact_shapley
from fedcurate.curation.first_order import first_order_scores, first_order_shapley
from fedcurate.curation.fltrust import root_update, trust_scores
from fedcurate.curation.games import CoalitionModels
from fedcurate.curation.gtg import GTGResult, GTGSettings, gtg_shapley
from fedcurate.curation.loo import leave_one_out
from fedcurate.curation.rounds import RoundUpdates, check_participants
from fedcurate.data.arrays import ArrayDataset
from fedcurate.seeding import torch_generator

#: Unit of first-order values: predicted decrease of the validation loss.
FIRST_ORDER_UTILITY = "first_order_loss"
#: Unit of FLTrust values: ReLU of the cosine with the root update.
TRUST_UTILITY = "trust"


@dataclass(frozen=True)
class Valuation:
    """Per-owner values of one round.

    Attributes
    ----------
    method : str
        Registry name of the method.
    utility : str
        What the values measure: ``accuracy``, ``loss`` (negative validation
        loss), ``first_order_loss`` or ``trust``.
    values : dict[str, float]
        Owner name -> value (higher = more helpful).
    evaluations : int
        Validation passes spent.
    note : str
        How the round was valued (truncation, fallback, sampling), for the ledger.
    scores : dict[str, float]
        Per-owner scores the values were derived from, where they differ (the
        first-order scores ``s_i``); empty otherwise.
    """

    method: str
    utility: str
    values: dict[str, float]
    evaluations: int
    note: str
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ValuationContext:
    """What a method may use besides the round's updates.

    Attributes
    ----------
    evaluator : ValidationEvaluator
        Scores flat weights on the curator's validation set.
    validation : ArrayDataset
        The same validation set (FLTrust trains its root update on it).
    config : CuratorConfig
        Method knobs.
    train : TrainConfig
        Local-training settings, for FLTrust's root update.
    rng : np.random.Generator
        Randomness of this round's valuation.
    """

    evaluator: ValidationEvaluator
    validation: ArrayDataset
    config: CuratorConfig
    train: TrainConfig
    rng: np.random.Generator


ValuationMethod = Callable[[RoundUpdates, ValuationContext], Valuation]


def exact_shapley_method(updates: RoundUpdates, context: ValuationContext) -> Valuation:
    """Exact per-round Shapley value over all ``2^n`` coalitions (n <= 12): the reference."""
    utility = context.config.utility
    models = CoalitionModels(context.evaluator, updates)
    values = exact_shapley(models.game(utility))
    note = f"all {2 ** len(updates.owners)} coalitions evaluated"
    return Valuation("exact_shapley", utility, values, models.evaluations, note)


def gtg_settings(config: CuratorConfig, utility: str, round_gain: float) -> GTGSettings:
    """GTG tolerances for ``utility``.

    Accuracy uses the paper's absolute tolerances. The loss is continuous and has
    no natural absolute scale, so its round is skipped only when the model did
    not move it at all, and a prefix is truncated once it is within
    ``gtg_loss_prefix_fraction`` of the round's loss change.
    """
    if utility == "accuracy":
        round_tolerance, prefix_tolerance = config.gtg_round_tolerance, config.gtg_prefix_tolerance
    else:
        round_tolerance = 0.0
        prefix_tolerance = config.gtg_loss_prefix_fraction * abs(round_gain)
    return GTGSettings(
        round_tolerance=round_tolerance,
        prefix_tolerance=prefix_tolerance,
        min_permutations=config.gtg_min_permutations,
        max_permutations=config.gtg_max_permutations,
        convergence_window=config.gtg_convergence_window,
        convergence_tolerance=config.gtg_convergence_tolerance,
        estimator=config.gtg_estimator,
    )


def _run_gtg(models: CoalitionModels, utility: str, context: ValuationContext) -> GTGResult:
    game = models.game(utility)
    round_gain = game.value(game.players) - game.value(())
    return gtg_shapley(game, gtg_settings(context.config, utility, round_gain), context.rng)


def _gtg_note(result: GTGResult) -> str:
    if result.truncated_round:
        return f"round truncated: v(N) - v(empty) = {result.round_gain:+.4g}, every owner gets 0"
    stop = "converged" if result.converged else "stopped at the permutation cap"
    return f"{result.permutations} permutations, {stop}"


def gtg_shapley_method(updates: RoundUpdates, context: ValuationContext) -> Valuation:
    """GTG-Shapley (Liu et al., ACM TIST 2022), with a loss fallback for flat accuracy.

    Once accuracy plateaus, between-round truncation would skip every round and
    give late free riders and honest owners the same 0, silently. With
    ``gtg_loss_fallback`` a round whose accuracy barely moved is valued with the
    validation loss instead (same coalition models, so the fallback reuses
    ``v(∅)`` and ``v(N)``); the ledger records which utility valued each round.
    """
    config = context.config
    models = CoalitionModels(context.evaluator, updates)
    result = _run_gtg(models, config.utility, context)
    utility, note = config.utility, _gtg_note(result)
    if result.truncated_round and utility == "accuracy" and config.gtg_loss_fallback:
        fallback = _run_gtg(models, "loss", context)
        utility = "loss"
        note = (
            f"accuracy moved {result.round_gain:+.4f}, within the round tolerance "
            f"{config.gtg_round_tolerance}: valued by validation loss instead; "
            f"{_gtg_note(fallback)}"
        )
        result = fallback
    return Valuation("gtg_shapley", utility, result.values, models.evaluations, note)


def loo_method(updates: RoundUpdates, context: ValuationContext) -> Valuation:
    """Leave-one-out: ``v(N) - v(N - {i})`` (n + 1 evaluations)."""
    utility = context.config.utility
    models = CoalitionModels(context.evaluator, updates)
    values = leave_one_out(models.game(utility))
    return Valuation("loo", utility, values, models.evaluations, "leave-one-out")


def banzhaf_method(updates: RoundUpdates, context: ValuationContext) -> Valuation:
    """Data Banzhaf, maximum-sample-reuse estimator (Wang & Jia, AISTATS 2023)."""
    utility = context.config.utility
    models = CoalitionModels(context.evaluator, updates)
    values = msr_banzhaf(models.game(utility), context.config.banzhaf_samples, context.rng)
    note = f"MSR over {context.config.banzhaf_samples} sampled coalitions"
    return Valuation("banzhaf", utility, values, models.evaluations, note)


def inner_products(updates: RoundUpdates, gradient: np.ndarray) -> dict[str, float]:
    """``⟨Δ_i, g⟩`` per owner: what the server computes on ciphertexts under encryption."""
    return {name: float(np.dot(updates.updates[name], gradient)) for name in updates.owners}


def first_order_from_products(
    products: Mapping[str, float], weights: Mapping[str, float], context: ValuationContext
) -> Valuation:
    """First-order Shapley values from the scalars ``⟨Δ_i, g⟩`` alone (the encrypted path).

    Values are the Shapley values of the first-order utility (see
    :mod:`fedcurate.curation.first_order`); the scores ``s_i`` come along.
    """
    check_participants(products, weights)
    scores = first_order_scores(products)
    values = first_order_shapley(
        scores, weights, context.config.first_order_permutations, context.rng
    )
    note = "one gradient pass; Shapley value of the first-order utility"
    return Valuation("first_order", FIRST_ORDER_UTILITY, values, 1, note, scores)


def first_order_method(updates: RoundUpdates, context: ValuationContext) -> Valuation:
    """First-order scores ``-⟨∇L_val(w_t), Δ_i⟩`` and their closed-form Shapley value."""
    gradient = context.evaluator.loss_gradient(updates.global_weights)
    return first_order_from_products(inner_products(updates, gradient), updates.weights, context)


def fltrust_method(updates: RoundUpdates, context: ValuationContext) -> Valuation:
    """FLTrust trust scores ``ReLU(cos(Δ_i, Δ_0))`` (Cao et al., NDSS 2021)."""
    seed = int(context.rng.integers(2**62))
    reference = root_update(
        context.evaluator,
        context.validation,
        updates.global_weights,
        context.train,
        torch_generator(seed, "fltrust-root"),
    )
    values = trust_scores(updates.updates, reference)
    note = f"root update trained for {context.train.local_epochs} epochs on the validation set"
    return Valuation("fltrust", TRUST_UTILITY, values, context.train.local_epochs, note)


VALUATION_METHODS: dict[str, ValuationMethod] = {
    "exact_shapley": exact_shapley_method,
    "gtg_shapley": gtg_shapley_method,
    "loo": loo_method,
    "banzhaf": banzhaf_method,
    "first_order": first_order_method,
    "fltrust": fltrust_method,
}

#: Methods that work from the per-owner inner products alone (encrypted updates).
SCALAR_METHODS = ("first_order",)
