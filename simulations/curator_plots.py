"""Figures of the curator benchmark, drawn from its cell records (``docs/curator_benchmark.json``).

* :func:`detection_heatmap`: detection AUROC of every cell, one panel per privacy
  setting, rows = dataset and partition, columns = corruption and bad fraction;
* :func:`accuracy_gaps`: in the cells of the accuracy target, each curated policy's
  and the best robust strategy's final accuracy minus the clean-owners-only run's.

Cells not in the records (a partial grid) stay blank; a figure with nothing to show
is not drawn.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.image import AxesImage

from fedcurate.io import atomic_write_bytes

Records = Sequence[Mapping[str, Any]]

#: Privacy setting -> panel title.
PRIVACY_TITLES = {"none": "without DP", "dp_sgd": "DP-SGD (ε = 8)"}
#: Short column labels of the corruptions.
CORRUPTION_LABELS = {
    "label_noise_10": "noise 10%",
    "label_noise_50": "noise 50%",
    "label_flip": "label flip",
    "feature_noise": "feat. noise",
    "free_rider_replay": "free rider",
    "sign_flip": "sign flip",
}
#: Lowest accuracy gap drawn (lower ones sit there as down-triangles).
GAP_FLOOR = -0.15
#: Series of the accuracy figure: label, marker, colour.
GAP_SERIES = (
    ("curator.policy=weight", "o", "tab:green"),
    ("curator.policy=exclude", "x", "tab:blue"),
    ("best robust strategy", "s", "tab:gray"),
)


def _ordered(values: Sequence[Any]) -> list[Any]:
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def detection_heatmap(records: Records, path: Path) -> Path | None:
    """Mean detection AUROC per cell, annotated, one panel per privacy setting."""
    records = [r for r in records if r.get("auroc") is not None]
    if not records:
        return None
    rows = _ordered([(r["dataset"], r["partition"]) for r in records])
    columns = _ordered([(r["corruption"], r["fraction"]) for r in records])
    privacies = _ordered([r["privacy"] for r in records])
    figure, panels = plt.subplots(
        1,
        len(privacies),
        figsize=(0.75 * len(columns) * len(privacies) + 2.5, 0.55 * len(rows) + 2.0),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    images = []
    for axes, privacy in zip(panels[0], privacies, strict=True):
        mine = [r for r in records if r["privacy"] == privacy]
        images.append(_heat_panel(axes, mine, rows, columns))
        mean = np.mean([r["auroc"] for r in mine])
        axes.set_title(f"{PRIVACY_TITLES.get(privacy, privacy)}: mean {mean:.3f}")
    panels[0][0].set_yticks(range(len(rows)))
    panels[0][0].set_yticklabels([f"{d} {p}" for d, p in rows], fontsize=8)
    figure.colorbar(
        images[0], ax=list(panels[0]), label="detection AUROC (1 = every bad owner first)"
    )
    return _save(figure, path)


def _heat_panel(
    axes: Axes,
    records: Records,
    rows: Sequence[tuple[str, str]],
    columns: Sequence[tuple[str, float]],
) -> AxesImage:
    """One privacy setting's AUROC grid (NaN where a cell did not run)."""
    grid = np.full((len(rows), len(columns)), np.nan)
    for r in records:
        row = rows.index((r["dataset"], r["partition"]))
        grid[row, columns.index((r["corruption"], r["fraction"]))] = r["auroc"]
    image = axes.imshow(grid, cmap="RdYlGn", vmin=0.5, vmax=1.0, aspect="auto")
    _annotate(axes, grid)
    axes.set_xticks(range(len(columns)))
    axes.set_xticklabels(
        [f"{CORRUPTION_LABELS.get(c, c)}\n{f:.0%} bad" for c, f in columns], rotation=90, fontsize=8
    )
    return image


def _annotate(axes: Axes, grid: np.ndarray) -> None:
    for (row, column), value in np.ndenumerate(grid):
        if np.isfinite(value):
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7)


def accuracy_gaps(records: Records, robust: Sequence[str], path: Path) -> Path | None:
    """Final accuracy minus clean-only's: ``weight``, ``exclude`` and the best robust strategy.

    Drawn for the cells where the ``weight`` policy ran (by default those of the
    accuracy target, 40 % bad owners on digits and breast cancer).
    """
    records = [r for r in records if "weighted" in r["accuracy"] and "clean" in r["accuracy"]]
    if not records:
        return None
    privacies = _ordered([r["privacy"] for r in records])
    figure, panels = plt.subplots(
        len(privacies), 1, figsize=(12, 5.5 * len(privacies)), layout="constrained"
    )
    for axes, privacy in zip(np.atleast_1d(panels), privacies, strict=True):
        _gap_panel(axes, [r for r in records if r["privacy"] == privacy], robust)
        axes.set_title(f"{PRIVACY_TITLES.get(privacy, privacy)}: final accuracy against clean-only")
    return _save(figure, path)


def _gap_series(records: Records, robust: Sequence[str]) -> list[list[float | None]]:
    """Per :data:`GAP_SERIES` entry, each cell's accuracy (``None`` where the arm did not run)."""
    return [
        [r["accuracy"]["weighted"] for r in records],
        [r["accuracy"].get("curated") for r in records],
        [
            max((r["accuracy"][a] for a in robust if a in r["accuracy"]), default=None)
            for r in records
        ],
    ]


def _gap_panel(axes: Axes, records: Records, robust: Sequence[str]) -> None:
    positions = np.arange(len(records))
    clean = np.array([r["accuracy"]["clean"] for r in records])
    for (label, marker, colour), values in zip(
        GAP_SERIES, _gap_series(records, robust), strict=True
    ):
        present = np.array([v is not None for v in values])
        if not present.any():
            continue
        gaps = np.array([v for v in values if v is not None]) - clean[present]
        shown, floored = positions[present], gaps < GAP_FLOOR
        axes.scatter(shown[~floored], gaps[~floored], marker=marker, color=colour, label=label)
        axes.scatter(shown[floored], np.full(floored.sum(), GAP_FLOOR), marker="v", color=colour)
    axes.axhline(-0.01, color="tab:green", linestyle="--", label="1 point below clean-only")
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_ylim(GAP_FLOOR - 0.01, None)
    axes.set_ylabel("accuracy minus clean-only")
    axes.set_xticks(positions)
    axes.set_xticklabels([_cell_label(r) for r in records], rotation=90, fontsize=8)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _cell_label(record: Mapping[str, Any]) -> str:
    corruption = CORRUPTION_LABELS.get(record["corruption"], record["corruption"])
    return f"{record['dataset']} {record['partition']} {corruption}, {record['fraction']:.0%} bad"


def _save(figure: plt.Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def draw(records: Records, robust: Sequence[str], docs: Path, stem: str) -> list[Path]:
    """Both figures as ``{stem}_auroc.png`` and ``{stem}_accuracy.png`` in ``docs``."""
    drawn = [
        detection_heatmap(records, docs / f"{stem}_auroc.png"),
        accuracy_gaps(records, robust, docs / f"{stem}_accuracy.png"),
    ]
    return [p for p in drawn if p is not None]
