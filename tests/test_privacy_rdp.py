"""Fast RDP accounting: the same floats as Opacus' RDPAccountant, and the same sigma.

References are Opacus' own functions, called on every case (slow on purpose).
Equality is asserted bit for bit, which is what the implementation reproduces
(the budget asked for is 1e-9 relative).
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as privacy_analysis
from opacus.accountants.utils import get_noise_multiplier

from fedcurate.config import PrivacyConfig, TrainConfig
from fedcurate.privacy import calibrate, epsilon_for_history, plan_privacy
from fedcurate.privacy import rdp as fast
from fedcurate.privacy.rdp import (
    DEFAULT_ORDERS,
    SEARCH_MARGIN,
    rdp_epsilon,
    rdp_noise_multiplier,
    sgm_rdp,
    step_rdp,
)

SIGMAS = (0.3, 0.7, 1.5, 4.0, 20.0)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """``get_privacy_spent`` warns when the best order is the largest one."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        yield


def opacus_rdp(q: float, sigma: float, orders: object = RDPAccountant.DEFAULT_ALPHAS) -> np.ndarray:
    return np.asarray(
        privacy_analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders)
    )


def opacus_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    accountant = RDPAccountant()
    accountant.history = list(history)
    return float(accountant.get_epsilon(delta=delta))


@pytest.mark.parametrize("q", [1e-4, 1e-3, 0.02, 0.1, 32 / 142, 0.3, 0.5, 0.9, 1.0])
def test_per_step_rdp_is_opacus_bit_for_bit(q: float) -> None:
    for sigma in SIGMAS:
        np.testing.assert_array_equal(sgm_rdp(q, sigma), opacus_rdp(q, sigma), err_msg=f"{sigma=}")


def test_other_orders_and_degenerate_mechanisms_follow_opacus() -> None:
    orders = [1.5, 2, 2.25, 3.7, 100]
    np.testing.assert_array_equal(sgm_rdp(0.27, 1.3, orders), opacus_rdp(0.27, 1.3, orders))
    for q, sigma in [(0.0, 1.0), (0.3, 0.0), (1.0, 2.0)]:
        np.testing.assert_array_equal(sgm_rdp(q, sigma), opacus_rdp(q, sigma))
    for bad in ([], [1.0, 2.0], [2.0, math.inf]):
        with pytest.raises(ValueError, match="RDP orders"):
            sgm_rdp(0.1, 1.0, bad)


def test_step_rdp_is_cached_and_read_only() -> None:
    first = step_rdp(0.2, 1.1)
    assert step_rdp(0.2, 1.1) is first
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 0.0


def test_epsilon_equals_opacus_accountant_on_mixed_histories() -> None:
    """Histories mixing settings and step counts (Opacus allows them; a ledger holds one)."""
    settings = [(1.1, 0.2), (2.0, 0.05), (0.8, 0.01), (4.0, 0.3), (1.1, 0.25)]
    rng = random.Random(0)
    for _ in range(12):
        history = [
            (*rng.choice(settings), rng.choice([1, 7, 120, 5000])) for _ in range(rng.randint(1, 4))
        ]
        delta = rng.choice([1e-3, 1e-5, 1e-8])
        expected = opacus_epsilon(history, delta)
        assert rdp_epsilon(history, delta) == expected, history
        assert epsilon_for_history("rdp", history, delta) == expected, history
    assert rdp_epsilon([], 1e-5) == 0.0


def test_search_epsilon_stays_far_inside_the_margin() -> None:
    """The search's approximate epsilon vs the exact one, over q, sigma, steps, delta."""
    worst = 0.0
    for q in (1e-3, 0.05, 0.25, 0.5, 0.9):
        for sigma in (0.5, 1.0, 3.0, 20.0):
            approx = fast._rdp(q, sigma, DEFAULT_ORDERS, exact=False)
            for steps in (1, 100, 10_000, 1_000_000):
                for delta in (1e-5, 1e-8):
                    exact = rdp_epsilon([(sigma, q, steps)], delta)
                    rated = fast._epsilon(approx * steps, DEFAULT_ORDERS, delta)
                    worst = max(worst, abs(rated - exact) / exact)
    assert worst <= SEARCH_MARGIN / 100


@pytest.mark.parametrize(
    ("epsilon", "delta", "q", "steps"),
    [
        (8.0, 1e-5, 32 / 142, 200),  # the default digits owner with the most data
        (1.0, 1e-6, 0.01, 3000),
        (30.0, 1e-3, 0.6, 12),
    ],
)
def test_noise_multiplier_is_opacus(epsilon: float, delta: float, q: float, steps: int) -> None:
    sigma = rdp_noise_multiplier(
        target_epsilon=epsilon, target_delta=delta, sample_rate=q, steps=steps
    )
    assert sigma == get_noise_multiplier(
        target_epsilon=epsilon, target_delta=delta, sample_rate=q, steps=steps, accountant="rdp"
    )


@pytest.mark.parametrize("above", [0.0, 0.01])
def test_trials_on_a_threshold_are_rated_exactly(
    above: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first bisection trial (sigma = 10) lands exactly on a threshold of the
    search (``eps < target`` or ``target - eps > tolerance``): only the exact
    epsilon takes Opacus' branch for sure."""
    q, steps, delta = 0.01, 1000, 1e-5
    target = rdp_epsilon([(10.0, q, steps)], delta) + above
    exact_trials: list[float] = []

    def spy(history: list[tuple[float, float, int]], delta: float) -> float:
        exact_trials.append(history[0][0])
        return rdp_epsilon(history, delta)

    monkeypatch.setattr(fast, "rdp_epsilon", spy)
    sigma = rdp_noise_multiplier(
        target_epsilon=target, target_delta=delta, sample_rate=q, steps=steps
    )
    assert 10.0 in exact_trials
    expected = get_noise_multiplier(
        target_epsilon=target, target_delta=delta, sample_rate=q, steps=steps, accountant="rdp"
    )
    assert sigma == expected


def test_unreachable_budget_is_reported_like_opacus() -> None:
    with pytest.raises(ValueError, match="privacy budget is too low"):
        rdp_noise_multiplier(target_epsilon=1e-9, target_delta=1e-5, sample_rate=1.0, steps=10)


def test_calibration_keeps_opacus_sigma_and_the_budget() -> None:
    privacy = PrivacyConfig(name="dp_sgd")
    plan = plan_privacy(privacy, TrainConfig(batch_size=32, local_epochs=2), 117, num_rounds=20)
    calibrate.cache_clear()
    sigma = calibrate(plan).noise_multiplier
    assert sigma == get_noise_multiplier(
        target_epsilon=plan.epsilon,
        target_delta=plan.delta,
        sample_rate=plan.sample_rate,
        steps=plan.planned_steps,
        accountant="rdp",
    )
    last_round = [(sigma, plan.sample_rate, plan.planned_steps)]
    assert opacus_epsilon(last_round, plan.delta) <= plan.epsilon
