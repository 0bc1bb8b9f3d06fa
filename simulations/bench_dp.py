"""DP-SGD cost per local epoch against non-private local SGD, per grad-sample mode.

Default experiment (digits, 10 Dirichlet owners of 58-142 examples, MLP [64],
batch 32, ``train.local_epochs`` epochs per round), one thread. Every repetition
trains every owner once with every arm, interleaved, so a busy shared machine
slows all arms alike. An arm's time is one round of local training from a fresh
model (Opacus wrapping, Poisson sampling, accounting included; model building
and the once-per-owner noise calibration excluded), divided by the epochs. The
noise multiplier is fixed at 1.0: its value does not change the cost.

Prints one JSON line per arm (median and fastest milliseconds per epoch, summed
over owners, and their ratios to non-private training), then a summary line.

Usage: ``python -m simulations.bench_dp [--quick] [--reps N]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from fedcurate.config import Config, PrivacyConfig, compose_config
from fedcurate.data.arrays import ArrayDataset
from fedcurate.data.federation import build_federation
from fedcurate.models.zoo import build_model
from fedcurate.privacy import GRAD_SAMPLE_MODES, calibrate, create_accountant, plan_privacy
from fedcurate.privacy.dp_sgd import train_dp_sgd
from fedcurate.training import train_local

NON_PRIVATE = "non_private"
TARGET_RATIO = 2.5
BENCH_NOISE_MULTIPLIER = 1.0

#: One arm: trains a fresh model on an owner's data; returns seconds spent training.
Arm = Callable[[torch.nn.Module, ArrayDataset, torch.Generator], float]


def non_private_arm(config: Config) -> Arm:
    """``train_local``, the baseline."""

    def run(model: torch.nn.Module, data: ArrayDataset, generator: torch.Generator) -> float:
        start = time.perf_counter()
        train_local(model, data, config.train, generator=generator)
        return time.perf_counter() - start

    return run


def dp_arm(config: Config, mode: str) -> Arm:
    """``train_dp_sgd`` in grad-sample ``mode``, composing into a fresh accountant."""
    privacy = PrivacyConfig(
        name="dp_sgd", noise_multiplier=BENCH_NOISE_MULTIPLIER, grad_sample_mode=mode
    )

    def run(model: torch.nn.Module, data: ArrayDataset, generator: torch.Generator) -> float:
        plan = plan_privacy(privacy, config.train, len(data), num_rounds=config.num_rounds)
        settings, accountant = calibrate(plan), create_accountant(plan.accountant)
        start = time.perf_counter()
        train_dp_sgd(
            model, data, config.train, settings, generator=generator, accountant=accountant
        )
        return time.perf_counter() - start

    return run


def measure(config: Config, arms: dict[str, Arm], reps: int) -> dict[str, list[float]]:
    """Seconds per local epoch (all owners) of every arm, one value per repetition."""
    federation = build_federation(config)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for rep in range(reps):
        totals = dict.fromkeys(arms, 0.0)
        for owner in federation.owners:
            for name, arm in arms.items():
                model = build_model(config.model, federation.spec, seed=rep)
                generator = torch.Generator().manual_seed(1000 * rep + owner.index)
                totals[name] += arm(model, owner.train, generator)
        for name, total in totals.items():
            times[name].append(total / config.train.local_epochs)
    return times


def report(times: dict[str, list[float]]) -> list[dict[str, Any]]:
    """One JSON-ready line per arm with medians, minima and ratios to non-private."""
    base_median = statistics.median(times[NON_PRIVATE])
    base_min = min(times[NON_PRIVATE])
    return [
        {
            "bench": "dp_epoch",
            "arm": name,
            "ms_per_epoch_median": round(1e3 * statistics.median(values), 3),
            "ms_per_epoch_min": round(1e3 * min(values), 3),
            "ratio_median": round(statistics.median(values) / base_median, 3),
            "ratio_min": round(min(values) / base_min, 3),
            "reps": len(values),
        }
        for name, values in times.items()
    ]


def main(argv: list[str] | None = None) -> int:
    """Measure every arm and print JSON lines."""
    parser = argparse.ArgumentParser(
        prog="python -m simulations.bench_dp",
        description="DP-SGD epoch time vs non-private local SGD, per Opacus grad-sample mode.",
    )
    parser.add_argument("--quick", action="store_true", help="5 repetitions (default 30)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (overrides --quick)")
    args = parser.parse_args(argv)
    reps = args.reps or (5 if args.quick else 30)
    torch.set_num_threads(1)
    # Opacus' backward hooks warn on every model whose inputs need no gradient.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    config = compose_config([])
    arms = {NON_PRIVATE: non_private_arm(config)}
    arms.update({mode: dp_arm(config, mode) for mode in GRAD_SAMPLE_MODES})
    lines = report(measure(config, arms, reps))
    for line in lines:
        print(json.dumps(line))
    dp_lines = [line for line in lines if line["arm"] != NON_PRIVATE]
    best = min(dp_lines, key=lambda line: line["ratio_median"])
    summary = {
        "bench": "dp_epoch_summary",
        "model": "mlp[64] digits, batch 32, 10 owners, 1 thread",
        "best_mode": best["arm"],
        "best_ratio_median": best["ratio_median"],
        "target_ratio": TARGET_RATIO,
        "meets_target": best["ratio_median"] <= TARGET_RATIO,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
