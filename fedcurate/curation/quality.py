"""Data-quality signals: what an owner's update reveals about the data it was trained on.

Contribution values measure what an update does to the validation loss. Under
strong heterogeneity that cannot tell a corrupted owner from an honest one
whose data simply differ: on Dirichlet(0.3) digits and on Synthetic(1, 1),
owners with noisy labels are often valued *above* honest ones, because their
updates pull the model less far towards their own share of the data
(measured while building ``simulations/bench_curator.py``). Three signals look
at something heterogeneity changes much less; each is higher for cleaner data.

* ``label_quality``, ``-log`` of the *fit floor*: the mean cross-entropy of the
  owner's local model ``w_t + Δ_i`` over the :data:`FIT_FRACTION` of validation
  examples it fits best. A model trained on correctly labelled data fits the
  examples that resemble its data almost perfectly, whichever those are; one
  trained on wrong labels keeps a loss floor even where it predicts correctly
  (the premise of confident learning, Northcutt, Jiang & Chuang, JAIR 2021).
* ``sharpening``, ``cos(Δ_i, w_t)`` over the weight matrices (biases and other
  vectors left out): whether the update makes the current decision function
  more confident. Noise in the data acts as a regulariser that shrinks the
  weights: input noise as Tikhonov regularisation (Bishop, Neural Computation
  1995), label noise as label smoothing, whose targets cannot be fitted
  confidently. Clean data, skewed or not, sharpen the model instead.
* ``breadth``, the share of validation examples whose loss the local model
  lowers: corrupted data improve fewer of them. It complements the others
  under DP, whose noise blurs single inner products but hits every owner alike.

Known blind spot: a sign-flipped update ``w_t - Δ_i`` fits other owners'
examples *better* and sharpens where the honest one would not; its
contribution and descent alignment give it away instead.

These signals need the update itself, so they exist in plaintext mode only.
Under encryption the curator sees scalars only: besides the first-order score it
gets ``sharpening_projection``, ``⟨Δ_i, w_t⟩`` over the weight matrices, which
the server computes on the ciphertext like the score (:func:`sharpening_direction`
is the public plaintext it multiplies by). It is the numerator of ``sharpening``
without the update's norm (a norm needs the update squared, which the complex
slot packing cannot give without a conjugation key), so it also grows with the
size of the update; it is the data-quality evidence of the encrypted path.
Policies compare signals across the round's participants
(:mod:`fedcurate.curation.evidence`).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from fedcurate.curation.evaluator import ValidationEvaluator
from fedcurate.curation.rounds import RoundUpdates, cosine

#: Share of the validation set an owner's local model is judged on (its best fits).
FIT_FRACTION = 0.1
#: Fit floors below this count as perfect (the log stays finite).
PERFECT_FIT = 1e-12
#: The signal that tells clean data from corrupted labels (see above).
LABEL_QUALITY = "label_quality"
#: The signals :func:`data_signals` measures, in order.
SIGNALS = (LABEL_QUALITY, "sharpening", "breadth")
#: The signal of the encrypted path (see :func:`sharpening_direction`).
ENCRYPTED_SIGNAL = "sharpening_projection"


def fit_floor(losses: np.ndarray, fraction: float = FIT_FRACTION) -> float:
    """Mean of the lowest ``ceil(fraction * n)`` per-example losses (at least one)."""
    if losses.size == 0:
        raise ValueError("no per-example losses to take a fit floor of")
    count = max(1, int(np.ceil(fraction * losses.size)))
    return float(np.partition(losses, count - 1)[:count].mean())


def sharpening(update: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> float:
    """``cos(Δ, w)`` restricted to ``mask`` (0 when either part is zero)."""
    return cosine(update[mask], weights[mask])


def sharpening_direction(weights: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """``w_t`` on the weight matrices, 0 elsewhere (``None`` when that part is all zero).

    The public plaintext whose inner product with an encrypted update is the
    :data:`ENCRYPTED_SIGNAL`; an all-zero direction (e.g. a model initialised at
    zero) carries no signal and cannot be encoded.
    """
    direction = np.where(mask, np.asarray(weights, dtype=np.float64), 0.0)
    return direction if np.any(direction) else None


def data_signals(
    evaluator: ValidationEvaluator, updates: RoundUpdates, skip: Collection[str] = ()
) -> dict[str, dict[str, float]]:
    """Owner -> its :data:`SIGNALS`, for every participant except those in ``skip``.

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
    judged = [name for name in updates.owners if name not in skip]
    if not judged:
        return {}
    start_losses = evaluator.example_losses(updates.global_weights)
    mask = evaluator.matrix_mask
    signals = {}
    for name in judged:
        update = np.asarray(updates.updates[name], dtype=np.float64)
        losses = evaluator.example_losses(updates.global_weights + update)
        signals[name] = {
            LABEL_QUALITY: -float(np.log(max(fit_floor(losses), PERFECT_FIT))),
            "sharpening": sharpening(update, updates.global_weights, mask),
            "breadth": float(np.mean(losses < start_losses)),
        }
    return signals
