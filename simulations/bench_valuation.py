"""How close do the valuation estimators come to exact per-round Shapley values?

Real FedAvg rounds on digits with n = 10 owners, a couple of them corrupted:
every owner trains locally from the common global model ``w_t`` (the same
``train_local`` the owners run), corrupted owners corrupt their data or their
update as ``fedcurate.data.corruption`` prescribes, and the global model moves
on by FedAvg over all owners. In every round each method values the same
updates; exact Shapley (all 1024 coalition models) is the reference.

Printed as JSON lines: one per (scenario, round, utility, method) with
Spearman and Pearson correlation against exact Shapley, evaluations spent and
their fraction of exact's, and the AUROC of telling corrupted owners from
honest ones by low value; then one summary line per (utility, method) over
every round; then one line saying whether GTG-Shapley met its target
(Spearman >= 0.90 with <= 25 % of exact's evaluations).

    python -m simulations.bench_valuation            # 3 scenarios x 10 rounds
    python -m simulations.bench_valuation --quick    # 1 scenario x 3 rounds
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from scipy import stats  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score

from fedcurate.config import Config, compose_config
from fedcurate.curation import (
    UTILITIES,
    VALUATION_METHODS,
    CoalitionModels,
    RoundUpdates,
    ValidationEvaluator,
    Valuation,
    ValuationContext,
)
from fedcurate.curation.exact import exact_shapley
from fedcurate.data import Federation, build_federation, owner_name
from fedcurate.data.corruption import FREE_RIDER_KINDS, UPDATE_KINDS, corrupt_update
from fedcurate.models import build_model
from fedcurate.seeding import numpy_rng, torch_generator
from fedcurate.training import train_local

#: Scenario name -> Hydra overrides (two corrupted owners among ten).
SCENARIOS: dict[str, list[str]] = {
    "label_flip": ["corruption=label_flip", "corruption.owners=[2,7]"],
    "label_noise": ["corruption=label_noise", "corruption.owners=[1,5]"],
    "free_rider_replay": ["corruption=free_rider_replay", "corruption.owners=[3,8]"],
}
#: Label -> (registry method, curator overrides); "/marginal" is the paper's GTG estimator.
COMPARED_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "gtg_shapley": ("gtg_shapley", {}),
    "gtg_shapley/marginal": ("gtg_shapley", {"gtg_estimator": "marginal"}),
    "banzhaf": ("banzhaf", {}),
    "loo": ("loo", {}),
    "first_order": ("first_order", {}),
    "fltrust": ("fltrust", {}),
}
GTG_TARGET_SPEARMAN = 0.90
GTG_TARGET_FRACTION = 0.25


@dataclass(frozen=True)
class SimulatedRound:
    """One round's updates and which owners are corrupted (the ground truth)."""

    round: int
    updates: RoundUpdates
    corrupted: frozenset[str]


def simulate_rounds(
    config: Config,
    evaluator: ValidationEvaluator,
    rounds: int,
    federation: Federation | None = None,
) -> Iterator[SimulatedRound]:
    """Train every owner of ``config``'s federation from a common ``w_t``, round after round.

    The first ``w_t`` is the evaluator's template model (``config``'s seeded
    initialisation). Data corruptions are already in the federation's owner
    data; update corruptions (free riders, sign flips, scaling) replace what the
    owner sends. After each yielded round the global model moves by FedAvg over
    all updates, weighted by the owners' example counts. ``federation`` replaces
    the one ``config`` describes (e.g. with two owners holding the same data).
    """
    federation = federation or build_federation(config)
    global_weights = evaluator.flatten(evaluator.model)
    last_change: np.ndarray | None = None
    corrupted = {owner_name(i): kind for i, kind in federation.corruption.items()}
    for server_round in range(1, rounds + 1):
        updates, weights = {}, {}
        for owner in federation.owners:
            name = owner_name(owner.index)
            kind = corrupted.get(name, "none")
            honest = None
            if kind not in FREE_RIDER_KINDS:
                model = evaluator.model_with(global_weights)
                generator = torch_generator(config.seed, "train", name, server_round)
                train_local(model, owner.train, config.train, generator=generator)
                honest = evaluator.flatten(model) - global_weights
            if kind in UPDATE_KINDS:
                updates[name] = corrupt_update(
                    honest,
                    config.corruption,
                    last_global_change=last_change,
                    global_weights=global_weights,
                    rng=numpy_rng(config.seed, "corrupt-update", name, server_round),
                )
            else:
                assert honest is not None
                updates[name] = honest
            weights[name] = float(len(owner.train))
        round_updates = RoundUpdates(global_weights, updates, weights)
        yield SimulatedRound(server_round, round_updates, frozenset(corrupted))
        last_change = round_updates.weight_vector() @ round_updates.stacked_updates()
        last_change /= round_updates.weight_vector().sum()
        global_weights = global_weights + last_change


def _finite(value: float) -> float | None:
    """``None`` for NaN or infinity (JSON has neither)."""
    return float(value) if math.isfinite(value) else None


def _correlations(
    reference: dict[str, float], estimate: dict[str, float]
) -> tuple[float | None, float | None]:
    """Spearman and Pearson correlation (``None`` when either side is constant)."""
    names = sorted(reference)
    a = np.array([reference[n] for n in names])
    b = np.array([estimate[n] for n in names])
    if np.ptp(a) == 0.0 or np.ptp(b) == 0.0:
        return None, None
    return _finite(stats.spearmanr(a, b)[0]), _finite(stats.pearsonr(a, b)[0])


