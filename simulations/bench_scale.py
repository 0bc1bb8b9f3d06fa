"""How wall time and peak memory grow with the number of owners and the model size.

Each configuration runs in a fresh process (so peak RSS is its own) on the
in-process backend; the parent prints one JSON line per configuration.

Usage: ``python -m simulations.bench_scale [--quick] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: MLP widths giving about 10k, 100k and 1M parameters on digits (64 inputs, 10 classes).
MODEL_SIZES = {"10k": 135, "100k": 1350, "1M": 13500}
OWNERS = (10, 50, 200)


def run_one(overrides: list[str]) -> dict[str, Any]:
    """Run one simulation in this process; wall time, peak RSS and outcome."""
    import contextlib
    import io

    from fedcurate.config import compose_config
    from simulations.runner import run_simulation

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
        summary = run_simulation(compose_config(overrides), overrides, Path(tmp) / "run")
    return {
        "overrides": overrides,
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "num_params": summary["num_params"],
        "accuracy": summary["final"]["accuracy"],
        "timing": summary["timing"],
    }


def measure(overrides: list[str]) -> dict[str, Any]:
    """:func:`run_one` in a fresh interpreter."""
    command = [sys.executable, "-m", "simulations.bench_scale", "--one", *overrides]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def configurations(quick: bool, rounds: int) -> list[tuple[str, list[str]]]:
    """(label, overrides) of every measurement."""
    base = ["privacy=none", "curator=none", "corruption=none", f"num_rounds={rounds}"]
    owners = (10, 50) if quick else OWNERS
    sizes = {"10k": MODEL_SIZES["10k"]} if quick else MODEL_SIZES
    # 1,797 digits cannot give 200 owners a Dirichlet share each: IID for the owner sweep.
    grid = [
        (f"owners={n}", [*base, "crypto=none", "partition=iid", f"num_clients={n}"]) for n in owners
    ]
    for label, width in sizes.items():
        for crypto in ("none", "ckks"):
            grid.append(
                (
                    f"model={label} crypto={crypto}",
                    [*base, f"crypto={crypto}", "num_clients=10", f"model.hidden=[{width}]"],
                )
            )
    return grid


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per configuration."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench scale",
        description="Wall time and peak memory vs number of owners and model size.",
        epilog="example: fedcurate bench scale --quick",
    )
    parser.add_argument("--quick", action="store_true", help="10 and 50 owners, 10k model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one)))
        return 0
    for label, overrides in configurations(args.quick, args.rounds):
        print(json.dumps({"bench": "scale", "case": label, **measure(overrides)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
