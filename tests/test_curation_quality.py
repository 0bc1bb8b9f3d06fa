"""Data-quality signals: label quality (fit floor), sharpening, breadth and input span."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fedcurate.config import compose_config
from fedcurate.curation import Curator, ValidationEvaluator
from fedcurate.curation.quality import (
    FIT_FRACTION,
    INPUT_SPAN,
    SIGNALS,
    InputSpan,
    data_signals,
    fit_floor,
    input_residual_basis,
    sharpening,
)
from fedcurate.curation.rounds import RoundUpdates
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
#: ``NOISY`` with input noise instead of label noise on owner 2.
NOISY_FEATURES = [
    *[o for o in NOISY if not o.startswith("corruption")],
    "corruption=feature_noise",
    "corruption.scale=1.0",
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
        assert all(set(s) == set(SIGNALS) for s in signals.values())
        lowest.append({k: min(signals, key=lambda n: signals[n][k]) for k in SIGNALS})
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
    lowest, suspect = lowest_signals(NOISY_FEATURES)
    # Round 1 starts from random weights, which no data sharpen; from round 2 on it shows.
    assert all(per_round["sharpening"] == "owner-002" for per_round in lowest[1:])
    assert suspect == "owner-002"


def test_the_residual_basis_spans_what_the_inputs_never_take() -> None:
    rng = np.random.default_rng(0)
    span = np.linalg.qr(rng.normal(size=(5, 2)))[0]
    inputs = rng.normal(size=(200, 2)) @ span.T
    residual = input_residual_basis(inputs)
    assert residual.shape == (5, 3)
    assert residual.T @ residual == pytest.approx(np.eye(3), abs=1e-9)
    assert np.abs(inputs @ residual).max() < 1e-9
    assert input_residual_basis(np.zeros((10, 4))).shape == (4, 0)


def low_rank_round(noisy: str, noise: float, seed: int = 0) -> tuple[InputSpan, RoundUpdates]:
    """Owners' first-layer updates ``G_i X_i`` from inputs in a 3-D span of R^8 (and a bias).

    ``noisy`` adds Gaussian noise of scale ``noise`` to its inputs.
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(8, 3)))[0]
    validation = rng.normal(size=(300, 3)) @ basis.T
    span = InputSpan((4, 8), input_residual_basis(validation))
    updates = {}
    for name in ("a", "b", "c", "d", noisy):
        inputs = rng.normal(size=(50, 3)) @ basis.T
        if name == noisy:
            inputs = inputs + noise * rng.normal(size=inputs.shape)
        updates[name] = np.concatenate([(rng.normal(size=(4, 50)) @ inputs).ravel(), np.ones(4)])
    weights = dict.fromkeys(updates, 1.0)
    return span, RoundUpdates(np.zeros(36), updates, weights)


def test_input_noise_takes_the_update_outside_the_inputs_span() -> None:
    span, updates = low_rank_round("e", noise=0.5)
    assert span.isotropic_share == pytest.approx(5 / 8)
    signals = span.signals(updates)
    assert set(signals) == set("abcde")
    assert all(signals[name][INPUT_SPAN] == pytest.approx(0.0, abs=1e-12) for name in "abcd")
    assert signals["e"][INPUT_SPAN] < -0.1
    assert set(span.signals(updates, skip={"e"})) == set("abcd")
    assert span.outside_share(np.zeros(36)) is None


def test_a_noise_dominated_round_carries_no_input_span_signal() -> None:
    """Isotropic (DP-like) noise fills the residual directions in proportion to their number."""
    span, updates = low_rank_round("e", noise=0.5)
    rng = np.random.default_rng(1)
    noisy = {name: rng.normal(size=36) for name in updates.owners}
    assert span.signals(RoundUpdates(np.zeros(36), noisy, updates.weights)) == {}


@pytest.mark.parametrize(("model", "measured"), [("logistic", True), ("mlp", True), ("cnn", False)])
def test_the_input_span_needs_a_dense_first_layer(model: str, measured: bool) -> None:
    config = compose_config([f"model={model}"])
    federation = build_federation(config)
    template = build_model(config.model, federation.spec, config.seed)
    span = InputSpan.of(ValidationEvaluator(template, federation.validation))
    assert (span is not None) is measured


def test_the_curator_records_the_input_span_signal_only_when_asked() -> None:
    config = compose_config([*NOISY_FEATURES, "curator=first_order", "curator.policy=exclude"])
    federation = build_federation(config)
    template = build_model(config.model, federation.spec, config.seed)
    evaluator = ValidationEvaluator(template, federation.validation)
    asked = replace(config.curator, input_span_signal=True)
    curators = [
        Curator(curator, template, federation.validation, config.train, config.seed)
        for curator in (config.curator, asked)
    ]
    for simulated in simulate_rounds(config, evaluator, 3):
        updates = simulated.updates
        for curator in curators:
            curator.assess(
                simulated.round, updates.updates, updates.weights, updates.global_weights
            )
    default, with_span = (curator.ledger.rounds for curator in curators)
    assert all(INPUT_SPAN not in (o.signals or {}) for r in default for o in r.owners.values())
    for entry in with_span:
        spans = {name: (o.signals or {})[INPUT_SPAN] for name, o in entry.owners.items()}
        assert min(spans, key=spans.__getitem__) == "owner-002"
