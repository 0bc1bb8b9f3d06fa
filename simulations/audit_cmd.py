"""``fedcurate audit-privacy``: check the accountant's ε against an empirical lower bound.

Runs the one-run canary audit (Steinke, Nasr, Jagielski, NeurIPS 2023) on one
owner's DP-SGD with exactly the settings a run would give that owner (noise
multiplier, clipping norm, sample rate, every planned step), prints the lower
bound ε_lb next to the accountant's ε, and exits non-zero when ε_lb exceeds it.
"""

from __future__ import annotations

import argparse
import json

from fedcurate.config import ConfigError, compose_config
from fedcurate.data import build_federation, owner_name
from fedcurate.privacy import audit_dp_sgd, calibrate, plan_privacy
from fedcurate.seeding import torch_generator


def main(argv: list[str]) -> int:
    """Audit one owner's DP-SGD; exit 1 when the claim is refuted."""
    parser = argparse.ArgumentParser(
        prog="fedcurate audit-privacy",
        description="One-run canary audit of an owner's DP-SGD with the run's settings.",
        epilog="example: fedcurate audit-privacy privacy=dp_sgd privacy.epsilon=3 --owner 2",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the run to audit")
    parser.add_argument("--owner", type=int, default=0, help="owner index (default 0)")
    parser.add_argument("--canaries", type=int, default=384, help="number of canaries m")
    args = parser.parse_args(argv)
    config = compose_config(["privacy=dp_sgd", *args.overrides])
    owners = build_federation(config).owners
    if not 0 <= args.owner < len(owners):
        raise ConfigError(f"--owner: {args.owner} is not in 0..{len(owners) - 1}")
    planned = config.privacy.planned_rounds or config.num_rounds
    plan = plan_privacy(
        config.privacy, config.train, len(owners[args.owner].train), num_rounds=planned
    )
    settings = calibrate(plan)
    result = audit_dp_sgd(
        settings,
        generator=torch_generator(config.seed, "audit", args.owner),
        num_canaries=args.canaries,
    )
    print(
        json.dumps(
            {
                "owner": owner_name(args.owner),
                "epsilon_claimed": result.epsilon_claimed,
                "epsilon_lower_bound": result.epsilon_lower_bound,
                "delta": plan.delta,
                "noise_multiplier": settings.noise_multiplier,
                "steps": result.steps,
                "canaries": result.num_canaries,
                "guesses": result.guesses,
                "correct": result.correct,
                "passed": result.passed,
            }
        )
    )
    verdict = "consistent with" if result.passed else "REFUTES"
    print(
        f"empirical ε ≥ {result.epsilon_lower_bound:.3f} {verdict} the accountant's "
        f"ε = {result.epsilon_claimed:.3f} (δ = {plan.delta:g})"
    )
    return 0 if result.passed else 1
