"""Likely label errors by confident learning.

Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 70 (2021), section 3, on out-of-sample probabilities
``p̂(x)`` (:mod:`fedcurate.quality.crossfit`):

1. per-class threshold ``t_j``: the average self-confidence ``p̂_j(x)`` of the
   rows labelled ``j`` (eq. 2);
2. confident joint ``C[i][j]``: rows labelled ``i`` whose probability of some
   class reaches that class's threshold, counted under the most probable such
   class ``j`` (eq. 1);
3. the rows in off-diagonal cells ``C[i][j], i ≠ j`` are the label issues
   (the paper's ``C_confusion`` / cleanlab's ``filter_by="confident_learning"``),
   with ``j`` as the suggested label. As in cleanlab, a row whose given label is
   also the model's top prediction is not flagged: it can only land off the
   diagonal when its own class's threshold is unusually high.

Issues are ranked by self-confidence ``p̂_ỹ(x)`` (lowest first, the paper's
ranking), ties broken by the normalised margin ``(p̂_ỹ - max_{k≠ỹ} p̂_k + 1) / 2``.
The calibrated joint ``Q`` (eq. 3) estimates how many labels are wrong overall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Never reached by a probability: a class absent from the given labels has no
#: average self-confidence, so no row is counted under it (as in cleanlab).
ABSENT_CLASS_THRESHOLD = 2.0
NOT_CONFIDENT = -1


@dataclass(frozen=True)
class LabelIssue:
    """One row whose given label the model confidently disagrees with."""

    row: int
    given_label: int
    suggested_label: int
    confidence: float
    self_confidence: float
    normalized_margin: float


@dataclass(frozen=True)
class ConfidentLearning:
    """Outcome of :func:`find_label_issues`.

    Attributes
    ----------
    thresholds : np.ndarray
        ``(C,)`` per-class thresholds ``t_j``.
    confident_joint : np.ndarray
        ``(C, C)`` counts, rows: given label, columns: confident class.
    estimated_noise_rate : float
        Off-diagonal mass of the calibrated joint: the estimated share of wrong labels.
    issues : tuple of LabelIssue
        Flagged rows, most likely errors first.
    """

    thresholds: np.ndarray
    confident_joint: np.ndarray
    estimated_noise_rate: float
    issues: tuple[LabelIssue, ...]


def per_class_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Average self-confidence of each class (eq. 2)."""
    thresholds = np.full(probabilities.shape[1], ABSENT_CLASS_THRESHOLD)
    for label in np.unique(labels):
        thresholds[label] = probabilities[labels == label, label].mean()
    return thresholds


def confident_classes(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per row, the most probable class at or above its threshold, else ``NOT_CONFIDENT``."""
    # The small slack keeps a row whose probability equals the class mean (e.g. a
    # class with one row) above its own threshold despite rounding, as cleanlab does.
    above = probabilities >= thresholds - 1e-6
    masked = np.where(above, probabilities, -np.inf)
    return np.where(above.any(axis=1), masked.argmax(axis=1), NOT_CONFIDENT)


def confident_joint(labels: np.ndarray, confident: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``C[given, confident]`` over rows with a confident class (eq. 1)."""
    counted = confident != NOT_CONFIDENT
    pairs = labels[counted] * num_classes + confident[counted]
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, -1)


def calibrated_joint(joint: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``Q``: each row of ``C`` rescaled to its class's label count, normalised to sum 1 (eq. 3)."""
    label_counts = np.bincount(labels, minlength=len(joint)).astype(np.float64)
    row_sums = joint.sum(axis=1, keepdims=True).astype(np.float64)
    rescaled = np.divide(
        joint * label_counts[:, None], row_sums, out=np.zeros(joint.shape), where=row_sums > 0
    )
    total = rescaled.sum()
    return rescaled / total if total > 0 else rescaled


def normalized_margin(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``(p̂_ỹ - max_{k≠ỹ} p̂_k + 1) / 2`` in ``[0, 1]``: low means another class wins clearly."""
    rows = np.arange(len(labels))
    others = probabilities.copy()
    others[rows, labels] = -np.inf
    margin: np.ndarray = (probabilities[rows, labels] - others.max(axis=1) + 1.0) / 2.0
    return margin


def find_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> ConfidentLearning:
    """Flag and rank likely label errors.

    Parameters
    ----------
    labels : np.ndarray
        ``(n,)`` given labels.
    probabilities : np.ndarray
        ``(n, C)`` out-of-sample predicted probabilities.
    """
    num_classes = probabilities.shape[1]
    thresholds = per_class_thresholds(labels, probabilities)
    confident = confident_classes(probabilities, thresholds)
    joint = confident_joint(labels, confident, num_classes)
    joint_distribution = calibrated_joint(joint, labels)
    noise_rate = float(joint_distribution.sum() - np.trace(joint_distribution))
    flagged = (
        (confident != NOT_CONFIDENT)
        & (confident != labels)
        & (probabilities.argmax(axis=1) != labels)
    )
    rows = np.flatnonzero(flagged)
    self_confidence = probabilities[np.arange(len(labels)), labels]
    margin = normalized_margin(labels, probabilities)
    ranked = rows[np.lexsort((margin[rows], self_confidence[rows]))]
    issues = tuple(
        LabelIssue(
            row=int(row),
            given_label=int(labels[row]),
            suggested_label=int(confident[row]),
            confidence=float(probabilities[row, confident[row]]),
            self_confidence=float(self_confidence[row]),
            normalized_margin=float(margin[row]),
        )
        for row in ranked
    )
    return ConfidentLearning(thresholds, joint, noise_rate, issues)
