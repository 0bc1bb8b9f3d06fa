"""FedProx vs FedAvg on Synthetic(1,1) with the FedProx paper's protocol.

Li et al. (MLSys 2020): 30 devices, 10 sampled per round, 20 local epochs of
batch-10 SGD at lr 0.01, 200 rounds, proximal mu = 1 (``experiment=fedprox_synthetic``).
Each (strategy, seed) pair is one ordinary ``fedcurate simulate`` run; the
benchmark prints one JSON line per run and a summary line with the mean test
accuracies over seeds, and writes them to ``docs/fedprox_synthetic.json``.

Usage: ``python -m simulations.bench_fedprox [--seeds 3] [--rounds 200] [--out DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

from fedcurate.config import compose_config
from fedcurate.io import atomic_write_json
from simulations.runner import run_simulation

ARMS = {"fedavg": ["strategy=fedavg"], "fedprox": ["strategy=fedprox", "strategy.proximal_mu=1.0"]}


def run_arm(name: str, seed: int, rounds: int, out: Path) -> dict[str, Any]:
    """One simulation of one arm; returns its JSON line."""
    overrides = ["experiment=fedprox_synthetic", *ARMS[name], f"seed={seed}"]
    overrides.append(f"num_rounds={rounds}")
    run_dir = out / f"{name}-seed{seed}"
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        summary = run_simulation(compose_config(overrides), overrides, run_dir)
    return {
        "bench": "fedprox_synthetic",
        "arm": name,
        "seed": seed,
        "rounds": summary["rounds_completed"],
        "final_accuracy": summary["final"]["accuracy"],
        "best_accuracy": summary["best"]["accuracy"],
        "seconds": round(time.perf_counter() - start, 1),
        "run_dir": str(run_dir),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every arm for every seed and report the means."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench fedprox",
        description="FedProx(mu=1) vs FedAvg on FedProx Synthetic(1,1), paper protocol.",
        epilog="example: fedcurate bench fedprox --seeds 3",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    parser.add_argument("--rounds", type=int, default=200, help="rounds per run (default 200)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/fedprox"))
    parser.add_argument("--report", type=Path, default=Path("docs/fedprox_synthetic.json"))
    args = parser.parse_args(argv)
    lines = []
    for seed in range(args.seeds):
        for arm in ARMS:
            line = run_arm(arm, seed, args.rounds, args.out)
            print(json.dumps(line), flush=True)
            lines.append(line)
    means = {
        arm: statistics.mean(line["final_accuracy"] for line in lines if line["arm"] == arm)
        for arm in ARMS
    }
    summary = {
        "bench": "fedprox_synthetic",
        "seeds": args.seeds,
        "rounds": args.rounds,
        "mean_final_accuracy": means,
        "fedprox_minus_fedavg": means["fedprox"] - means["fedavg"],
    }
    print(json.dumps(summary), flush=True)
    atomic_write_json(args.report, {"summary": summary, "runs": lines})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
