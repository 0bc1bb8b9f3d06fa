"""Bundled and generated datasets, and the federation built from them."""

from __future__ import annotations

import numpy as np
import pytest

from fedcurate.config import DatasetConfig, compose_config
from fedcurate.data import build_federation
from fedcurate.data.bundled import POOLED_DATASETS, load_pooled, synthetic_devices

SHAPES = {
    "digits": ((1, 8, 8), 10, 1797),
    "breast_cancer": ((30,), 2, 569),
    "wine": ((13,), 3, 178),
    "mnist1d": ((1, 40), 10, 5000),
}


@pytest.mark.parametrize("name", sorted(POOLED_DATASETS))
def test_bundled_dataset_shapes(name: str) -> None:
    data = load_pooled(DatasetConfig(name=name))
    shape, classes, size = SHAPES[name]
    assert (data.input_shape, data.num_classes, len(data)) == (shape, classes, size)
    assert np.isfinite(data.x).all()
    assert set(np.unique(data.y)) == set(range(classes))


def test_synthetic_follows_the_fedprox_recipe() -> None:
    cfg = DatasetConfig(name="synthetic", alpha=1.0, beta=1.0)
    devices = synthetic_devices(cfg, 30, seed=0)
    sizes = np.array([len(d) for d in devices])
    assert len(devices) == 30
    assert sizes.min() >= 50
    assert all(d.input_shape == (60,) and d.num_classes == 10 for d in devices)
    # Different devices have different label mixes (heterogeneous W_k, b_k).
    mixes = np.array([np.bincount(d.y, minlength=10) / len(d) for d in devices])
    assert mixes.std(axis=0).mean() > 0.05
    again = synthetic_devices(cfg, 30, seed=0)
    assert all(np.array_equal(a.x, b.x) for a, b in zip(devices, again, strict=True))


def test_synthetic_iid_variant_shares_the_model() -> None:
    devices = synthetic_devices(DatasetConfig(name="synthetic", iid=True), 10, seed=0)
    mixes = np.array([np.bincount(d.y, minlength=10) / len(d) for d in devices if len(d) > 200])
    assert mixes.std(axis=0).mean() < 0.05


def test_pooled_federation_splits_every_example_once() -> None:
    config = compose_config(["num_clients=7"])
    federation = build_federation(config)
    owned = sum(len(o.train) + len(o.test) for o in federation.owners)
    assert owned + len(federation.test) + len(federation.validation) == 1797
    assert abs(len(federation.test) - 0.2 * 1797) <= 1
    assert abs(len(federation.validation) - 0.1 * 1797) <= 1
    assert federation.spec.input_shape == (1, 8, 8)


def test_natural_federation_uses_one_device_per_owner() -> None:
    config = compose_config(["experiment=fedprox_synthetic", "num_clients=5"])
    federation = build_federation(config)
    assert len(federation.owners) == 5
    assert len(federation.test) == sum(len(o.test) for o in federation.owners)
