"""``fedcurate bench all``: run the benchmark suite and write ``docs/benchmarks.md``.

Each sub-benchmark runs as ``fedcurate bench NAME`` would (its JSON lines are
kept verbatim in ``docs/bench/NAME.jsonl``); this command only collects them,
states the machine, and renders the tables. Every number in the README comes
from the file this command writes.
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

from fedcurate.io import atomic_write_text

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
}


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


def render(results: dict[str, tuple[list[Line], float]], quick: bool) -> str:
    """The whole ``docs/benchmarks.md``."""
    facts = machine()
    out = [
        "# Benchmarks",
        "",
        "Written by `fedcurate bench all" + (" --quick" if quick else "") + "`; raw JSON lines "
        "are in `docs/bench/`. Ratios are measured side by side in one run; absolute "
        "times depend on the machine (and on whatever else it was doing).",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()),
        "",
        "Two benchmarks take too long for this suite and write their own files: "
        "`fedcurate bench fedprox` (`docs/fedprox_synthetic.json`) and "
        "`fedcurate bench curator` (`docs/curator_benchmark.md`).",
        "",
    ]
    for name, (lines, seconds) in results.items():
        keep, title = SUITE[name][2:]
        out += [f"## {title}", "", f"`fedcurate bench {name}` ({seconds:.0f} s)", ""]
        out += table([line for line in lines if keep(line)])
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run the suite, save raw lines, write the markdown."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench all",
        description="Run every benchmark and write docs/benchmarks.md (and docs/bench/*.jsonl).",
        epilog="example: fedcurate bench all --quick --only sim he",
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized runs of each benchmark")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), help="a subset")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="output directory")
    args = parser.parse_args(argv)
    names = args.only or list(SUITE)
    results: dict[str, tuple[list[Line], float]] = {}
    for name in tqdm(names, desc="benchmarks", unit="bench"):
        quick_args, full_args, _, _ = SUITE[name]
        results[name] = run_benchmark(name, quick_args if args.quick else full_args)
        raw = "".join(json.dumps(line) + "\n" for line in results[name][0])
        atomic_write_text(args.docs / "bench" / f"{name}.jsonl", raw)
    atomic_write_text(args.docs / "benchmarks.md", render(results, args.quick))
    print(f"wrote {args.docs / 'benchmarks.md'}")
    return 0
