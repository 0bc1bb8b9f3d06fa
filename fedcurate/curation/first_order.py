"""First-order contribution scores and the Shapley value of the first-order utility.

Scores in the style of TracIn (Pruthi et al., NeurIPS 2020), DIG-FL (Wang et al.,
ICDE 2022) and in-run Data Shapley (Wang et al., 2024): with ``g = ∇L_val(w_t)``
the validation-loss gradient at the global model, moving the model by ``Δ_i``
changes the validation loss by ``⟨g, Δ_i⟩`` to first order. The score is

    s_i = -⟨g, Δ_i⟩    (positive = the update lowers the validation loss = helpful).

The score is linear in the update, so under encryption the server computes the
inner product on the ciphertext and the curator only ever sees that scalar.
This module therefore works from scalars alone; computing ``g`` is the
evaluator's job (:meth:`ValidationEvaluator.loss_gradient`).

First-order utility of a coalition: the predicted loss decrease of its model,
``v(S) = Σ_{j∈S} p_j s_j / Σ_{j∈S} p_j`` and ``v(∅) = 0``. Its Shapley value needs
no model evaluation:

* equal weights (unweighted mean): closed form with the harmonic number ``H_n``,
  ``φ_i = (H_n / n) s_i + ((1 - H_n) / (n (n - 1))) Σ_{j≠i} s_j``;
* FedAvg weights: no short closed form, but each ``v(S)`` costs O(|S|) on
  scalars, so exact enumeration up to :data:`MAX_ENUMERATED_OWNERS` owners and
  permutation sampling beyond.

First order ignores interactions between updates (the second-order terms
``⟨Δ_i, H Δ_j⟩`` of in-run Data Shapley).

The *descent alignment* ``cos(Δ_i, -g)`` is the same inner product without the
update's scale: whether an update points downhill on the validation loss at
all, whatever its owner's data size. Honest updates of skewed owners point
sideways (slightly negative at worst); a sign-flipped one points uphill.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedcurate.curation.exact import shapley_from_table
from fedcurate.curation.rounds import cosine

#: Largest federation whose weighted first-order Shapley value is enumerated (2^20 sums).
MAX_ENUMERATED_OWNERS = 20


def first_order_scores(inner_products: Mapping[str, float]) -> dict[str, float]:
    """``s_i = -⟨∇L_val(w_t), Δ_i⟩``: first-order decrease of the validation loss.

    Parameters
    ----------
    inner_products : Mapping[str, float]
        Owner name -> ``⟨Δ_i, g⟩`` for its own (unweighted) update ``Δ_i``.
    """
    return {name: -float(product) for name, product in inner_products.items()}


def descent_alignment(updates: Mapping[str, np.ndarray], gradient: np.ndarray) -> dict[str, float]:
    """``cos(Δ_i, -g)`` per owner (0 for a zero update or a zero gradient)."""
    descent = -np.asarray(gradient)
    return {name: cosine(update, descent) for name, update in updates.items()}


def harmonic_number(n: int) -> float:
    """``H_n = 1 + 1/2 + ... + 1/n``."""
    return float(np.sum(1.0 / np.arange(1, n + 1)))


def mean_utility_shapley(scores: Mapping[str, float]) -> dict[str, float]:
    """Closed-form Shapley value of ``v(S) = mean_{j∈S} s_j`` (``v(∅) = 0``)."""
    names = sorted(scores)
    n = len(names)
    if n == 1:
        return {names[0]: float(scores[names[0]])}
    own = harmonic_number(n) / n
    others = (1.0 - harmonic_number(n)) / (n * (n - 1))
    total = sum(float(scores[name]) for name in names)
    return {name: own * scores[name] + others * (total - scores[name]) for name in names}


def weighted_mean_shapley_exact(
    scores: Mapping[str, float], weights: Mapping[str, float]
) -> dict[str, float]:
    """Shapley value of ``v(S) = Σ p_j s_j / Σ p_j`` by enumerating every coalition."""
    names = sorted(scores)
    n = len(names)
    if n > MAX_ENUMERATED_OWNERS:
        raise ValueError(
            f"enumerating 2^{n} coalitions is too costly (limit {MAX_ENUMERATED_OWNERS} owners)"
        )
    s = np.array([scores[name] for name in names], dtype=np.float64)
    p = np.array([weights[name] for name in names], dtype=np.float64)
    masks = np.arange(2**n)
    total_weight, weighted_sum = np.zeros(2**n), np.zeros(2**n)
    for j in range(n):
        member = (masks >> j) & 1
        total_weight += member * p[j]
        weighted_sum += member * (p[j] * s[j])
    worth = np.divide(weighted_sum, total_weight, out=np.zeros(2**n), where=total_weight > 0)
    return dict(zip(names, shapley_from_table(worth).tolist(), strict=True))


def weighted_mean_shapley_sampled(
    scores: Mapping[str, float],
    weights: Mapping[str, float],
    permutations: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Permutation-sampling estimate of the Shapley value of the weighted mean utility."""
    names = sorted(scores)
    n = len(names)
    s = np.array([scores[name] for name in names], dtype=np.float64)
    p = np.array([weights[name] for name in names], dtype=np.float64)
    orders = rng.permuted(np.tile(np.arange(n), (permutations, 1)), axis=1)
    prefix_worth = np.cumsum(p[orders] * s[orders], axis=1) / np.cumsum(p[orders], axis=1)
    marginals = np.diff(prefix_worth, axis=1, prepend=0.0)
    totals = np.zeros(n)
    np.add.at(totals, orders, marginals)
    return dict(zip(names, (totals / permutations).tolist(), strict=True))


def first_order_shapley(
    scores: Mapping[str, float],
    weights: Mapping[str, float],
    permutations: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Shapley value of the first-order utility with aggregation weights ``weights``.

    Equal weights use the closed form; otherwise exact enumeration up to
    :data:`MAX_ENUMERATED_OWNERS` owners, and ``permutations`` sampled
    permutations beyond.
    """
    distinct_weights = {float(weights[name]) for name in scores}
    if len(distinct_weights) == 1:
        return mean_utility_shapley(scores)
    if len(scores) <= MAX_ENUMERATED_OWNERS:
        return weighted_mean_shapley_exact(scores, weights)
    return weighted_mean_shapley_sampled(scores, weights, permutations, rng)
