"""Data-quality signals: label quality (fit floor), sharpening, breadth and input coherence."""

from __future__ import annotations

import numpy as np
import pytest

from fedcurate.config import compose_config
from fedcurate.curation import Curator, ValidationEvaluator
from fedcurate.curation.quality import (
    FIT_FRACTION,
    INPUT_COHERENCE,
    SIGNALS,
    data_signals,
    fit_floor,
    input_coherence,
    sharpening,
)
from fedcurate.data import build_federation
from fedcurate.models import build_model
from fedcurate.training import evaluate
from simulations.bench_valuation import simulate_rounds

NOISY = [
    "num_clients=6",
    "model=logistic",
    "train.local_epochs=2",
    "partition=iid",
    "corruption=label_noise",
    "corruption.rate=0.5",
    "corruption.owners=[2]",
]


def test_fit_floor_averages_the_best_fitted_share() -> None:
    losses = np.array([5.0, 0.1, 3.0, 0.3, 2.0, 4.0, 1.0, 0.2, 6.0, 7.0])
    assert fit_floor(losses, 0.1) == pytest.approx(0.1)
    assert fit_floor(losses, 0.25) == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert fit_floor(losses[:1], FIT_FRACTION) == 5.0
    with pytest.raises(ValueError, match="no per-example losses"):
        fit_floor(np.array([]))


def test_sharpening_is_the_cosine_with_the_weight_matrices() -> None:
    weights = np.array([1.0, 2.0, -1.0, 5.0])
    mask = np.array([True, True, True, False])  # the last entry is a bias
    assert sharpening(0.1 * weights, weights, mask) == pytest.approx(1.0)
    assert sharpening(-0.1 * weights, weights, mask) == pytest.approx(-1.0)
    assert sharpening(np.array([2.0, -1.0, 0.0, 9.0]), weights, mask) == pytest.approx(0.0)
    assert sharpening(np.zeros(4), weights, mask) == 0.0


def test_the_matrix_mask_covers_weight_matrices_only() -> None:
    config = compose_config(["model=mlp"])
    federation = build_federation(config)
    model = build_model(config.model, federation.spec, config.seed)
    evaluator = ValidationEvaluator(model, federation.validation)
    mask = evaluator.matrix_mask
    matrices = sum(p.numel() for p in model.parameters() if p.dim() >= 2)
    assert mask.shape == (evaluator.num_parameters,)
    assert int(mask.sum()) == matrices < evaluator.num_parameters


def test_per_example_losses_match_the_mean_loss() -> None:
    config = compose_config(NOISY)
    federation = build_federation(config)
    model = build_model(config.model, federation.spec, config.seed)
    evaluator = ValidationEvaluator(model, federation.validation, batch_size=16)
    flat = evaluator.flatten(model)
    losses = evaluator.example_losses(flat)
    assert losses.shape == (len(federation.validation),)
    assert losses.mean() == pytest.approx(evaluate(model, federation.validation).loss, rel=1e-5)


def lowest_signals(overrides: list[str], rounds: int = 3) -> tuple[list[dict[str, str]], str]:
    """Per round, signal -> the owner lowest on it; and the owner of lowest standing."""
    config = compose_config([*overrides, "curator=first_order", "curator.policy=exclude"])
    federation = build_federation(config)
    template = build_model(config.model, federation.spec, config.seed)
    evaluator = ValidationEvaluator(template, federation.validation)
    curator = Curator(config.curator, template, federation.validation, config.train, config.seed)
    lowest = []
    for simulated in simulate_rounds(config, evaluator, rounds):
        updates = simulated.updates
        signals = data_signals(evaluator, updates, skip={"owner-000"})
        assert set(signals) == set(updates.owners) - {"owner-000"}
        # A linear first layer (here: logistic regression) also gives input coherence.
        assert all(set(s) == {*SIGNALS, INPUT_COHERENCE} for s in signals.values())
        lowest.append({k: min(signals, key=lambda n: signals[n][k]) for k in signals["owner-001"]})
        curator.assess(simulated.round, updates.updates, updates.weights, updates.global_weights)
        recorded = curator.ledger.rounds[-1].owners["owner-002"].signals
        assert recorded == pytest.approx(signals["owner-002"])
    standing = curator.ledger.standing()
    return lowest, min(standing, key=standing.__getitem__)


