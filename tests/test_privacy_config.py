"""Privacy configuration: validation messages, delta, sampling plan, calibration."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from fedcurate.config import ConfigError, PrivacyConfig, TrainConfig, compose_config
from fedcurate.privacy import (
    calibrate,
    create_accountant,
    default_delta,
    epsilon_for_history,
    plan_privacy,
    validate_privacy_config,
)

DP = PrivacyConfig(name="dp_sgd")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epsilon": -1.0}, "privacy.epsilon: must be positive, got -1.0"),
        ({"epsilon": 0.0}, "privacy.epsilon: must be positive, got 0.0"),
        ({"epsilon": math.inf}, "privacy.epsilon: must be positive, got inf"),
        ({"delta": 1.0}, "privacy.delta: must be in (0, 1), got 1.0"),
        ({"delta": 0.0}, "privacy.delta: must be in (0, 1), got 0.0"),
        ({"max_grad_norm": 0.0}, "privacy.max_grad_norm: must be positive, got 0.0"),
        ({"noise_multiplier": -0.5}, "privacy.noise_multiplier: must be positive"),
        ({"accountant": "gdp"}, "privacy.accountant: 'gdp' is not one of ['prv', 'rdp']"),
        ({"grad_sample_mode": "functorch"}, "privacy.grad_sample_mode: 'functorch' is not"),
        ({"planned_rounds": 0}, "privacy.planned_rounds: must be at least 1, got 0"),
    ],
)
def test_bad_privacy_values_name_the_key(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        validate_privacy_config(replace(DP, **change))  # type: ignore[arg-type]
    assert str(raised.value).startswith(message)


def test_dp_sgd_preset_composes_and_plans() -> None:
    config = compose_config(["privacy=dp_sgd"])
    assert config.privacy.name == "dp_sgd"
    assert config.privacy.accountant == "rdp"
    plan = plan_privacy(config.privacy, config.train, 100, num_rounds=config.num_rounds)
    assert plan.planned_rounds == config.num_rounds
    assert plan.grad_sample_mode == "fast"


def test_default_delta_is_below_one_over_ten_n() -> None:
    assert default_delta(83) == 1e-5
    assert default_delta(20_000) == pytest.approx(5e-6)
    with pytest.raises(ValueError, match="at least one example"):
        default_delta(0)


def test_plan_fixes_sample_rate_and_steps() -> None:
    train = TrainConfig(local_epochs=2, batch_size=32)
    plan = plan_privacy(DP, train, 83, num_rounds=20)
    assert plan.sample_rate == 32 / 83
    assert plan.steps_per_round == 2 * 3
    assert plan.planned_steps == 20 * 6
    assert plan.delta == default_delta(83)
    small = plan_privacy(replace(DP, planned_rounds=3, delta=1e-3), train, 10, num_rounds=20)
    assert small.sample_rate == 1.0
    assert small.expected_batch_size == 10
    assert small.planned_rounds == 3
    assert small.delta == 1e-3
    with pytest.raises(ConfigError, match="num_examples"):
        plan_privacy(DP, train, 0, num_rounds=20)


def test_calibrated_noise_spends_the_budget_in_the_last_planned_round() -> None:
    plan = plan_privacy(replace(DP, epsilon=4.0), TrainConfig(batch_size=25), 100, num_rounds=5)
    settings = calibrate(plan)
    history = [(settings.noise_multiplier, plan.sample_rate, plan.planned_steps)]
    spent = epsilon_for_history("rdp", history, plan.delta)
    assert 4.0 - 0.05 <= spent <= 4.0
    one_more = [(settings.noise_multiplier, plan.sample_rate, plan.planned_steps + 1)]
    assert epsilon_for_history("rdp", one_more, plan.delta) > spent


def test_an_explicit_noise_multiplier_is_kept() -> None:
    plan = plan_privacy(replace(DP, noise_multiplier=1.3), TrainConfig(), 100, num_rounds=5)
    assert calibrate(plan).noise_multiplier == 1.3


def test_accountant_registry_and_edge_cases() -> None:
    assert create_accountant("prv").mechanism() == "prv"
    with pytest.raises(ValueError, match="unknown accountant 'moments'"):
        create_accountant("moments")
    with pytest.raises(ValueError, match="cannot be loaded"):
        create_accountant("rdp", create_accountant("prv").state_dict())
    with pytest.raises(ValueError, match="out of range"):
        create_accountant("rdp", {"mechanism": "rdp", "history": [[1.0, 0.2, -3]]})
    assert epsilon_for_history("rdp", [], 1e-5) == 0.0
    assert epsilon_for_history("prv", [(0.0, 0.1, 5)], 1e-5) == math.inf
