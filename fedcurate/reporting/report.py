"""``report.md`` and a self-contained ``report.html`` for a run directory.

The report is built once as a list of blocks (text, tables, images) and then
rendered to Markdown and to HTML, so both always say the same thing. Every
number comes from ``summary.json``, ``metrics.jsonl`` or ``ledger.json``.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedcurate.io import atomic_write_text
from fedcurate.reporting.outputs import RunOutputs
from fedcurate.reporting.plots import draw_all, worst_decile_mean

LEDGER_FILE = "ledger.json"


@dataclass(frozen=True)
class Text:
    """A paragraph."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table with a header row."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    """A plot, stored relative to the run directory."""

    path: str
    alt: str


Block = Text | Table | Image
Section = tuple[str, list[Block]]


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers rounded for reading; everything else as text."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "—" if value is None else str(value)


def _outcome(summary: dict[str, Any]) -> list[Block]:
    final, best = summary["final"], summary["best"]
    config = summary["config"]
    setup = (
        f"{config['dataset']['name']}, {summary['num_clients']} owners "
        f"({config['partition']['name']} partition), {config['model']['name']}, "
        f"{config['strategy']['name']}; privacy={config['privacy']['name']}, "
        f"crypto={config['crypto']['name']}, curator={config['curator']['name']}"
    )
    rows = (
        ("final test accuracy", fmt(final["accuracy"])),
        ("final test loss", fmt(final["loss"])),
        ("best test accuracy", f"{fmt(best['accuracy'])} (round {fmt(best['round'])})"),
        ("rounds completed", fmt(summary["rounds_completed"])),
        ("wall time (s)", fmt(summary["wall_seconds"], 1)),
    )
    return [Text(setup), Table(("metric", "value"), rows)]


def _fairness(records: list[dict[str, Any]]) -> list[Block]:
    evaluated = [r for r in records if r.get("federated") and r["federated"].get("per_owner")]
    if not evaluated:
        return [Text("No owner released an evaluation on its own data in this run.")]
    last = evaluated[-1]
    array = np.array([m["accuracy"] for m in last["federated"]["per_owner"].values()])
    rows = (
        ("owners evaluated", str(len(array))),
        ("median owner accuracy", fmt(float(np.median(array)))),
        ("worst 10 % owners (mean accuracy)", fmt(worst_decile_mean(array))),
        ("worst owner accuracy", fmt(float(array.min()))),
    )
    return [
        Text(f"Evaluation of round {last['round']} on each owner's test split."),
        Table(("metric", "value"), rows),
    ]


def _privacy(summary: dict[str, Any]) -> list[Block]:
    privacy = summary.get("privacy")
    if not privacy:
        return [Text("No differential privacy in this run.")]
    blocks: list[Block] = (
        [Text(privacy.get("description", ""))] if privacy.get("description") else []
    )
    owners = privacy.get("owners") or {}
    if owners:
        rows = tuple(
            (
                name,
                fmt(entry.get("epsilon")),
                fmt(entry.get("delta"), 8),
                fmt(entry.get("noise_multiplier")),
                fmt(entry.get("rounds_trained")),
                "yes" if entry.get("stopped_on_budget") else "no",
            )
            for name, entry in sorted(owners.items())
        )
        header = (
            "owner",
            "ε spent",
            "δ",
            "noise multiplier",
            "rounds trained",
            "stopped on budget",
        )
        blocks.append(Table(header, rows))
    return blocks


def _curator(summary: dict[str, Any]) -> list[Block]:
    curator = summary.get("curator")
    if not curator:
        return [Text("No curator in this run.")]
    blocks: list[Block] = [
        Text(f"Method: {curator.get('method')}; policy: {curator.get('policy')}.")
    ]
    excluded = curator.get("excluded") or {}
    if excluded:
        rows = tuple((name, str(reason)) for name, reason in sorted(excluded.items()))
        blocks.append(Table(("excluded owner", "why"), rows))
    else:
        blocks.append(Text("No owner was excluded."))
    shares = curator.get("reward_shares") or {}
    values = curator.get("values") or {}
    standing = curator.get("standing") or {}
    if shares:
        value_rows = tuple(
            (name, fmt(values.get(name)), fmt(share), fmt(standing.get(name)))
            for name, share in sorted(shares.items())
        )
        blocks.append(
            Text(
                "Credit: each owner's values summed over its rounds, in shares of an equal "
                "split of an average round (a round counts by the value it handed out); "
                "reward shares follow positive credit. Standing: the exclude policy's "
                "evidence, the owner's mean place among each round's participants in robust "
                "standard deviations (credit and data-quality signals); the lower, the more "
                "suspect."
            )
        )
        blocks.append(Table(("owner", "credit", "reward share", "standing"), value_rows))
    return blocks


