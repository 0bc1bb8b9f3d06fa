"""``fedcurate bench all``: run the benchmark suite and write ``docs/benchmarks.md``.

Each sub-benchmark runs as ``fedcurate bench NAME`` would (its JSON lines are
kept verbatim in ``docs/bench/NAME.jsonl``, its wall time and date in
``docs/bench/runs.json``); this command only collects them, states the machine,
and renders the tables. ``--only`` reruns some benchmarks and keeps the others'
sections as their last run left them, each section dated. Every number in the
README comes from the file this command writes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import io
import json
import os
import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fedcurate.io import atomic_write_json, atomic_write_text

Line = dict[str, Any]


def _all(_: Line) -> bool:
    return True


#: name -> (arguments in quick mode, arguments in full mode, which lines to tabulate, title)
SUITE: dict[str, tuple[list[str], list[str], Callable[[Line], bool], str]] = {
    "sim": (["--quick"], [], _all, "Simulation speed: in-process vs Flower engine vs pure PyTorch"),
    "dp": (["--quick"], [], _all, "DP-SGD epoch cost vs non-private training"),
    "he": (
        ["--quick"],
        [],
        lambda line: line.get("bench") in {"he_preset", "he_inner_product", "he_summary"},
        "CKKS presets vs NVIDIA FLARE's parameters",
    ),
    "valuation": (
        ["--quick"],
        [],
        lambda line: bool(line.get("summary") or line.get("target")),
        "Valuation estimators vs exact Shapley (n = 10)",
    ),
    "scale": (["--quick"], [], _all, "Wall time and peak memory vs owners and model size"),
    "overhead": (["--quick"], [], _all, "What each protection costs (quick-start run)"),
    "privacy": (["--quick"], [], _all, "Test accuracy under per-owner DP-SGD (digits, 10 owners)"),
    "quality": (["--quick"], [], _all, "Label-error detection and annotation at a site"),
    "ledger": (["--quick"], [], _all, "Curator bookkeeping per round as a run grows long"),
}
#: Wall time, date and mode of each benchmark's last run, beside its JSON lines.
RUNS_FILE = "runs.json"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f"{total_kb / 1024**2:.1f} GiB"
    versions = {
        name: metadata.version(name) for name in ("torch", "flwr", "opacus", "tenseal", "numpy")
    }
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        **versions,
    }


def run_benchmark(name: str, argv: list[str]) -> tuple[list[Line], float]:
    """Run ``fedcurate bench NAME ARGV`` in this process; its JSON lines and seconds."""
    module = importlib.import_module(f"simulations.bench_{name}")
    captured = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(io.StringIO()):
        module.main(argv)
    lines = [json.loads(text) for text in captured.getvalue().splitlines() if text.startswith("{")]
    return lines, time.perf_counter() - start


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"))
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


def table(lines: list[Line]) -> list[str]:
    """Markdown tables, one per shape of line (the same set of keys)."""
    shapes: dict[tuple[str, ...], list[Line]] = {}
    for line in lines:
        shapes.setdefault(tuple(line), []).append(line)
    rendered = []
    for keys, rows in shapes.items():
        rendered += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        rendered += ["| " + " | ".join(_cell(row[k]) for k in keys) + " |" for row in rows]
        rendered.append("")
    return rendered


def render(sections: dict[str, tuple[list[Line], dict[str, Any]]], facts: dict[str, Any]) -> str:
    """The whole ``docs/benchmarks.md``: one section per benchmark (lines, and its run's facts)."""
    out = [
        "# Benchmarks",
        "",
        "Written by `fedcurate bench all`; raw JSON lines are in `docs/bench/`, and "
        "`fedcurate bench all --only NAME` reruns one section (each section says when it "
        "ran). Ratios are measured side by side in one run; absolute times depend on the "
        "machine (and on whatever else it was doing).",
        "",
        "Machine of the latest run: " + ", ".join(f"{k} {v}" for k, v in facts.items()),
        "",
        "Two benchmarks take too long for this suite and write their own files: "
        "`fedcurate bench fedprox` (`docs/fedprox_synthetic.json`) and "
        "`fedcurate bench curator` (`docs/curator_benchmark.md`).",
        "",
    ]
    for name, (lines, run) in sections.items():
        keep, title = SUITE[name][2:]
        mode = ", --quick" if run["quick"] else ""
        ran = f"`fedcurate bench {name}` ({run['seconds']:.0f} s on {run['date']}{mode})"
        out += [f"## {title}", "", ran, ""]
        out += table([line for line in lines if keep(line)])
    return "\n".join(out)


def stored_sections(bench_dir: Path) -> dict[str, tuple[list[Line], dict[str, Any]]]:
    """Every benchmark of the suite with stored lines and run facts, in suite order."""
    runs_path = bench_dir / RUNS_FILE
    runs = json.loads(runs_path.read_text()) if runs_path.exists() else {}
    sections = {}
    for name in SUITE:
        path = bench_dir / f"{name}.jsonl"
        if name in runs and path.exists():
            lines = [json.loads(text) for text in path.read_text().splitlines() if text]
            sections[name] = (lines, runs[name])
    return sections


def main(argv: list[str] | None = None) -> int:
    """Run the suite (or ``--only`` some of it), save raw lines, write the markdown."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench all",
        description="Run every benchmark and write docs/benchmarks.md (and docs/bench/*.jsonl).",
        epilog="example: fedcurate bench all --quick --only sim he",
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized runs of each benchmark")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), help="a subset")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="output directory")
    args = parser.parse_args(argv)
    bench_dir = args.docs / "bench"
    runs_path = bench_dir / RUNS_FILE
    runs = json.loads(runs_path.read_text()) if runs_path.exists() else {}
    facts = machine()
    for name in tqdm(args.only or list(SUITE), desc="benchmarks", unit="bench"):
        quick_args, full_args, _, _ = SUITE[name]
        lines, seconds = run_benchmark(name, quick_args if args.quick else full_args)
        atomic_write_text(bench_dir / f"{name}.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
        runs[name] = {"seconds": seconds, "date": facts["date"], "quick": args.quick}
        atomic_write_json(runs_path, runs)
    atomic_write_text(args.docs / "benchmarks.md", render(stored_sections(bench_dir), facts))
    print(f"wrote {args.docs / 'benchmarks.md'}")
    return 0
