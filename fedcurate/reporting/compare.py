"""Side-by-side comparison of finished runs (a sweep, seeds, ablations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from fedcurate.io import atomic_write_text
from fedcurate.reporting.outputs import RunOutputs
from fedcurate.reporting.report import Table, fmt, to_markdown


def run_row(run_dir: Path) -> tuple[str, ...]:
    """One comparison row: what the run was and how it ended."""
    summary = RunOutputs(run_dir).read_summary()
    config = summary["config"]
    privacy = summary.get("privacy") or {}
    curator = summary.get("curator") or {}
    return (
        str(run_dir),
        f"{config['strategy']['name']}/{config['privacy']['name']}/"
        f"{config['crypto']['name']}/{config['curator']['name']}",
        fmt(summary["final"]["accuracy"]),
        fmt(summary["best"]["accuracy"]),
        fmt(privacy.get("max_epsilon")),
        str(len(curator.get("excluded") or {})),
        fmt(summary["communication"].get("bytes_up_per_param"), 2),
        fmt(summary["wall_seconds"], 1),
    )


HEADER = (
    "run",
    "strategy/privacy/crypto/curator",
    "final acc",
    "best acc",
    "max ε",
    "excluded",
    "bytes/param",
    "wall s",
)


def compare_runs(run_dirs: list[Path], out: Path) -> dict[str, Any]:
    """Write ``compare.md`` and ``compare_accuracy.png`` into ``out``."""
    table = Table(HEADER, tuple(run_row(d) for d in run_dirs))
    figure, axes = plt.subplots(figsize=(7, 4))
    for run_dir in run_dirs:
        records = RunOutputs(run_dir).read_metrics()
        rounds = [r["round"] for r in records]
        axes.plot(rounds, [r["central"]["accuracy"] for r in records], ".-", label=run_dir.name)
    axes.set(xlabel="round", ylabel="test accuracy", title="Runs compared")
    axes.legend(fontsize=7)
    out.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out / "compare_accuracy.png", dpi=110)
    plt.close(figure)
    markdown = to_markdown([("Runs", [table])], title="Runs compared")
    atomic_write_text(out / "compare.md", markdown + "\n![accuracy](compare_accuracy.png)\n")
    return {"table": table, "markdown": out / "compare.md"}
