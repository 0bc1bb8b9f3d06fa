"""What each protection costs: DP, CKKS and the curator added one by one.

Two training recipes, both on digits with 10 owners, two of them holding noisy
labels:

* ``quickstart``: the quick start's recipe (``experiment=dp_digits``: one
  full-batch step per owner per round, 60 rounds), where local training is
  cheap;
* ``default``: the default local training (2 epochs of batch-32 SGD, 20 rounds).

Each recipe runs four arms:

* ``plain``: no DP, no encryption, no curator;
* ``dp``: owners train with DP-SGD (ε = 8);
* ``dp+ckks``: and send CKKS-encrypted updates (aggregation-only preset);
* ``dp+ckks+curator``: and the curator scores every owner on the ciphertexts
  (first-order values, scoring-capable preset, ``exclude`` policy).

The arms run one after another in this process after a short warm-up run, so
they share caches and imports; each arm runs ``--repeats`` times (default 2)
and keeps its fastest run, so a first-run cost (DP calibration, say) or a
busy moment of the machine does not land on one arm. Each line gives the
run's wall time, its
per-stage seconds (``summary.json`` ``timing``: local training and encryption
summed over owners, server aggregation, curator scoring, decryption) and the
ratio to ``plain``. A summary line per recipe states how much encryption adds
to the wall time of the DP run (the issue's target: at most 25 %).

Usage: ``python -m simulations.bench_overhead [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from fedcurate.config import compose_config
from simulations.runner import run_simulation

#: Recipe -> (overrides without protections, rounds).
RECIPES: dict[str, tuple[list[str], int]] = {
    "quickstart": (["experiment=dp_digits", "corruption=label_noise"], 60),
    "default": (["corruption=label_noise"], 20),
}
ARMS: dict[str, list[str]] = {
    "plain": ["privacy=none", "crypto=none", "curator=none"],
    "dp": ["privacy=dp_sgd", "crypto=none", "curator=none"],
    "dp+ckks": ["privacy=dp_sgd", "crypto=ckks", "curator=none"],
    "dp+ckks+curator": [
        "privacy=dp_sgd",
        "crypto=ckks",
        "curator=first_order",
        "curator.policy=exclude",
    ],
}
#: Encryption's share of the DP run's wall time the issue allows.
TARGET_ENCRYPTION_SHARE = 0.25


def run_arm(overrides: list[str], out: Path) -> dict[str, Any]:
    """One run; its wall time and stage times."""
    overrides = [*overrides, "report=false"]
    with contextlib.redirect_stderr(io.StringIO()):
        summary = run_simulation(compose_config(overrides), overrides, out)
    return {
        "seconds": summary["wall_seconds"],
        "timing": {k: round(v, 3) for k, v in summary["timing"].items()},
        "accuracy": summary["final"]["accuracy"],
        "bytes_up_per_param": summary["communication"]["bytes_up_per_param"],
    }


def measure_recipe(recipe: str, rounds: int, repeats: int, work: Path) -> dict[str, dict[str, Any]]:
    """Every arm of ``recipe``, fastest of ``repeats`` runs; prints one JSON line per arm."""
    base = [*RECIPES[recipe][0], f"num_rounds={rounds}"]
    results: dict[str, dict[str, Any]] = {}
    for arm, protections in ARMS.items():
        runs = [
            run_arm([*base, *protections], work / recipe / f"{arm}-{repeat}")
            for repeat in range(repeats)
        ]
        results[arm] = min(runs, key=lambda run: run["seconds"])
        line = {"bench": "overhead", "recipe": recipe, "arm": arm, "rounds": rounds}
        line.update(results[arm])
        line["ratio_to_plain"] = results[arm]["seconds"] / results["plain"]["seconds"]
        print(json.dumps(line), flush=True)
    return results


def summarise(recipe: str, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The recipe's summary line: what DP, encryption and the curator add."""
    dp, encrypted = results["dp"]["seconds"], results["dp+ckks"]["seconds"]
    share = (encrypted - dp) / dp
    timing = results["dp+ckks"]["timing"]
    return {
        "bench": "overhead_summary",
        "recipe": recipe,
        "dp_over_plain": dp / results["plain"]["seconds"],
        "encryption_adds_to_dp_run": share,
        "curator_adds_to_encrypted_run": results["dp+ckks+curator"]["seconds"] / encrypted - 1,
        "encrypt_over_train_seconds": timing["encrypt"] / timing["train"],
        "target_encryption_share": TARGET_ENCRYPTION_SHARE,
        "meets_target": share <= TARGET_ENCRYPTION_SHARE,
    }


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per arm and a summary line per recipe."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench overhead",
        description="Wall time with DP, CKKS and the curator added one by one, two recipes.",
        epilog="example: fedcurate bench overhead --quick",
    )
    parser.add_argument("--quick", action="store_true", help="a sixth of the rounds, one run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per arm (default 2)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_arm([*RECIPES["quickstart"][0], *ARMS["dp+ckks+curator"], "num_rounds=2"], work / "w")
        repeats = 1 if args.quick else args.repeats
        for recipe, (_, planned) in RECIPES.items():
            rounds = max(planned // 6, 3) if args.quick else planned
            results = measure_recipe(recipe, rounds, repeats, work)
            print(json.dumps(summarise(recipe, results)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
