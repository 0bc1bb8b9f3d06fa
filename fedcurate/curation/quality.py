"""Label-quality evidence: how closely an owner's local model fits what it fits best.

Contribution values measure what an update does to the validation loss. Under
strong heterogeneity that cannot tell a corrupted owner from an honest one
whose data simply differ: on Dirichlet(0.3) digits and on Synthetic(1, 1),
owners with noisy labels are often valued *above* honest ones, because their
updates pull the model less far towards their own share of the data
(measured while building ``simulations/bench_curator.py``).

Label quality looks at something heterogeneity does not change. A model trained
on correctly labelled data fits the validation examples that resemble its data
almost perfectly, whichever examples those are; a model trained on wrong labels
cannot, and keeps a loss floor even where it predicts correctly (the premise of
confident learning, Northcutt, Jiang & Chuang, JAIR 2021). The *fit floor* of
owner ``i`` is the mean cross-entropy of its local model ``w_t + Δ_i`` over the
:data:`FIT_FRACTION` of validation examples it fits best; the evidence is
``-log(fit floor)`` (higher = cleaner labels; log, because clean and noisy fits
differ by orders of magnitude). Policies compare it across the round's
participants (:mod:`fedcurate.curation.evidence`).

It needs the update itself, so it exists in plaintext mode only; under
encryption the curator sees one scalar per owner and this evidence is absent.
Known blind spot: a sign-flipped update ``w_t - Δ_i`` fits other owners'
examples *better*, so this evidence does not flag it (its contribution does).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from fedcurate.curation.evaluator import ValidationEvaluator
from fedcurate.curation.rounds import RoundUpdates

#: Share of the validation set an owner's local model is judged on (its best fits).
FIT_FRACTION = 0.1
#: Fit floors below this count as perfect (the log stays finite).
PERFECT_FIT = 1e-12


def fit_floor(losses: np.ndarray, fraction: float = FIT_FRACTION) -> float:
    """Mean of the lowest ``ceil(fraction * n)`` per-example losses (at least one)."""
    if losses.size == 0:
        raise ValueError("no per-example losses to take a fit floor of")
    count = max(1, int(np.ceil(fraction * losses.size)))
    return float(np.partition(losses, count - 1)[:count].mean())


def label_quality(
    evaluator: ValidationEvaluator, updates: RoundUpdates, skip: Collection[str] = ()
) -> dict[str, float]:
    """``-log(fit floor)`` of every participant's local model, except those in ``skip``.

    Parameters
    ----------
    evaluator : ValidationEvaluator
        Scores flat weights on the curator's validation set.
    updates : RoundUpdates
        ``w_t`` and the participants' updates.
    skip : Collection[str]
        Owners not to judge (updates screened as public information carry no
        data of their owner).
    """
    quality = {}
    for name in updates.owners:
        if name in skip:
            continue
        local = updates.global_weights + np.asarray(updates.updates[name], dtype=np.float64)
        floor = fit_floor(evaluator.example_losses(local))
        quality[name] = -float(np.log(max(floor, PERFECT_FIT)))
    return quality
