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

``--accounting`` instead times RDP accounting for the same owners under the
``privacy=dp_sgd`` preset, Opacus (``RDPAccountant.get_epsilon``,
``get_noise_multiplier``) against :mod:`fedcurate.privacy.rdp`, side by side:
one epsilon evaluation of a ledger-like history (new: first call of an owner,
which computes its per-step RDP, and later calls, which reuse it) and the noise
calibration, with every cache cleared first, in wall-clock and CPU time (the
steadier figure on a shared machine). It checks that both give the same floats
and prints one JSON line per owner, then a summary line.

Usage: ``python -m simulations.bench_dp [--quick] [--reps N] [--accounting]``
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from fedcurate.config import Config, PrivacyConfig, compose_config
from fedcurate.data.arrays import ArrayDataset
from fedcurate.data.federation import build_federation
from fedcurate.models.zoo import build_model
from fedcurate.privacy import (
    GRAD_SAMPLE_MODES,
    DPPlan,
    calibrate,
    create_accountant,
    plan_privacy,
    rdp,
)
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


@dataclass(frozen=True)
class Timed:
    """A result with the wall-clock and CPU seconds of the call that made it.

    CPU time is the steadier figure on a shared machine.
    """

    value: float
    wall: float
    cpu: float


def _timed(call: Callable[[], float]) -> Timed:
    wall, cpu = time.perf_counter(), time.process_time()
    value = call()
    return Timed(value, time.perf_counter() - wall, time.process_time() - cpu)


#: A ledger history: ``(noise_multiplier, sample_rate, steps)`` entries.
History = list[tuple[float, float, int]]


def _timed_epsilons(
    epsilon: Callable[[History, float], float], histories: list[History], delta: float
) -> list[Timed]:
    return [_timed(functools.partial(epsilon, history, delta)) for history in histories]


def _opacus_epsilon(history: History, delta: float) -> float:
    accountant = RDPAccountant()
    accountant.history = history
    return float(accountant.get_epsilon(delta=delta))


def _opacus_sigma(plan: DPPlan) -> float:
    return float(
        get_noise_multiplier(
            target_epsilon=plan.epsilon,
            target_delta=plan.delta,
            sample_rate=plan.sample_rate,
            steps=plan.planned_steps,
            accountant="rdp",
        )
    )


def _ms(runs: list[Timed], clock: str) -> float:
    """Median milliseconds of ``runs`` on ``clock`` (``wall`` or ``cpu``)."""
    return round(1e3 * statistics.median(getattr(run, clock) for run in runs), 3)


def accounting_line(plan: DPPlan, reps: int) -> dict[str, Any]:
    """Calibration and epsilon-evaluation times of one owner, Opacus vs fast path.

    The histories are the ledger's after rounds 1 to ``reps + 1``. The fast
    path's first evaluation starts from empty caches, as in a restarted owner
    process, and is reported apart: it computes the owner's per-step RDP.
    """
    calibrate.cache_clear()
    rdp.clear_caches()
    old_sigma = _timed(lambda: _opacus_sigma(plan))
    new_sigma = _timed(lambda: calibrate(plan).noise_multiplier)
    histories: list[History] = [
        [(new_sigma.value, plan.sample_rate, r * plan.steps_per_round)] for r in range(1, reps + 2)
    ]
    old = _timed_epsilons(_opacus_epsilon, histories[1:], plan.delta)
    rdp.clear_caches()
    new = _timed_epsilons(rdp.rdp_epsilon, histories, plan.delta)
    line: dict[str, Any] = {
        "bench": "dp_accounting_owner",
        "num_examples": plan.num_examples,
        "sample_rate": round(plan.sample_rate, 4),
        "planned_steps": plan.planned_steps,
        "sigma": new_sigma.value,
        "same_sigma": old_sigma.value == new_sigma.value,
        "same_epsilon": [o.value for o in old] == [n.value for n in new[1:]],
    }
    for clock in ("wall", "cpu"):
        line[f"calibrate_{clock}_s_opacus"] = round(getattr(old_sigma, clock), 4)
        line[f"calibrate_{clock}_s_new"] = round(getattr(new_sigma, clock), 4)
        line[f"epsilon_{clock}_ms_opacus"] = _ms(old, clock)
        line[f"epsilon_{clock}_ms_new_first"] = _ms(new[:1], clock)
        line[f"epsilon_{clock}_ms_new"] = _ms(new[1:], clock)
    return line


def accounting_summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Calibration totals and maxima over owners; median epsilon-evaluation times."""
    summary: dict[str, Any] = {
        "bench": "dp_accounting_summary",
        "owners": len(lines),
        "same_sigma": all(line["same_sigma"] for line in lines),
        "same_epsilon": all(line["same_epsilon"] for line in lines),
    }
    for clock in ("wall", "cpu"):
        for arm in ("opacus", "new"):
            key = f"calibrate_{clock}_s_{arm}"
            summary[f"calibrate_{clock}_s_total_{arm}"] = round(sum(x[key] for x in lines), 3)
            summary[f"calibrate_{clock}_s_max_{arm}"] = max(x[key] for x in lines)
        for arm in ("opacus", "new_first", "new"):
            key = f"epsilon_{clock}_ms_{arm}"
            summary[f"{key}_median"] = round(statistics.median(x[key] for x in lines), 3)
    return summary


def bench_accounting(reps: int) -> list[dict[str, Any]]:
    """Accounting lines of every owner of the default federation, then the summary."""
    config = compose_config(["privacy=dp_sgd"])
    federation = build_federation(config)
    plans = [
        plan_privacy(config.privacy, config.train, len(owner.train), num_rounds=config.num_rounds)
        for owner in federation.owners
    ]
    lines = [accounting_line(plan, reps) for plan in plans]
    return [*lines, accounting_summary(lines)]


def main(argv: list[str] | None = None) -> int:
    """Measure every arm and print JSON lines."""
    parser = argparse.ArgumentParser(
        prog="python -m simulations.bench_dp",
        description="DP-SGD epoch time vs non-private local SGD, per Opacus grad-sample mode.",
    )
    parser.add_argument("--quick", action="store_true", help="5 repetitions (default 30)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (overrides --quick)")
    parser.add_argument(
        "--accounting",
        action="store_true",
        help="time RDP accounting (Opacus vs fast path) instead; reps = epsilon evaluations "
        "per owner (default 3, --quick 1)",
    )
    args = parser.parse_args(argv)
    if args.accounting:
        for line in bench_accounting(args.reps or (1 if args.quick else 3)):
            print(json.dumps(line))
        return 0
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
