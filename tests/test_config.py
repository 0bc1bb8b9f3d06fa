"""Configuration: typed schemas, overrides, clear errors."""

from __future__ import annotations

import pytest

from fedcurate.config import Config, ConfigError, compose_config, config_from_run_config


def test_defaults_compose_to_typed_config() -> None:
    config = compose_config()
    assert isinstance(config, Config)
    assert config.dataset.name == "digits"
    assert config.partition.name == "dirichlet"
    assert config.partition.alpha == 0.5
    assert config.model.hidden == [64]
    assert config.num_clients == 10


def test_group_and_value_overrides() -> None:
    config = compose_config(["strategy=fedprox", "strategy.proximal_mu=0.5", "num_rounds=7"])
    assert config.strategy.name == "fedprox"
    assert config.strategy.proximal_mu == 0.5
    assert config.num_rounds == 7


def test_override_string_equals_list() -> None:
    assert compose_config("num_rounds=3 'model.hidden=[32,16]'") == compose_config(
        ["num_rounds=3", "model.hidden=[32,16]"]
    )


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("num_rnds=5", "num_rnds"),
        ("train.learning_rate=0.1", "learning_rate"),
        ("strategy=fedprx", "fedprx"),
        ("num_rounds=many", "num_rounds"),
        ("dataset.alpha=high", "alpha"),
    ],
)
def test_bad_override_fails_naming_it(override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        compose_config([override])


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("num_clients=0", "num_clients"),
        ("fraction_train=1.5", "fraction_train"),
        ("train.lr=-1", "train.lr"),
        ("dataset.test_fraction=0.85", "test_fraction"),
        ("corruption.owners=[12]", "corruption.owners"),
        ("backend=spark", "backend"),
    ],
)
def test_out_of_range_values_fail_naming_the_key(override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        compose_config([override])


def test_experiment_preset_sets_several_groups() -> None:
    config = compose_config(["experiment=fedprox_synthetic"])
    assert (config.dataset.name, config.partition.name) == ("synthetic", "natural")
    assert (config.strategy.name, config.strategy.proximal_mu) == ("fedprox", 1.0)
    assert (config.num_clients, config.train.local_epochs, config.train.batch_size) == (30, 20, 10)


def test_run_config_carries_the_same_experiment() -> None:
    config = config_from_run_config({"overrides": "num_rounds=4 strategy=fedadam"})
    assert config == compose_config(["num_rounds=4", "strategy=fedadam"])


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["crypto=ckks", "curator=gtg_shapley"], "curator=gtg_shapley"),
        (["crypto=ckks", "strategy=krum"], "strategy=krum"),
        (
            ["crypto=ckks", "curator=first_order", "curator.input_span_signal=true"],
            "curator.input_span_signal",
        ),
    ],
)
def test_what_encryption_hides_is_refused_naming_it(overrides: list[str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        compose_config(overrides)
    compose_config([o for o in overrides if o != "crypto=ckks"])
