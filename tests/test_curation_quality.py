"""Label quality: the fit floor of an owner's local model on the validation set."""

from __future__ import annotations

import numpy as np
import pytest

from fedcurate.config import compose_config
from fedcurate.curation import Curator, ValidationEvaluator
from fedcurate.curation.quality import FIT_FRACTION, fit_floor, label_quality
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


def test_per_example_losses_match_the_mean_loss() -> None:
    config = compose_config(NOISY)
    federation = build_federation(config)
    model = build_model(config.model, federation.spec, config.seed)
    evaluator = ValidationEvaluator(model, federation.validation, batch_size=16)
    flat = evaluator.flatten(model)
    losses = evaluator.example_losses(flat)
    assert losses.shape == (len(federation.validation),)
    assert losses.mean() == pytest.approx(evaluate(model, federation.validation).loss, rel=1e-5)


def test_a_noisy_owner_fits_worst_and_stands_lowest() -> None:
    config = compose_config([*NOISY, "curator=first_order", "curator.policy=exclude"])
    federation = build_federation(config)
    template = build_model(config.model, federation.spec, config.seed)
    evaluator = ValidationEvaluator(template, federation.validation)
    curator = Curator(config.curator, template, federation.validation, config.train, config.seed)
    for simulated in simulate_rounds(config, evaluator, 3):
        updates = simulated.updates
        quality = label_quality(evaluator, updates, skip={"owner-000"})
        assert set(quality) == set(updates.owners) - {"owner-000"}
        assert min(quality, key=quality.__getitem__) == "owner-002"
        curator.assess(simulated.round, updates.updates, updates.weights, updates.global_weights)
    standing = curator.ledger.standing()
    assert min(standing, key=standing.__getitem__) == "owner-002"
    recorded = curator.ledger.rounds[-1].owners["owner-002"].quality
    assert recorded is not None
    assert recorded < curator.ledger.rounds[-1].owners["owner-001"].quality  # type: ignore[operator]
