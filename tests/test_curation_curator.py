"""The curator on real digits rounds: real models, real local training."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest

from fedcurate.config import Config, ConfigError, CuratorConfig, compose_config
from fedcurate.curation import (
    VALUATION_METHODS,
    CoalitionModels,
    Curator,
    RoundUpdates,
    ValidationEvaluator,
)
from fedcurate.curation.banzhaf import msr_banzhaf
from fedcurate.curation.exact import exact_banzhaf, exact_shapley
from fedcurate.curation.gtg import gtg_shapley
from fedcurate.curation.methods import gtg_settings
from fedcurate.data import build_federation
from fedcurate.models import build_model
from fedcurate.seeding import torch_generator
from fedcurate.training import evaluate, train_local
from simulations.bench_valuation import simulate_rounds

SIX_OWNERS = ["num_clients=6", "model=logistic", "train.local_epochs=1"]


def correlation(a: dict[str, float], b: dict[str, float]) -> float:
    names = sorted(a)
    return float(np.corrcoef([a[n] for n in names], [b[n] for n in names])[0, 1])


@pytest.fixture(scope="module")
def digits_round() -> tuple[Config, ValidationEvaluator, RoundUpdates]:
    """Round 2 of six digits owners (one label-flipping), logistic model."""
    config = compose_config([*SIX_OWNERS, "corruption=label_flip", "corruption.owners=[4]"])
    federation = build_federation(config)
    evaluator = ValidationEvaluator(
        build_model(config.model, federation.spec, config.seed), federation.validation
    )
    rounds = list(simulate_rounds(config, evaluator, 2))
    return config, evaluator, rounds[-1].updates


def test_evaluator_matches_the_training_module(
    digits_round: tuple[Config, ValidationEvaluator, RoundUpdates],
) -> None:
    config, evaluator, updates = digits_round
    federation = build_federation(config)
    model = evaluator.model_with(updates.global_weights + updates.updates["owner-000"])
    expected = evaluate(model, federation.validation)
    score = evaluator.score(evaluator.flatten(model))
    assert score.loss == pytest.approx(expected.loss, rel=1e-5)
    assert score.accuracy == pytest.approx(expected.accuracy)


def test_coalition_models_renormalise_weights(
    digits_round: tuple[Config, ValidationEvaluator, RoundUpdates],
) -> None:
    _, evaluator, updates = digits_round
    models = CoalitionModels(evaluator, updates)
    pair = frozenset({"owner-001", "owner-003"})
    p1, p3 = updates.weights["owner-001"], updates.weights["owner-003"]
    mixed = (p1 * updates.updates["owner-001"] + p3 * updates.updates["owner-003"]) / (p1 + p3)
    assert models.score(pair) == evaluator.score(updates.global_weights + mixed)
    assert models.score(frozenset()) == evaluator.score(updates.global_weights)
    assert models.evaluations == 2


def test_gtg_and_banzhaf_track_exact_values_on_a_real_round(
    digits_round: tuple[Config, ValidationEvaluator, RoundUpdates],
) -> None:
    _, evaluator, updates = digits_round
    exact_models = CoalitionModels(evaluator, updates)
    exact = exact_shapley(exact_models.game("loss"))
    rng = np.random.default_rng(0)
    gain = exact_models.game("loss").value(updates.owners) - exact_models.game("loss").value(())
    settings = gtg_settings(CuratorConfig(), "loss", gain)
    gtg = gtg_shapley(exact_models.game("loss"), settings, rng)
    assert correlation(exact, gtg.values) > 0.95
    banzhaf = msr_banzhaf(exact_models.game("loss"), 200, rng)
    assert correlation(exact_banzhaf(exact_models.game("loss")), banzhaf) > 0.95


@pytest.mark.parametrize("method", sorted(VALUATION_METHODS))
def test_every_method_values_every_owner(
    method: str, digits_round: tuple[Config, ValidationEvaluator, RoundUpdates]
) -> None:
    config, _, updates = digits_round
    federation = build_federation(config)
    curator = Curator.from_config(
        replace(config, curator=CuratorConfig(name=method, policy="exclude")),
        federation.validation,
        federation.spec,
    )
    decision = curator.assess(7, updates.updates, updates.weights, updates.global_weights)
    assert set(decision.values) == set(updates.owners) == set(decision.weights)
    assert all(np.isfinite(v) for v in decision.values.values())
    assert decision.evaluations >= 1
    assert all(decision.reasons[name] for name in updates.owners)
    json.dumps(decision.to_record())


def test_gtg_values_a_flat_accuracy_round_by_loss(
    digits_round: tuple[Config, ValidationEvaluator, RoundUpdates],
) -> None:
    """Tiny updates leave accuracy unchanged; the round is not silently all zero."""
    config, _, updates = digits_round
    federation = build_federation(config)
    tiny = {name: 1e-4 * u for name, u in updates.updates.items()}
    curator = Curator.from_config(
        replace(config, curator=CuratorConfig(name="gtg_shapley")),
        federation.validation,
        federation.spec,
    )
    decision = curator.assess(1, tiny, updates.weights, updates.global_weights)
    assert decision.utility == "loss"
    assert "valued by validation loss instead" in decision.note
    assert any(v != 0.0 for v in decision.values.values())
    reference = Curator.from_config(
        replace(config, curator=CuratorConfig(name="gtg_shapley", gtg_loss_fallback=False)),
        federation.validation,
        federation.spec,
    )
    truncated = reference.assess(1, tiny, updates.weights, updates.global_weights)
    assert set(truncated.values.values()) == {0.0}
    assert "round truncated" in truncated.note


def test_exact_shapley_refuses_thirteen_owners() -> None:
    config = compose_config(["num_clients=4", "model=logistic", "curator=exact_shapley"])
    federation = build_federation(config)
    curator = Curator.from_config(config, federation.validation, federation.spec)
    size = curator.evaluator.num_parameters
    updates = {f"lab-{i:02d}": np.full(size, 1e-3) for i in range(13)}
    with pytest.raises(ValueError, match="n = 13 owners exceeds the limit of 12"):
        curator.assess(1, updates, dict.fromkeys(updates, 1.0), np.zeros(size))


def test_curator_config_is_checked() -> None:
    config = compose_config(["num_clients=4", "model=logistic"])
    federation = build_federation(config)
    model = build_model(config.model, federation.spec)
    for bad, key in [
        (CuratorConfig(name="none"), "curator.name"),
        (CuratorConfig(name="loo", utility="f1"), "curator.utility"),
        (CuratorConfig(name="loo", policy="ban"), "curator.policy"),
        (CuratorConfig(name="loo", quarantine_below=0.9), "curator.quarantine_below"),
        (CuratorConfig(name="loo", weight_floor=0.5, weight_cap=0.2), "curator.weight_cap"),
        (CuratorConfig(name="loo", warmup_floor=0.05), "curator.warmup_floor"),
    ]:
        with pytest.raises(ConfigError, match=key):
            Curator(bad, model, federation.validation)


def test_replay_free_rider_earns_no_reward_and_state_round_trips() -> None:
    config = compose_config(
        [
            "num_clients=5",
            "model=logistic",
            "train.local_epochs=1",
            "corruption=free_rider_replay",
            "corruption.owners=[1]",
            "curator=gtg_shapley",
            "curator.policy=exclude",
        ]
    )
    federation = build_federation(config)
    curator = Curator.from_config(config, federation.validation, federation.spec)
    rounds = list(simulate_rounds(config, curator.evaluator, 6))
    for simulated in rounds[:3]:
        u = simulated.updates
        curator.assess(simulated.round, u.updates, u.weights, u.global_weights)
    resumed = Curator.from_config(config, federation.validation, federation.spec)
    state = pickle.loads(pickle.dumps(curator.state_dict()))
    json.dumps(state["ledger"])
    resumed.load_state_dict(state)
    for simulated in rounds[3:]:
        u = simulated.updates
        for each in (curator, resumed):
            each.assess(simulated.round, u.updates, u.weights, u.global_weights)
    assert resumed.ledger.report() == curator.ledger.report()
    shares = curator.ledger.reward_shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["owner-001"] <= 0.01
    screened = [r.owners["owner-001"].screen for r in curator.ledger.rounds]
    assert all(note and "no positive credit" in note for note in screened)
    honest = [r.owners["owner-000"].screen for r in curator.ledger.rounds]
    assert honest == [None] * len(rounds)


def cumulative_twin_values(twin_index: int, rounds: int) -> dict[str, float]:
    """Exact loss-Shapley values summed over FedAvg rounds, owner ``twin_index`` entered twice.

    The twins hold the same data but shuffle it differently, so their updates differ.
    """
    config = compose_config([*SIX_OWNERS])
    federation = build_federation(config)
    evaluator = ValidationEvaluator(
        build_model(config.model, federation.spec, config.seed), federation.validation
    )
    twin = federation.owners[twin_index].train
    owners = {"twin-a": twin, "twin-b": twin}
    owners |= {f"other-{o.index}": o.train for o in federation.owners if o.index != twin_index}
    weights = {name: float(len(data)) for name, data in owners.items()}
    global_weights = evaluator.flatten(evaluator.model)
    totals = dict.fromkeys(owners, 0.0)
    for server_round in range(rounds):
        updates = {}
        for name, data in owners.items():
            model = evaluator.model_with(global_weights)
            generator = torch_generator(0, "twin", name, server_round)
            train_local(model, data, config.train, generator=generator)
            updates[name] = evaluator.flatten(model) - global_weights
        round_updates = RoundUpdates(global_weights, updates, weights)
        values = exact_shapley(CoalitionModels(evaluator, round_updates).game("loss"))
        totals = {name: totals[name] + values[name] for name in owners}
        mean_update = round_updates.weight_vector() @ round_updates.stacked_updates()
        global_weights = global_weights + mean_update / sum(weights.values())
    return totals


@pytest.mark.parametrize("twin_index", range(6))
def test_owners_with_identical_data_get_close_values(twin_index: int) -> None:
    """Within 10 % of the largest owner value (a near-zero pair cannot be within 10 % of itself)."""
    totals = cumulative_twin_values(twin_index, rounds=4)
    scale = max(abs(v) for v in totals.values())
    assert abs(totals["twin-a"] - totals["twin-b"]) <= 0.1 * scale
