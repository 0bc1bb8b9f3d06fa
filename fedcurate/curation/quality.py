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

An optional fourth signal (``curator.input_span_signal=true``, plaintext only),
``input_span``, is minus the share of the first layer's update that lies
outside the span of the validation inputs: the eigenvectors of their second
moment ``E[x xᵀ]`` carrying :data:`INPUT_SPAN_SHARE` of its trace (a row of a
dense first layer's gradient is a sum of raw inputs, so updates from clean
data stay in that span). Noise added to an owner's inputs spreads its update
over the directions the data never take. On the curator benchmark without DP
it finds input noise that the other signals miss (digits and breast cancer);
but an owner whose inputs simply differ from the rest (covariate shift) also
leaves the span, and on Synthetic(1, 1) it excluded more benign owners. So it
is off by default (numbers: the README and
``docs/curator_input_span/curator_benchmark.md``).
Under DP the update's noise is isotropic and fills the residual directions in
proportion to their number: a round whose median share is at least
:data:`NOISE_DOMINATED` of that isotropic share carries no signal, and none is
recorded for it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

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
#: The optional signal of the inputs' span (see above).
INPUT_SPAN = "input_span"
#: Share of the inputs' second moment whose eigenvectors make up their span.
INPUT_SPAN_SHARE = 0.99
#: A round whose median share outside the span is at least this fraction of an
#: isotropic vector's is noise-dominated: no ``input_span`` signal (see above).
NOISE_DOMINATED = 0.5
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


def input_residual_basis(inputs: np.ndarray, share: float = INPUT_SPAN_SHARE) -> np.ndarray:
    """Orthonormal columns spanning the input directions outside the inputs' span.

    The span is that of the eigenvectors of the second moment ``E[x xᵀ]`` of the
    flattened ``inputs`` carrying ``share`` of its trace, largest first; the
    columns are the remaining eigenvectors (none when the inputs are all zero).
    """
    flat = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
    eigenvalues, eigenvectors = np.linalg.eigh(flat.T @ flat / max(len(flat), 1))
    trace = float(eigenvalues.sum())
    if trace <= 0.0:
        return eigenvectors[:, :0]
    carried = np.cumsum(eigenvalues[::-1]) / trace
    span = min(int(np.searchsorted(carried, share)) + 1, eigenvalues.size)
    # eigh sorts ascending: the residual directions come first.
    return eigenvectors[:, : eigenvalues.size - span]


@dataclass(frozen=True)
class InputSpan:
    """Where a dense first layer sits in the flat weights, and the inputs' residual directions.

    Attributes
    ----------
    shape : tuple[int, int]
        The first weight matrix, ``(outputs, inputs)``; it leads the flat weights.
    residual : np.ndarray
        ``(inputs, k)`` orthonormal directions outside the validation inputs' span.
    """

    shape: tuple[int, int]
    residual: np.ndarray

    @staticmethod
    def of(evaluator: ValidationEvaluator) -> InputSpan | None:
        """The model's input span, ``None`` unless its first layer is dense on the raw inputs."""
        first = evaluator.shapes[0]
        if len(first) != 2 or first[1] != evaluator.x[0].numel():
            return None
        residual = input_residual_basis(evaluator.x.double().numpy())
        return InputSpan((first[0], first[1]), residual) if residual.shape[1] else None

    @property
    def isotropic_share(self) -> float:
        """Expected share of an isotropic random matrix outside the span."""
        return self.residual.shape[1] / self.residual.shape[0]

    def outside_share(self, update: np.ndarray) -> float | None:
        """Share of the first layer's update outside the span (``None``: a zero update)."""
        matrix = np.asarray(update, dtype=np.float64)[: self.shape[0] * self.shape[1]]
        matrix = matrix.reshape(self.shape)
        energy = float(np.sum(matrix * matrix))
        if energy == 0.0:
            return None
        outside = matrix @ self.residual
        return float(np.sum(outside * outside)) / energy

    def signals(
        self, updates: RoundUpdates, skip: Collection[str] = ()
    ) -> dict[str, dict[str, float]]:
        """Owner -> its :data:`INPUT_SPAN` signal; none in a noise-dominated round (see above)."""
        shares = {
            name: share
            for name in updates.owners
            if name not in skip and (share := self.outside_share(updates.updates[name])) is not None
        }
        if not shares or np.median(list(shares.values())) >= NOISE_DOMINATED * self.isotropic_share:
            return {}
        return {name: {INPUT_SPAN: -share} for name, share in shares.items()}
