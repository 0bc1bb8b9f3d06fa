"""A data owner's look at its own data before (or after) it joins a federation.

Runs every check of :mod:`fedcurate.quality` on one site file with the global
model and writes a reviewable report: ``inspection.json`` (everything),
``inspection.md`` (for people) and ``flagged_rows.csv`` (one line per flagged
row and issue, for fixing the data). Nothing leaves the site: the checks use the
model and the site's own rows only.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from fedcurate.config import TrainConfig
from fedcurate.data.arrays import ArrayDataset
from fedcurate.data.sites import UNLABELLED
from fedcurate.io import atomic_write_json, atomic_write_text
from fedcurate.quality.confident_learning import ConfidentLearning, LabelIssue, find_label_issues
from fedcurate.quality.crossfit import out_of_fold_probabilities
from fedcurate.quality.duplicates import (
    DuplicateGroup,
    NearDuplicate,
    exact_duplicate_groups,
    near_duplicate_pairs,
)
from fedcurate.quality.outliers import OUTLIER_Z, Outlier, find_outliers
from fedcurate.reporting.report import Block, Section, Table, Text, fmt, to_markdown

#: Gentle fine-tuning: plain SGD at a small learning rate. Chosen by the mean of
#: precision and recall over the 20- and 50-round digits models on the curator's
#: validation split, apart from the data the benchmark reports on (the sweep is in
#: simulations/bench_quality.py). Stronger schedules (the owners' lr 0.1 with
#: momentum 0.9) lost precision there; no schedule beat the global model unchanged
#: by more than noise, so this one stays close to it.
FINE_TUNE_EPOCHS = 3
FINE_TUNE_LR = 0.01
FINE_TUNE_MOMENTUM = 0.0
#: Rows of the markdown tables (the CSV holds all).
SHOWN_ROWS = 20


def fine_tune_config(
    base: TrainConfig,
    epochs: int = FINE_TUNE_EPOCHS,
    lr: float = FINE_TUNE_LR,
    momentum: float = FINE_TUNE_MOMENTUM,
) -> TrainConfig:
    """The run's local training settings with the fine-tuning schedule."""
    return replace(base, local_epochs=epochs, lr=lr, momentum=momentum)


@dataclass(frozen=True)
class InspectionSettings:
    """How the checks run.

    Attributes
    ----------
    fine_tune : TrainConfig
        Local fine-tuning of each fold's copy of the global model.
    num_folds : int
        K of the out-of-sample predictions.
    seed : int
        Seeds folds and shuffling.
    outlier_threshold : float
        Modified z-score above which a row is an outlier.
    near_duplicate_distance : float
        Near duplicates lie within this fraction of the median nearest-neighbour distance.
    decimals : int
        Features are rounded to this many decimals before exact comparison.
    """

    fine_tune: TrainConfig = field(default_factory=lambda: fine_tune_config(TrainConfig()))
    num_folds: int = 5
    seed: int = 0
    outlier_threshold: float = OUTLIER_Z
    near_duplicate_distance: float = 0.1
    decimals: int = 6


@dataclass(frozen=True)
class ClassBalance:
    """Label counts of the site (``imbalance_ratio``: largest over smallest present class)."""

    counts: tuple[int, ...]
    unlabelled: int
    missing_classes: tuple[int, ...]
    imbalance_ratio: float | None


@dataclass(frozen=True)
class Inspection:
    """Every finding on one site file (row numbers are 0-based data rows of the file)."""

    num_rows: int
    balance: ClassBalance
    label_issues: ConfidentLearning | None
    label_issues_skipped: str | None
    duplicates: tuple[DuplicateGroup, ...]
    near_duplicates: tuple[NearDuplicate, ...]
    outliers: tuple[Outlier, ...]
    settings: InspectionSettings