def test_a_noisy_owner_fits_worst_and_stands_lowest() -> None:
    lowest, suspect = lowest_signals(NOISY)
    assert all(per_round["label_quality"] == "owner-002" for per_round in lowest)
    assert suspect == "owner-002"


def test_an_owner_with_noisy_features_shrinks_the_model() -> None:
    """Input noise acts as weight decay: the update shrinks the weights (Bishop 1995)."""
    noisy_features = [o for o in NOISY if not o.startswith("corruption.rate")]
    noisy_features[noisy_features.index("corruption=label_noise")] = "corruption=feature_noise"
    lowest, suspect = lowest_signals([*noisy_features, "corruption.scale=1.0"])
    # Round 1 starts from random weights, which no data sharpen; from round 2 on it shows.
    assert all(per_round["sharpening"] == "owner-002" for per_round in lowest[1:])
    # Its update lives where the clean inputs barely vary, from the first round on.
    assert all(per_round[INPUT_COHERENCE] == "owner-002" for per_round in lowest)
    assert suspect == "owner-002"


#: How two latent factors drive eight features (like the pixels of one stroke).
MIXING = np.random.default_rng(7).normal(size=(2, 8))


def correlated_inputs(rng: np.random.Generator, count: int = 400) -> np.ndarray:
    """Eight features driven by the two factors of :data:`MIXING`, plus a little noise."""
    return rng.normal(size=(count, 2)) @ MIXING + 0.01 * rng.normal(size=(count, 8))


def test_input_coherence_is_lower_for_an_update_trained_on_noisy_features() -> None:
    rng = np.random.default_rng(0)
    validation = correlated_inputs(rng)
    eigenvalues, eigenvectors = np.linalg.eigh(validation.T @ validation / len(validation))
    clean = correlated_inputs(rng, 100)
    noisy = clean + clean.std(axis=0) * rng.normal(size=clean.shape)
    residuals = rng.normal(size=(3, 100))  # δ of a 3-output linear layer, one per example
    from_clean, from_noisy = residuals @ clean, residuals @ noisy
    assert input_coherence(from_clean, eigenvalues, eigenvectors) > -1.0
    assert (
        input_coherence(from_noisy, eigenvalues, eigenvectors)
        < input_coherence(from_clean, eigenvalues, eigenvectors) - 3.0
    )
    # Scale-free, at most 0, and 0 for an update that leaves the first layer alone.
    score = input_coherence(from_clean, eigenvalues, eigenvectors)
    assert input_coherence(-7.0 * from_clean, eigenvalues, eigenvectors) == pytest.approx(score)
    assert score <= 0.0
    assert input_coherence(np.zeros((3, 8)), eigenvalues, eigenvectors) == 0.0


@pytest.mark.parametrize(
    ("model", "shape"), [("logistic", (10, 64)), ("mlp", (64, 64)), ("cnn", None)]
)
def test_the_input_matrix_is_the_linear_first_layer(
    model: str, shape: tuple[int, int] | None
) -> None:
    config = compose_config([f"model={model}"])
    federation = build_federation(config)
    template = build_model(config.model, federation.spec, config.seed)
    layer = ValidationEvaluator(template, federation.validation).input_matrix
    if shape is None:
        assert layer is None
        return
    assert layer is not None
    place, found = layer
    assert found == shape
    first = next(p for p in template.parameters() if p.dim() >= 2)
    assert place.stop - place.start == first.numel()


def test_input_coherence_is_not_measured_on_dp_sgd_updates() -> None:
    """DP-SGD noise fills every input direction of every owner's update alike."""
    config = compose_config([*NOISY, "privacy=dp_sgd", "curator=first_order"])
    federation = build_federation(config)
    curator = Curator.from_config(config, federation.validation, federation.spec)
    assert curator.dp_noise
    simulated = next(iter(simulate_rounds(config, curator.evaluator, 1)))
    plain = data_signals(curator.evaluator, simulated.updates)
    private = data_signals(curator.evaluator, simulated.updates, dp_noise=True)
    assert all(INPUT_COHERENCE in signals for signals in plain.values())
    assert all(set(signals) == set(SIGNALS) for signals in private.values())
