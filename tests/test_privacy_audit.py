"""One-run canary audit: the bound itself, a correct run, injected faults, a no-noise control."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
from opacus.optimizers import DPOptimizer
from torch.optim import Optimizer

from fedcurate.privacy import AuditResult, DPPlan, DPSettings, audit_dp_sgd, epsilon_lower_bound
from fedcurate.privacy.audit import audit_p_value
from fedcurate.privacy.mechanisms import wrap_optimizer

#: n = 100, q = 0.32, 8 steps per round, 20 rounds: 160 steps; sigma 18 claims eps ~ 0.9.
PLAN = DPPlan(
    epsilon=8.0,
    delta=1e-5,
    max_grad_norm=1.0,
    batch_size=32,
    local_epochs=2,
    num_examples=100,
    planned_rounds=20,
    accountant="rdp",
    grad_sample_mode="fast",
)
SETTINGS = DPSettings(PLAN, 18.0)

Factory = Callable[..., DPOptimizer]


def mechanism_with(**changes: float) -> Factory:
    """An optimizer factory whose mechanism silently differs from what is claimed."""

    def factory(
        optimizer: Optimizer, settings: DPSettings, *, generator: torch.Generator
    ) -> DPOptimizer:
        sigma = changes.get("noise_multiplier", settings.noise_multiplier)
        clip = changes.get("max_grad_norm", settings.plan.max_grad_norm)
        actual = DPSettings(replace(settings.plan, max_grad_norm=clip), sigma)
        return wrap_optimizer(optimizer, actual, generator=generator)

    return factory


def audit(settings: DPSettings = SETTINGS, factory: Factory = wrap_optimizer) -> AuditResult:
    return audit_dp_sgd(
        settings, generator=torch.Generator().manual_seed(0), optimizer_factory=factory
    )


def brute_force_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    p = math.exp(epsilon) / (1 + math.exp(epsilon))
    pmf = [math.comb(r, k) * p**k * (1 - p) ** (r - k) for k in range(r + 1)]
    weight = max((sum(pmf[v - i : v]) / i for i in range(1, v + 1)), default=0.0)
    return min(1.0, sum(pmf[v:]) + 2 * m * delta * weight)


@pytest.mark.parametrize(
    ("m", "r", "v", "epsilon", "delta"),
    [(20, 10, 9, 1.0, 1e-3), (50, 30, 30, 2.5, 1e-2), (8, 8, 3, 0.3, 0.0), (40, 12, 0, 1.0, 0.1)],
)
def test_p_value_matches_the_formula(m: int, r: int, v: int, epsilon: float, delta: float) -> None:
    assert audit_p_value(m, r, v, epsilon, delta) == pytest.approx(
        brute_force_p_value(m, r, v, epsilon, delta), rel=1e-9, abs=1e-12
    )


def test_lower_bound_edges_and_monotonicity() -> None:
    r = 192
    assert epsilon_lower_bound(384, r, r // 2, 1e-5) == 0.0
    perfect = 0.05 ** (1 / r)  # P[Binomial(r, p) >= r] = p^r = 0.05
    assert epsilon_lower_bound(384, r, r, 0.0) == pytest.approx(
        math.log(perfect / (1 - perfect)), abs=1e-6
    )
    bounds = [epsilon_lower_bound(384, r, v, 1e-5) for v in (120, 150, 180, 192)]
    assert bounds == sorted(bounds)
    assert bounds[0] > 0
    assert epsilon_lower_bound(384, r, r, 1e-2) < epsilon_lower_bound(384, r, r, 0.0)
    with pytest.raises(ValueError, match="correct <= guesses"):
        epsilon_lower_bound(10, 5, 6, 1e-5)


@pytest.mark.parametrize("mode", ["fast", "hooks"])
def test_a_correct_run_passes(mode: str) -> None:
    result = audit(DPSettings(replace(PLAN, grad_sample_mode=mode), 18.0))
    assert result.steps == PLAN.planned_steps
    assert result.guesses == 192
    assert 0.5 < result.epsilon_claimed < 1.5
    assert result.passed
    assert result.epsilon_lower_bound <= result.epsilon_claimed


@pytest.mark.parametrize(
    "fault",
    [
        {"noise_multiplier": 18.0 / 20},  # noise 20 times too small
        {"max_grad_norm": 10.0, "noise_multiplier": 1.8},  # same noise, no clipping
    ],
)
def test_an_injected_fault_is_caught(fault: dict[str, float]) -> None:
    result = audit(factory=mechanism_with(**fault))
    assert not result.passed
    assert result.epsilon_lower_bound > 3 * result.epsilon_claimed


def test_no_noise_control_reaches_the_method_ceiling() -> None:
    result = audit(factory=mechanism_with(noise_multiplier=0.0))
    ceiling = epsilon_lower_bound(384, result.guesses, result.guesses, PLAN.delta)
    assert result.correct == result.guesses
    assert result.epsilon_lower_bound == pytest.approx(ceiling)
    assert ceiling > 4


def test_ghost_mode_cannot_take_gradient_canaries() -> None:
    with pytest.raises(ValueError, match="gradient canaries need"):
        audit(DPSettings(replace(PLAN, grad_sample_mode="ghost"), 18.0))
