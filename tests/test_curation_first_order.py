"""First-order scores, the closed-form Shapley value and the scalar-only path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedcurate.config import CuratorConfig, compose_config
from fedcurate.crypto import (
    SCORING,
    create_context,
    decrypt_inner_product,
    encrypt_vector,
    masked_inner_product,
    prepare_inner_product,
)
from fedcurate.curation import CoalitionGame, Curator, ValidationEvaluator
from fedcurate.curation.exact import exact_shapley
from fedcurate.curation.first_order import (
    descent_alignment,
    first_order_scores,
    first_order_shapley,
    harmonic_number,
    mean_utility_shapley,
    weighted_mean_shapley_exact,
    weighted_mean_shapley_sampled,
)
from fedcurate.data import build_federation
from fedcurate.models import build_model

SCORES = {"east": 0.8, "west": -0.3, "north-2": 0.1, "south": 0.05, "hub": 1.2}
WEIGHTS = {"east": 10.0, "west": 3.0, "north-2": 7.0, "south": 1.0, "hub": 4.0}


def first_order_game(scores: dict[str, float], weights: dict[str, float]) -> CoalitionGame:
    """``v(S) = Σ p_j s_j / Σ p_j`` with ``v(empty) = 0``, evaluated by brute force."""

    def worth(coalition: frozenset[str]) -> float:
        if not coalition:
            return 0.0
        total = sum(weights[j] for j in coalition)
        return sum(weights[j] * scores[j] for j in coalition) / total

    return CoalitionGame(scores, worth)


def test_closed_form_matches_brute_force_for_the_unweighted_mean() -> None:
    equal = dict.fromkeys(SCORES, 1.0)
    brute = exact_shapley(first_order_game(SCORES, equal))
    closed = mean_utility_shapley(SCORES)
    for name in SCORES:
        assert closed[name] == pytest.approx(brute[name], abs=1e-12)


def test_closed_form_sanity_check_and_efficiency() -> None:
    values = mean_utility_shapley({"a": 1.0, "b": 0.0})
    assert values["a"] == pytest.approx(0.75)
    assert values["b"] == pytest.approx(-0.25)
    assert harmonic_number(2) == pytest.approx(1.5)
    values = mean_utility_shapley(SCORES)
    assert sum(values.values()) == pytest.approx(np.mean(list(SCORES.values())))
    assert mean_utility_shapley({"solo": 0.4}) == {"solo": 0.4}


def test_weighted_enumeration_and_sampling_match_brute_force() -> None:
    brute = exact_shapley(first_order_game(SCORES, WEIGHTS))
    enumerated = weighted_mean_shapley_exact(SCORES, WEIGHTS)
    sampled = weighted_mean_shapley_sampled(SCORES, WEIGHTS, 20000, np.random.default_rng(0))
    for name in SCORES:
        assert enumerated[name] == pytest.approx(brute[name], abs=1e-12)
        assert sampled[name] == pytest.approx(brute[name], abs=0.01)
    dispatched = first_order_shapley(SCORES, WEIGHTS, 10, np.random.default_rng(0))
    assert dispatched == pytest.approx(enumerated)


def test_sampling_is_used_beyond_enumeration() -> None:
    rng = np.random.default_rng(0)
    names = [f"hospital-{i}" for i in range(24)]
    scores = dict(zip(names, rng.normal(size=24).tolist(), strict=True))
    weights = dict(zip(names, rng.uniform(1, 5, size=24).tolist(), strict=True))
    values = first_order_shapley(scores, weights, 500, np.random.default_rng(1))
    grand = sum(weights[n] * scores[n] for n in names) / sum(weights.values())
    # Every sampled permutation's marginals add up to v(N): efficiency is exact.
    assert sum(values.values()) == pytest.approx(grand, abs=1e-9)
    ranks = np.argsort(np.argsort([values[n] for n in names]))
    assert np.corrcoef(ranks, np.argsort(np.argsort([scores[n] for n in names])))[0, 1] > 0.9


def test_sign_convention_positive_is_helpful() -> None:
    gradient = np.array([1.0, -2.0, 0.5])
    descent, ascent = -0.1 * gradient, 0.1 * gradient
    products = {"descent": float(descent @ gradient), "ascent": float(ascent @ gradient)}
    scores = first_order_scores(products)
    assert scores["descent"] > 0 > scores["ascent"]


@pytest.fixture(scope="module")
def digits_setup() -> tuple[Curator, Curator, np.ndarray, dict[str, np.ndarray]]:
    config = compose_config(["num_clients=4", "model=logistic"])
    federation = build_federation(config)
    model = build_model(config.model, federation.spec, config.seed)
    curators = [
        Curator(CuratorConfig(name="first_order"), model, federation.validation, seed=1)
        for _ in range(2)
    ]
    global_weights = curators[0].evaluator.flatten(model)
    rng = np.random.default_rng(0)
    updates = {f"clinic-{c}": 0.05 * rng.normal(size=global_weights.shape) for c in ("x", "y", "z")}
    return curators[0], curators[1], global_weights, updates


def test_scalar_path_equals_direct_path(
    digits_setup: tuple[Curator, Curator, np.ndarray, dict[str, np.ndarray]],
) -> None:
    direct_curator, scalar_curator, global_weights, updates = digits_setup
    weights = {"clinic-x": 30.0, "clinic-y": 12.0, "clinic-z": 55.0}
    direct = direct_curator.assess(1, updates, weights, global_weights)
    gradient = scalar_curator.validation_gradient(global_weights)
    # Owners encrypt p_i * delta_i; the server's inner products carry the weight.
    products = {n: float(np.dot(weights[n] * u, gradient)) for n, u in updates.items()}
    scalar = scalar_curator.assess_from_scores(1, products, weights, prescaled=True)
    assert scalar.values == pytest.approx(direct.values, rel=1e-9)
    assert scalar.weights == direct.weights
    direct_round, scalar_round = direct_curator.ledger.rounds[0], scalar_curator.ledger.rounds[0]
    for name, owner in direct_round.owners.items():
        assert scalar_round.owners[name].score == pytest.approx(owner.score, rel=1e-9)
        assert scalar_round.owners[name].relative == pytest.approx(owner.relative, rel=1e-9)


def test_the_encrypted_path_reads_a_data_signal_off_the_ciphertexts(
    digits_setup: tuple[Curator, Curator, np.ndarray, dict[str, np.ndarray]],
) -> None:
    """Real CKKS: the server projects each ciphertext on the public ``w_t`` matrices."""
    shared, _, global_weights, updates = digits_setup
    curator = Curator(shared.config, shared.evaluator.model, shared.validation)
    weights = {"clinic-x": 30.0, "clinic-y": 12.0, "clinic-z": 55.0}
    secret = create_context(SCORING)
    public = secret.public()
    encrypted = {n: encrypt_vector(weights[n] * u, public) for n, u in updates.items()}

    def masked_scores(direction: np.ndarray) -> dict[str, float]:
        operand = prepare_inner_product(direction, public)
        return {
            n: decrypt_inner_product(masked_inner_product(e, operand, public), secret)
            for n, e in encrypted.items()
        }

    direction = curator.sharpening_direction(global_weights)
    assert direction is not None
    products = masked_scores(curator.validation_gradient(global_weights))
    projections = masked_scores(direction)
    curator.assess_from_scores(1, products, weights, prescaled=True, sharpening=projections)
    mask = curator.evaluator.matrix_mask
    for name, owner in curator.ledger.rounds[0].owners.items():
        expected = float(np.dot(updates[name][mask], global_weights[mask]))
        assert owner.signals == {"sharpening_projection": pytest.approx(expected, rel=1e-4)}


def test_no_sharpening_direction_for_a_model_at_zero(
    digits_setup: tuple[Curator, Curator, np.ndarray, dict[str, np.ndarray]],
) -> None:
    curator, _, global_weights, _ = digits_setup
    assert curator.sharpening_direction(np.zeros_like(global_weights)) is None


def test_validation_gradient_matches_autograd_on_the_model() -> None:
    config = compose_config(["num_clients=4", "model=mlp"])
    federation = build_federation(config)
    model = build_model(config.model, federation.spec, config.seed)
    evaluator = ValidationEvaluator(model, federation.validation)
    flat = evaluator.flatten(model)
    x, y = federation.validation.tensors()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    expected = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])
    assert evaluator.loss_gradient(flat) == pytest.approx(expected.double().numpy(), abs=1e-6)


def test_a_round_computes_the_validation_gradient_once(
    digits_setup: tuple[Curator, Curator, np.ndarray, dict[str, np.ndarray]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared, _, global_weights, updates = digits_setup
    curator = Curator(shared.config, shared.evaluator.model, shared.validation)
    evaluator = curator.evaluator
    passes: list[int] = []
    backward = evaluator._gradient

    def counted(weights: torch.Tensor) -> np.ndarray:
        passes.append(1)
        return backward(weights)

    monkeypatch.setattr(evaluator, "_gradient", counted)
    weights = dict.fromkeys(updates, 1.0)
    curator.assess(1, updates, weights, global_weights)
    # The method's scores and the evidence's descent alignment share one backward pass.
    assert len(passes) == 1
    first = evaluator.loss_gradient(global_weights.copy())
    assert len(passes) == 1
    assert not first.flags.writeable
    moved = evaluator.loss_gradient(global_weights + next(iter(updates.values())))
    assert len(passes) == 2
    assert not np.allclose(moved, first)


def test_encrypted_path_refuses_coalition_methods() -> None:
    config = compose_config(["num_clients=4", "model=logistic"])
    federation = build_federation(config)
    model = build_model(config.model, federation.spec)
    curator = Curator(CuratorConfig(name="gtg_shapley"), model, federation.validation)
    with pytest.raises(ValueError, match="needs plaintext updates"):
        curator.assess_from_scores(1, {"a": 0.1}, {"a": 1.0})


def test_descent_alignment_is_the_cosine_with_the_descent_direction() -> None:
    gradient = np.array([1.0, 0.0, 0.0])
    updates = {
        "down": np.array([-2.0, 0.0, 0.0]),
        "sideways": np.array([0.0, 5.0, 0.0]),
        "up": np.array([3.0, 3.0, 0.0]),
        "still": np.zeros(3),
    }
    alignment = descent_alignment(updates, gradient)
    assert alignment["down"] == pytest.approx(1.0)
    assert alignment["sideways"] == pytest.approx(0.0)
    assert alignment["up"] == pytest.approx(-np.sqrt(0.5))
    assert alignment["still"] == 0.0
