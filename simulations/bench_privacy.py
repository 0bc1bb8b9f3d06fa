"""Accuracy under per-owner DP-SGD: digits, 10 owners, MLP, at ε = 8 and ε = 3.

Each (ε, seed) pair is one ordinary ``fedcurate simulate experiment=dp_digits``
run (the tuned DP-SGD recipe; no corruption, no encryption, no curator: the
privacy cost alone), reporting
the selected model's test accuracy and the largest ε an owner spent. The
summary line gives the mean over seeds per ε.

Usage: ``python -m simulations.bench_privacy [--epsilons 8 3] [--seeds 3] [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from fedcurate.config import compose_config
from simulations.runner import run_simulation

BASE = ["experiment=dp_digits", "crypto=none", "curator=none", "corruption=none", "report=false"]


def run_one(epsilon: float, seed: int, extra: list[str], out: Path) -> dict[str, Any]:
    """One DP run; its JSON line."""
    args = [*BASE, f"privacy.epsilon={epsilon}", f"seed={seed}", *extra]
    with contextlib.redirect_stderr(io.StringIO()):
        summary = run_simulation(compose_config(args), args, out / f"eps{epsilon}-seed{seed}")
    config = summary["config"]
    return {
        "bench": "privacy_accuracy",
        "epsilon_budget": epsilon,
        "seed": seed,
        "test_accuracy": summary["best"]["accuracy"],
        "final_test_accuracy": summary["final"]["accuracy"],
        "max_epsilon_spent": summary["privacy"]["max_epsilon"],
        "delta": max(o["delta"] for o in summary["privacy"]["owners"].values()),
        "rounds": summary["rounds_completed"],
        "model": config["model"]["name"],
        "recipe": {
            "batch_size": config["train"]["batch_size"],
            "local_epochs": config["train"]["local_epochs"],
            "lr": config["train"]["lr"],
            "max_grad_norm": config["privacy"]["max_grad_norm"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per run and one summary line per ε."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench privacy",
        description="Test accuracy under per-owner DP-SGD on digits (10 owners, MLP).",
        epilog="example: fedcurate bench privacy --epsilons 8 3 --seeds 3",
    )
    parser.add_argument("--epsilons", type=float, nargs="+", default=[8.0, 3.0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one seed, 10 rounds")
    args = parser.parse_args(argv)
    seeds = 1 if args.quick else args.seeds
    extra = ["num_rounds=10"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        for epsilon in args.epsilons:
            lines = [run_one(epsilon, seed, extra, Path(tmp)) for seed in range(seeds)]
            for line in lines:
                print(json.dumps(line), flush=True)
            accuracies = [line["test_accuracy"] for line in lines]
            summary = {
                "bench": "privacy_accuracy_summary",
                "epsilon_budget": epsilon,
                "seeds": seeds,
                "mean_test_accuracy": statistics.mean(accuracies),
                "min_test_accuracy": min(accuracies),
                "max_epsilon_spent": max(line["max_epsilon_spent"] for line in lines),
            }
            print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