def class_balance(labels: np.ndarray, num_classes: int) -> ClassBalance:
    """Counts per class among labelled rows."""
    labelled = labels[labels != UNLABELLED]
    counts = np.bincount(labelled, minlength=num_classes)
    present = counts[counts > 0]
    return ClassBalance(
        counts=tuple(int(c) for c in counts),
        unlabelled=int((labels == UNLABELLED).sum()),
        missing_classes=tuple(int(k) for k in np.flatnonzero(counts == 0)),
        imbalance_ratio=float(present.max() / present.min()) if len(present) else None,
    )


def inspect_site(model: nn.Module, data: ArrayDataset, settings: InspectionSettings) -> Inspection:
    """Run every check on ``data`` (unlabelled rows join the duplicate and outlier checks only).

    Parameters
    ----------
    model : nn.Module
        The global model (not modified).
    data : ArrayDataset
        The site's rows, ``UNLABELLED`` where a row has no label.
    settings : InspectionSettings
        How the checks run.
    """
    labelled_rows = np.flatnonzero(data.y != UNLABELLED)
    label_issues, skipped = None, None
    if len(labelled_rows) < 2 * settings.num_folds:
        skipped = (
            f"{len(labelled_rows)} labelled rows are too few for {settings.num_folds}-fold "
            "out-of-sample predictions (need at least two per fold)"
        )
    else:
        label_issues = _label_issues(model, data.subset(labelled_rows), labelled_rows, settings)
    return Inspection(
        num_rows=len(data),
        balance=class_balance(data.y, data.num_classes),
        label_issues=label_issues,
        label_issues_skipped=skipped,
        duplicates=exact_duplicate_groups(data.x, data.y, settings.decimals),
        near_duplicates=near_duplicate_pairs(
            data.x, data.y, settings.near_duplicate_distance, settings.decimals
        ),
        outliers=find_outliers(
            data.x.reshape(len(data), -1).astype(np.float64),
            data.y,
            data.num_classes,
            settings.outlier_threshold,
        ),
        settings=settings,
    )


def _label_issues(
    model: nn.Module, labelled: ArrayDataset, rows: np.ndarray, settings: InspectionSettings
) -> ConfidentLearning:
    """Confident learning on the labelled rows, reported with the file's row numbers."""
    probabilities = out_of_fold_probabilities(
        model, labelled, settings.fine_tune, settings.num_folds, settings.seed
    )
    found = find_label_issues(labelled.y, probabilities)
    issues = tuple(replace(issue, row=int(rows[issue.row])) for issue in found.issues)
    return replace(found, issues=issues)


# ----------------------------------------------------------------- outputs
def inspection_record(inspection: Inspection, source: str) -> dict[str, Any]:
    """Plain-data view of the inspection (for ``inspection.json``)."""
    found = inspection.label_issues
    label_issues: dict[str, Any] = {"skipped": inspection.label_issues_skipped}
    if found is not None:
        label_issues = {
            "method": "confident learning, off-diagonal confident joint (Northcutt et al. 2021)",
            "num_flagged": len(found.issues),
            "estimated_noise_rate": found.estimated_noise_rate,
            "thresholds": [float(t) for t in found.thresholds],
            "confident_joint": found.confident_joint.tolist(),
            "issues": [asdict(issue) for issue in found.issues],
        }
    return {
        "data": source,
        "num_rows": inspection.num_rows,
        "class_balance": asdict(inspection.balance),
        "label_issues": label_issues,
        "exact_duplicates": [
            {**asdict(g), "conflicting_labels": g.conflicting} for g in inspection.duplicates
        ],
        "near_duplicates": [
            {**asdict(p), "conflicting_labels": p.conflicting} for p in inspection.near_duplicates
        ],
        "outliers": [asdict(o) for o in inspection.outliers],
        "settings": asdict(inspection.settings),
    }


FLAGGED_COLUMNS = ("row", "issue", "given_label", "suggested_label", "confidence", "detail")


