"""How good is a trained model on held-out data: the numbers a user is told.

Accuracy and mean cross-entropy, per-class precision / recall / F1 with their
support, the confusion matrix, calibration (expected calibration error over
equal-width confidence bins and the reliability diagram, Guo et al., "On
Calibration of Modern Neural Networks", ICML 2017) and fairness across data
owners (accuracy on each owner's own test split: mean, worst-10 % mean, minimum).

Every metric is computed from predicted probabilities, so the same functions
score the global model, a fine-tuned copy or a temperature-scaled one
(:mod:`fedcurate.quality` reuses them). The module sits beside
:mod:`fedcurate.training` rather than in :mod:`fedcurate.reporting`, which
renders the files of a run directory: these are computations on a model and
data, and only their presentation (:func:`evaluation_markdown`) borrows the
report's block model.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from fedcurate.data.arrays import ArrayDataset
from fedcurate.reporting.plots import worst_decile_mean
from fedcurate.reporting.report import Block, Table, Text, fmt, to_markdown

#: Confidence bins of the expected calibration error (Guo et al. use 15).
CALIBRATION_BINS = 15


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The model's logits for ``x``, float32, in the batches that ``training.evaluate`` uses.

    The same batching keeps the arithmetic, and therefore every argmax,
    identical to the accuracy a run reports.
    """
    model.eval()
    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    # At least one (possibly empty) batch, so no rows still give shape (0, num_classes).
    starts = range(0, max(len(inputs), 1), batch_size)
    return torch.cat([model(inputs[start : start + batch_size]) for start in starts]).numpy()


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class (``None`` where undefined: 0 / 0)."""

    label: int
    precision: float | None
    recall: float | None
    f1: float | None
    support: int


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin ``(lower, upper]``: how sure the model was and how often right."""

    lower: float
    upper: float
    count: int
    confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error and the bins it is computed from."""

    ece: float
    bins: tuple[ReliabilityBin, ...]


@dataclass(frozen=True)
class ClassificationReport:
    """Everything :func:`classification_report` measures on one dataset."""

    num_examples: int
    accuracy: float
    loss: float
    macro_f1: float | None
    per_class: tuple[ClassMetrics, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]
    calibration: Calibration


@dataclass(frozen=True)
class OwnerFairness:
    """Accuracy of one model on every owner's test split."""

    per_owner: dict[str, float]
    mean: float
    worst_decile_mean: float
    min: float
    worst_owner: str


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` as an int64 ``(num_classes, num_classes)`` matrix."""
    counts = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_metrics(confusion: np.ndarray) -> tuple[ClassMetrics, ...]:
    """Precision, recall and F1 of every class from a confusion matrix.

    F1 is written ``2 tp / (2 tp + fp + fn)``, which equals the harmonic mean of
    precision and recall wherever both exist and is 0, not undefined, when a
    present class is never predicted.
    """
    true_positive = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    metrics = []
    for label in range(len(confusion)):
        tp = true_positive[label]
        fp, fn = predicted[label] - tp, support[label] - tp
        metrics.append(
            ClassMetrics(
                label=label,
                precision=_ratio(tp, tp + fp),
                recall=_ratio(tp, tp + fn),
                f1=_ratio(2 * tp, 2 * tp + fp + fn),
                support=int(support[label]),
            )
        )
    return tuple(metrics)


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator > 0 else None


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, num_bins: int = CALIBRATION_BINS
) -> tuple[ReliabilityBin, ...]:
    """Top-label confidence against accuracy in ``num_bins`` equal-width bins of ``(0, 1]``."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # Right-closed bins as in Guo et al.: a confidence of exactly 1 falls in the last one.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    bins = []
    for b in range(num_bins):
        members = index == b
        count = int(members.sum())
        bins.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=count,
                confidence=float(confidence[members].mean()) if count else None,
                accuracy=float(correct[members].mean()) if count else None,
            )
        )
    return tuple(bins)


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, num_bins: int = CALIBRATION_BINS
) -> float:
    """ECE: the bin-weighted mean gap between confidence and accuracy."""
    return calibration_of(probabilities, labels, num_bins).ece


def calibration_of(
    probabilities: np.ndarray, labels: np.ndarray, num_bins: int = CALIBRATION_BINS
) -> Calibration:
    """The reliability bins and their ECE."""
    bins = reliability_bins(probabilities, labels, num_bins)
    total = max(len(labels), 1)
    ece = sum(
        b.count / total * abs(b.accuracy - b.confidence)
        for b in bins
        if b.accuracy is not None and b.confidence is not None
    )
    return Calibration(ece=float(ece), bins=bins)


def mean_cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    chosen = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(chosen, 1e-300, None)).mean())


def classification_report(probabilities: np.ndarray, labels: np.ndarray) -> ClassificationReport:
    """Accuracy, loss, per-class metrics, confusion matrix and calibration.

    Parameters
    ----------
    probabilities : np.ndarray
        ``(n, num_classes)`` predicted class probabilities.
    labels : np.ndarray
        ``(n,)`` true labels.
    """
    if len(labels) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    num_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    confusion = confusion_matrix(labels, predicted, num_classes)
    per_class = per_class_metrics(confusion)
    defined_f1 = [m.f1 for m in per_class if m.f1 is not None]
    return ClassificationReport(
        num_examples=len(labels),
        accuracy=float((predicted == labels).mean()),
        loss=mean_cross_entropy(probabilities, labels),
        macro_f1=float(np.mean(defined_f1)) if defined_f1 else None,
        per_class=per_class,
        confusion_matrix=tuple(tuple(int(c) for c in row) for row in confusion),
        calibration=calibration_of(probabilities, labels),
    )


def evaluate_model(model: nn.Module, data: ArrayDataset) -> ClassificationReport:
    """:func:`classification_report` of ``model`` on ``data``."""
    return classification_report(softmax(predict_logits(model, data.x)), data.y)


def owner_fairness(model: nn.Module, owner_tests: Mapping[str, ArrayDataset]) -> OwnerFairness:
    """Accuracy on each owner's test split and its spread (owners without one are skipped).

    Raises
    ------
    ValueError
        No owner has a test split.
    """
    per_owner = {
        name: float((predict_logits(model, data.x).argmax(axis=1) == data.y).mean())
        for name, data in owner_tests.items()
        if len(data) > 0
    }
    if not per_owner:
        raise ValueError("no owner has a test split to evaluate on")
    values = np.array(list(per_owner.values()))
    return OwnerFairness(
        per_owner=per_owner,
        mean=float(values.mean()),
        worst_decile_mean=worst_decile_mean(values),
        min=float(values.min()),
        worst_owner=min(per_owner, key=per_owner.__getitem__),
    )


def draw_reliability_diagram(calibration: Calibration, path: Path, title: str) -> Path:
    """Accuracy against confidence per bin, the diagonal of perfect calibration, the counts."""
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    filled = [b for b in calibration.bins if b.count]
    width = calibration.bins[0].upper - calibration.bins[0].lower
    top.bar(
        [b.lower for b in filled],
        [b.accuracy or 0.0 for b in filled],
        width=width,
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label="accuracy per confidence bin",
    )
    top.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    top.plot(
        [b.confidence for b in filled],
        [b.accuracy for b in filled],
        "o",
        color="tab:red",
        label="(mean confidence, accuracy) of a bin",
    )
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02))
    top.set_title(
        "\n".join(textwrap.wrap(f"{title}: ECE {calibration.ece:.4f}", width=60)), fontsize=9
    )
    top.legend(loc="upper left", fontsize=7)
    bottom.bar(
        [b.lower for b in filled],
        [b.count for b in filled],
        width=width,
        align="edge",
        edgecolor="black",
        color="tab:gray",
    )
    bottom.set(xlabel="confidence (top class)", ylabel="examples", xlim=(0, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def evaluation_markdown(
    report: ClassificationReport, fairness: OwnerFairness | None, title: str
) -> str:
    """A readable summary: headline numbers, per-class table, confusion matrix, fairness."""
    headline = (
        ("examples", str(report.num_examples)),
        ("accuracy", fmt(report.accuracy)),
        ("mean cross-entropy", fmt(report.loss)),
        ("macro F1", fmt(report.macro_f1)),
        (f"ECE ({len(report.calibration.bins)} bins)", fmt(report.calibration.ece)),
    )
    classes = tuple(
        (str(m.label), fmt(m.precision), fmt(m.recall), fmt(m.f1), str(m.support))
        for m in report.per_class
    )
    labels = range(len(report.confusion_matrix))
    confusion = tuple(
        (str(label), *(str(c) for c in row))
        for label, row in zip(labels, report.confusion_matrix, strict=True)
    )
    blocks: list[Block] = [
        Table(("metric", "value"), headline),
        Table(("class", "precision", "recall", "F1", "support"), classes),
        Text("Confusion matrix (rows: true class, columns: predicted class)."),
        Table(("true \\ predicted", *(str(label) for label in labels)), confusion),
    ]
    sections = [("Held-out data", blocks)]
    if fairness is not None:
        rows = (
            ("owners evaluated", str(len(fairness.per_owner))),
            ("mean owner accuracy", fmt(fairness.mean)),
            ("worst 10 % owners (mean accuracy)", fmt(fairness.worst_decile_mean)),
            ("worst owner accuracy", f"{fmt(fairness.min)} ({fairness.worst_owner})"),
        )
        sections.append(("Fairness across owners", [Table(("metric", "value"), rows)]))
    return to_markdown(sections, title=title)
