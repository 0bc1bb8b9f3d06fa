"""Plots of a run, drawn headless from ``metrics.jsonl``, ``summary.json`` and the ledger.

Each function draws one figure into ``plots/`` and returns its path, or ``None``
when the run has nothing to show for it (e.g. no DP, no curator).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fedcurate.reporting.outputs import excluded_at_end

Records = list[dict[str, Any]]


def _save(figure: Figure, path: Path) -> Path:
    for axes in figure.axes:
        if axes.get_xlabel() == "round":
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def accuracy_and_loss(records: Records, out: Path) -> Path | None:
    """Central test accuracy and loss per round (owners' and validation accuracy too)."""
    if not records:
        return None
    rounds = [r["round"] for r in records]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(rounds, [r["central"]["accuracy"] for r in records], "o-", label="test (central)")
    federated = [(r["round"], r["federated"]["accuracy"]) for r in records if r.get("federated")]
    if federated:
        left.plot(*zip(*federated, strict=True), "s--", label="owners' test (federated)")
    validation = [(r["round"], r["validation"]["accuracy"]) for r in records if r.get("validation")]
    if validation:
        left.plot(*zip(*validation, strict=True), "^:", label="curator validation")
    left.set(xlabel="round", ylabel="accuracy", title="Accuracy")
    left.legend()
    right.plot(rounds, [r["central"]["loss"] for r in records], "o-", color="tab:red")
    right.set(xlabel="round", ylabel="cross-entropy", title="Test loss")
    return _save(figure, out / "accuracy_loss.png")


def owner_accuracy_spread(records: Records, out: Path) -> Path | None:
    """Spread of per-owner accuracy: median, range and the worst-10 % mean."""
    rows = [(r["round"], r["federated"]["per_owner"]) for r in records if r.get("federated")]
    rows = [(rnd, owners) for rnd, owners in rows if owners]
    if not rows:
        return None
    rounds = [rnd for rnd, _ in rows]
    values = [np.array([m["accuracy"] for m in owners.values()]) for _, owners in rows]
    figure, axes = plt.subplots(figsize=(6.5, 3.8))
    axes.fill_between(
        rounds, [v.min() for v in values], [v.max() for v in values], alpha=0.2, label="min-max"
    )
    axes.plot(rounds, [np.median(v) for v in values], "o-", label="median owner")
    axes.plot(rounds, [worst_decile_mean(v) for v in values], "v--", label="worst 10 % (mean)")
    axes.set(
        xlabel="round", ylabel="accuracy on the owner's test split", title="Per-owner accuracy"
    )
    axes.legend()
    return _save(figure, out / "owner_accuracy.png")


def worst_decile_mean(values: np.ndarray) -> float:
    """Mean of the worst 10 % of ``values`` (at least one)."""
    count = max(1, int(np.ceil(0.1 * len(values))))
    return float(np.sort(values)[:count].mean())


def epsilon_per_owner(records: Records, out: Path) -> Path | None:
    """Privacy spent (ε) by each owner after each round."""
    series: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        for owner, spent in ((record.get("privacy") or {}).get("epsilon") or {}).items():
            series.setdefault(owner, []).append((record["round"], spent))
    if not series:
        return None
    figure, axes = plt.subplots(figsize=(6.5, 3.8))
    for owner, points in sorted(series.items()):
        axes.plot(*zip(*points, strict=True), ".-", label=owner)
    budget = (records[-1].get("privacy") or {}).get("budget")
    if budget:
        axes.axhline(budget, color="black", linestyle=":", label=f"budget ε={budget:g}")
    axes.set(xlabel="round", ylabel="ε spent", title="Privacy spent per owner")
    axes.legend(fontsize=7, ncol=2)
    return _save(figure, out / "epsilon.png")


def contribution_heatmap(ledger: dict[str, Any] | None, out: Path) -> Path | None:
    """Owner x round heatmap of per-round credit (relative values; crossed: excluded)."""
    if not ledger or not ledger.get("rounds"):
        return None
    rounds = ledger["rounds"]
    owners = sorted({owner for entry in rounds for owner in entry["owners"]})
    grid = np.full((len(owners), len(rounds)), np.nan)
    excluded = []
    for column, entry in enumerate(rounds):
        for owner, record in entry["owners"].items():
            grid[owners.index(owner), column] = record["relative"]
            if not record["included"]:
                excluded.append((column, owners.index(owner)))
    width = max(6.0, 0.35 * len(rounds) + 3)
    figure, axes = plt.subplots(figsize=(width, 0.35 * len(owners) + 1.8))
    limit = float(np.nanmax(np.abs(grid))) or 1.0
    image = axes.imshow(grid, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit)
    if excluded:
        axes.scatter(*zip(*excluded, strict=True), marker="x", color="black", label="excluded")
        axes.legend(loc="upper right", fontsize=7)
    axes.set_yticks(range(len(owners)), owners, fontsize=7)
    axes.set_xticks(range(len(rounds)), [str(e["round"]) for e in rounds], fontsize=7)
    axes.set(xlabel="round", title=f"Contribution per round ({rounds[-1]['method']})")
    figure.colorbar(image, ax=axes, label="credit (1 = an equal share)")
    return _save(figure, out / "contributions.png")


def _exclusion_colours(ledger: dict[str, Any], owners: list[str]) -> list[str]:
    """Red for an owner left out in the last round it took part in, blue otherwise."""
    excluded = excluded_at_end(ledger)
    return ["tab:red" if owner in excluded else "tab:blue" for owner in owners]


def reward_shares(ledger: dict[str, Any] | None, out: Path) -> Path | None:
    """Final reward shares; owners excluded in their last round are marked."""
    shares = (ledger or {}).get("reward_shares") or {}
    if not ledger or not shares:
        return None
    owners = sorted(shares)
    colors = _exclusion_colours(ledger, owners)
    figure, axes = plt.subplots(figsize=(6.5, 3.8))
    axes.bar(owners, [shares[o] for o in owners], color=colors)
    axes.set(ylabel="reward share", title="Reward shares (red: excluded)")
    axes.tick_params(axis="x", labelrotation=60, labelsize=7)
    return _save(figure, out / "rewards.png")


def owner_standing(ledger: dict[str, Any] | None, out: Path) -> Path | None:
    """Each owner's mean standing, most suspect on top; owners excluded at the end in red."""
    standing = (ledger or {}).get("standing") or {}
    if not ledger or not standing:
        return None
    owners = sorted(standing, key=standing.__getitem__, reverse=True)
    colors = _exclusion_colours(ledger, owners)
    figure, axes = plt.subplots(figsize=(6.5, 0.3 * len(owners) + 1.6))
    axes.barh(owners, [standing[o] for o in owners], color=colors)
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set(
        xlabel="mean standing (robust SDs from each round's median owner)",
        title="Standing: the exclude policy's evidence (lower = more suspect; red: excluded)",
    )
    axes.tick_params(axis="y", labelsize=7)
    axes.title.set_fontsize(9)
    return _save(figure, out / "standing.png")


def bytes_per_round(records: Records, out: Path) -> Path | None:
    """Bytes uploaded and downloaded per round."""
    if not records:
        return None
    rounds = [r["round"] for r in records]
    figure, axes = plt.subplots(figsize=(6.5, 3.8))
    axes.plot(rounds, [r["bytes_up"] / 1e6 for r in records], "o-", label="up (owners -> server)")
    axes.plot(rounds, [r["bytes_down"] / 1e6 for r in records], "s--", label="down")
    axes.set(xlabel="round", ylabel="MB", title="Communication per round")
    axes.legend()
    return _save(figure, out / "bytes.png")


RECORD_PLOTS: tuple[Callable[[Records, Path], Path | None], ...] = (
    accuracy_and_loss,
    owner_accuracy_spread,
    epsilon_per_owner,
    bytes_per_round,
)
LEDGER_PLOTS: tuple[Callable[[dict[str, Any] | None, Path], Path | None], ...] = (
    contribution_heatmap,
    reward_shares,
    owner_standing,
)


def draw_all(records: Records, ledger: dict[str, Any] | None, out: Path) -> list[Path]:
    """Every plot the run has data for."""
    drawn = [plot(records, out) for plot in RECORD_PLOTS]
    drawn += [plot(ledger, out) for plot in LEDGER_PLOTS]
    return [path for path in drawn if path is not None]