def flagged_rows(inspection: Inspection) -> list[dict[str, Any]]:
    """One entry per (row, issue): label errors ranked first, then duplicates, then outliers."""
    found = inspection.label_issues
    return [
        *(_label_issue_entry(issue) for issue in (found.issues if found else ())),
        *(entry for group in inspection.duplicates for entry in _duplicate_entries(group)),
        *(_near_duplicate_entry(pair) for pair in inspection.near_duplicates),
        *(_outlier_entry(outlier) for outlier in inspection.outliers),
    ]


def _label_issue_entry(issue: LabelIssue) -> dict[str, Any]:
    return {
        "row": issue.row,
        "issue": "label",
        "given_label": issue.given_label,
        "suggested_label": issue.suggested_label,
        "confidence": f"{issue.confidence:.4f}",
        "detail": f"self-confidence {issue.self_confidence:.4f}, "
        f"normalized margin {issue.normalized_margin:.4f}",
    }


def _duplicate_entries(group: DuplicateGroup) -> list[dict[str, Any]]:
    conflict = " (labels disagree)" if group.conflicting else ""
    return [
        _plain_entry(
            row,
            "duplicate",
            label,
            f"same features as row(s) {', '.join(str(r) for r in group.rows if r != row)}"
            f"{conflict}",
        )
        for row, label in zip(group.rows, group.labels, strict=True)
    ]


def _near_duplicate_entry(pair: NearDuplicate) -> dict[str, Any]:
    conflict = " (labels disagree)" if pair.conflicting else ""
    return _plain_entry(
        pair.row,
        "near_duplicate",
        pair.labels[0],
        f"{pair.distance:.4g} from row {pair.neighbour} (label {_label_text(pair.labels[1])})"
        f"{conflict}",
    )


def _outlier_entry(outlier: Outlier) -> dict[str, Any]:
    return _plain_entry(
        outlier.row,
        "outlier",
        outlier.label,
        f"robust z {outlier.score:.2f}, nearest class {outlier.nearest_class}",
    )


def _label_text(label: int) -> str:
    return "none" if label == UNLABELLED else str(label)


def _plain_entry(row: int, issue: str, label: int, detail: str) -> dict[str, Any]:
    """An entry without a suggested label (the given label is blank for unlabelled rows)."""
    given = "" if label == UNLABELLED else label
    return {
        "row": row,
        "issue": issue,
        "given_label": given,
        "suggested_label": "",
        "confidence": "",
        "detail": detail,
    }


def inspection_markdown(inspection: Inspection, source: str) -> str:
    """The report a data owner reads."""
    found = inspection.label_issues
    summary = (
        ("rows", str(inspection.num_rows)),
        ("unlabelled rows", str(inspection.balance.unlabelled)),
        ("likely label errors", str(len(found.issues)) if found else "not checked"),
        ("estimated share of wrong labels", fmt(found.estimated_noise_rate) if found else "—"),
        ("exact duplicate groups", str(len(inspection.duplicates))),
        ("near-duplicate pairs", str(len(inspection.near_duplicates))),
        ("outliers", str(len(inspection.outliers))),
    )
    balance = inspection.balance
    sections: list[Section] = [
        (
            "Summary",
            [
                Text(
                    f"Data: {source}. Computed at the site; nothing was sent anywhere. "
                    "Rows are 0-based data rows of the file (in a CSV file, line = row + 2)."
                ),
                Table(("finding", "value"), summary),
            ],
        ),
        (
            "Class balance",
            [
                Table(
                    ("class", "rows"), tuple((str(k), str(c)) for k, c in enumerate(balance.counts))
                ),
                Text(
                    f"Largest / smallest class: {fmt(balance.imbalance_ratio, 2)}; classes "
                    f"without a row: {list(balance.missing_classes) or 'none'}."
                ),
            ],
        ),
        ("Likely label errors", _label_blocks(inspection)),
        ("Duplicates", _duplicate_blocks(inspection)),
        ("Outliers", _outlier_blocks(inspection)),
    ]
    return to_markdown(sections, title="fedcurate data inspection")