def _detection_auroc(values: dict[str, float], corrupted: frozenset[str]) -> float | None:
    """AUROC of ranking corrupted owners below honest ones by value."""
    names = sorted(values)
    labels = [name in corrupted for name in names]
    if all(labels) or not any(labels):
        return None
    return float(roc_auc_score(labels, [-values[n] for n in names]))


def _reference_utility(valuation: Valuation, configured: str) -> str:
    """The exact game a method is compared with: the utility its values are in."""
    if valuation.utility in UTILITIES:
        return valuation.utility
    return "loss" if valuation.method == "first_order" else configured


def bench_round(
    simulated: SimulatedRound, config: Config, evaluator: ValidationEvaluator
) -> Iterator[dict[str, Any]]:
    """One JSON record per (utility, compared method) for one round."""
    exact_models = CoalitionModels(evaluator, simulated.updates)
    exact = {utility: exact_shapley(exact_models.game(utility)) for utility in UTILITIES}
    exact_evaluations = exact_models.evaluations
    federation = build_federation(config)
    for utility in UTILITIES:
        for label, (method, overrides) in COMPARED_METHODS.items():
            curator = replace(config.curator, utility=utility, **overrides)
            rng = numpy_rng(config.seed, "bench", method, utility, simulated.round)
            context = ValuationContext(evaluator, federation.validation, curator, config.train, rng)
            started = time.perf_counter()
            valuation = VALUATION_METHODS[method](simulated.updates, context)
            seconds = time.perf_counter() - started
            reference = _reference_utility(valuation, utility)
            spearman, pearson = _correlations(exact[reference], valuation.values)
            yield {
                "round": simulated.round,
                "utility": utility,
                "method": label,
                "reference": reference,
                "spearman": spearman,
                "pearson": pearson,
                "evaluations": valuation.evaluations,
                "evaluation_fraction": valuation.evaluations / exact_evaluations,
                "auroc": _detection_auroc(valuation.values, simulated.corrupted),
                "exact_auroc": _detection_auroc(exact[reference], simulated.corrupted),
                "seconds": round(seconds, 4),
                "note": valuation.note,
            }


def _mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of every metric per (utility, method), over scenarios and rounds."""
    summaries = []
    keys = sorted({(r["utility"], r["method"]) for r in records})
    for utility, method in keys:
        chosen = [r for r in records if r["utility"] == utility and r["method"] == method]
        summaries.append(
            {
                "summary": True,
                "utility": utility,
                "method": method,
                "rounds": len(chosen),
                "spearman_mean": _mean([r["spearman"] for r in chosen]),
                "spearman_min": min(
                    (r["spearman"] for r in chosen if r["spearman"] is not None), default=None
                ),
                "pearson_mean": _mean([r["pearson"] for r in chosen]),
                "evaluations_mean": _mean([r["evaluations"] for r in chosen]),
                "evaluation_fraction_mean": _mean([r["evaluation_fraction"] for r in chosen]),
                "evaluation_fraction_max": max(r["evaluation_fraction"] for r in chosen),
                "auroc_mean": _mean([r["auroc"] for r in chosen]),
                "exact_auroc_mean": _mean([r["exact_auroc"] for r in chosen]),
            }
        )
    return summaries


def gtg_verdict(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether GTG-Shapley met the target under each utility."""
    verdict: dict[str, Any] = {
        "target": "gtg_shapley",
        "spearman_at_least": GTG_TARGET_SPEARMAN,
        "evaluation_fraction_at_most": GTG_TARGET_FRACTION,
    }
    for summary in summaries:
        if summary["method"] != "gtg_shapley":
            continue
        met = (
            summary["spearman_mean"] is not None
            and summary["spearman_mean"] >= GTG_TARGET_SPEARMAN
            and summary["evaluation_fraction_mean"] <= GTG_TARGET_FRACTION
        )
        verdict[summary["utility"]] = {
            "spearman_mean": summary["spearman_mean"],
            "evaluation_fraction_mean": summary["evaluation_fraction_mean"],
            "met": met,
        }
    return verdict


def run(
    scenarios: Sequence[str], rounds: int, seed: int, *, echo: bool = True
) -> list[dict[str, Any]]:
    """Every scenario's rounds, printed as they finish (``echo``); returns the records."""
    records = []
    for scenario in scenarios:
        config = compose_config([*SCENARIOS[scenario], f"seed={seed}", "curator=gtg_shapley"])
        federation = build_federation(config)
        template = build_model(config.model, federation.spec, config.seed)
        evaluator = ValidationEvaluator(template, federation.validation)
        for simulated in simulate_rounds(config, evaluator, rounds):
            for result in bench_round(simulated, config, evaluator):
                record = {"scenario": scenario, "seed": seed, **result}
                if echo:
                    print(json.dumps(record), flush=True)
                records.append(record)
    return records


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one scenario, three rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scenarios = args.scenario or (["label_flip"] if args.quick else list(SCENARIOS))
    rounds = args.rounds or (3 if args.quick else 10)
    records = run(scenarios, rounds, args.seed)
    summaries = summarise(records)
    for summary in summaries:
        print(json.dumps(summary), flush=True)
    print(json.dumps(gtg_verdict(summaries)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