def _communication(summary: dict[str, Any]) -> list[Block]:
    communication = summary["communication"]
    rows: list[tuple[str, ...]] = [
        ("bytes per parameter per update (up)", fmt(communication.get("bytes_up_per_param"), 2)),
        ("total MB up", fmt(communication["bytes_up"] / 1e6, 2)),
        ("total MB down", fmt(communication["bytes_down"] / 1e6, 2)),
    ]
    if communication.get("curator_bytes"):
        curator_mb = fmt(communication["curator_bytes"] / 1e6, 2)
        rows.append(("total MB exchanged with the curator node", curator_mb))
    for name, seconds in (summary.get("timing") or {}).items():
        rows.append((f"{name} seconds (total)", fmt(seconds, 2)))
    return [Table(("metric", "value"), tuple(rows))]


def _corruption(summary: dict[str, Any]) -> list[Block]:
    truth = summary.get("corruption") or {}
    if not truth:
        return [Text("No simulated corruption.")]
    rows = tuple((name, kind) for name, kind in sorted(truth.items()))
    return [Table(("owner", "simulated corruption (ground truth)"), rows)]


def _images(plots: list[Path], run_dir: Path, names: tuple[str, ...]) -> list[Block]:
    return [
        Image(str(p.relative_to(run_dir)), p.stem.replace("_", " "))
        for p in plots
        if p.stem in names
    ]


def build_sections(run_dir: Path) -> list[Section]:
    """Draw the plots and assemble the report's sections."""
    outputs = RunOutputs(run_dir)
    summary, records = outputs.read_summary(), outputs.read_metrics()
    ledger_path = run_dir / LEDGER_FILE
    ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else None
    plots = draw_all(records, ledger, run_dir / "plots")
    return [
        ("Outcome", _outcome(summary) + _images(plots, run_dir, ("accuracy_loss",))),
        (
            "Fairness across owners",
            _fairness(records) + _images(plots, run_dir, ("owner_accuracy",)),
        ),
        ("Privacy", _privacy(summary) + _images(plots, run_dir, ("epsilon",))),
        (
            "Contributions",
            _curator(summary) + _images(plots, run_dir, ("contributions", "rewards", "standing")),
        ),
        ("Communication", _communication(summary) + _images(plots, run_dir, ("bytes",))),
        ("Simulated data quality", _corruption(summary)),
    ]


def to_markdown(sections: list[Section], title: str = "fedcurate run report") -> str:
    """Render sections as Markdown."""
    lines = [f"# {title}", ""]
    for heading, blocks in sections:
        lines += [f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, Text):
                lines += [block.text, ""]
            elif isinstance(block, Table):
                lines.append("| " + " | ".join(block.header) + " |")
                lines.append("|" + "---|" * len(block.header))
                lines += ["| " + " | ".join(row) + " |" for row in block.rows]
                lines.append("")
            else:
                lines += [f"![{block.alt}]({block.path})", ""]
    return "\n".join(lines)


def to_html(sections: list[Section], run_dir: Path) -> str:
    """Render sections as one self-contained HTML page (images inlined)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>fedcurate run report</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        "img{max-width:100%}</style></head><body><h1>fedcurate run report</h1>",
    ]
    for title, blocks in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for block in blocks:
            if isinstance(block, Text):
                parts.append(f"<p>{html.escape(block.text)}</p>")
            elif isinstance(block, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    for row in block.rows
                )
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
            else:
                data = base64.b64encode((run_dir / block.path).read_bytes()).decode()
                parts.append(
                    f"<img alt='{html.escape(block.alt)}' src='data:image/png;base64,{data}'>"
                )
    parts.append("</body></html>")
    return "\n".join(parts)


def render_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``plots/*.png`` for a run directory."""
    run_dir = Path(run_dir)
    sections = build_sections(run_dir)
    markdown = atomic_write_text(run_dir / "report.md", to_markdown(sections))
    page = atomic_write_text(run_dir / "report.html", to_html(sections, run_dir))
    return markdown, page