def _label_blocks(inspection: Inspection) -> list[Block]:
    found = inspection.label_issues
    if found is None:
        return [Text(f"Not checked: {inspection.label_issues_skipped}.")]
    blocks: list[Block] = [
        Text(
            "Confident learning (Northcutt et al., JAIR 2021) on "
            f"{_predictions_used(inspection.settings)}. Most likely errors first."
        )
    ]
    if not found.issues:
        return [*blocks, Text("No row was flagged.")]
    rows = tuple(
        (
            str(i.row),
            str(i.given_label),
            str(i.suggested_label),
            fmt(i.confidence),
            fmt(i.self_confidence),
        )
        for i in found.issues[:SHOWN_ROWS]
    )
    header = ("row", "given label", "suggested label", "confidence", "self-confidence")
    return [*blocks, Table(header, rows), _more(len(found.issues))]


def _predictions_used(settings: InspectionSettings) -> str:
    train = settings.fine_tune
    if train.local_epochs == 0:
        return "the global model's own predictions (no fine-tuning)"
    return (
        f"out-of-sample probabilities: {settings.num_folds} copies of the global model, each "
        f"fine-tuned ({train.local_epochs} epochs, lr {train.lr:g}) on the other folds, "
        "predict the fold they left out"
    )


def _duplicate_blocks(inspection: Inspection) -> list[Block]:
    return _exact_duplicate_blocks(inspection.duplicates) + _near_duplicate_blocks(
        inspection.near_duplicates
    )


def _exact_duplicate_blocks(groups: tuple[DuplicateGroup, ...]) -> list[Block]:
    if not groups:
        return [Text("No exact duplicates.")]
    rows = tuple(
        (
            ", ".join(map(str, g.rows)),
            ", ".join(map(str, g.labels)),
            "yes" if g.conflicting else "no",
        )
        for g in groups[:SHOWN_ROWS]
    )
    return [Table(("rows", "labels", "labels disagree"), rows), _more(len(groups))]


def _near_duplicate_blocks(pairs: tuple[NearDuplicate, ...]) -> list[Block]:
    if not pairs:
        return [Text("No near duplicates.")]
    rows = tuple(
        (str(p.row), str(p.neighbour), f"{p.distance:.4g}", "yes" if p.conflicting else "no")
        for p in pairs[:SHOWN_ROWS]
    )
    return [Table(("row", "nearest row", "distance", "labels disagree"), rows), _more(len(pairs))]


def _outlier_blocks(inspection: Inspection) -> list[Block]:
    if not inspection.outliers:
        return [Text("No outliers.")]
    rows = tuple(
        (str(o.row), fmt(o.score, 2), fmt(o.distance), str(o.nearest_class))
        for o in inspection.outliers[:SHOWN_ROWS]
    )
    return [
        Text(
            "Distance to the nearest class centre (median of its rows) in input space; "
            f"robust z-score above {inspection.settings.outlier_threshold:g}."
        ),
        Table(("row", "robust z", "distance", "nearest class"), rows),
        _more(len(inspection.outliers)),
    ]


def _more(total: int) -> Text:
    shown = min(total, SHOWN_ROWS)
    return Text(f"{shown} of {total} shown; flagged_rows.csv lists every one.")


def write_inspection(inspection: Inspection, out_dir: Path, source: str) -> dict[str, Path]:
    """Write ``inspection.json``, ``inspection.md`` and ``flagged_rows.csv`` into ``out_dir``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FLAGGED_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flagged_rows(inspection))
    return {
        "json": atomic_write_json(
            out_dir / "inspection.json", inspection_record(inspection, source)
        ),
        "markdown": atomic_write_text(
            out_dir / "inspection.md", inspection_markdown(inspection, source)
        ),
        "csv": atomic_write_text(out_dir / "flagged_rows.csv", out.getvalue()),
    }
