"""Corruption injection: each kind does what it says, on the owners it names."""

from __future__ import annotations

import numpy as np
import pytest

from fedcurate.config import CorruptionConfig, compose_config
from fedcurate.data import build_federation, make_dataset
from fedcurate.data.corruption import (
    DATA_KINDS,
    UPDATE_KINDS,
    corrupt_data,
    corrupt_update,
    corrupted_owners,
)

RNG = np.random.default_rng(0)
DATA = make_dataset(RNG.normal(size=(4000, 5)), RNG.integers(0, 10, size=4000), 10)
HONEST = RNG.normal(size=50)
GLOBAL = RNG.normal(size=50)
LAST_CHANGE = RNG.normal(size=50) * 0.1


def test_assignment_is_seeded_and_sized() -> None:
    cfg = CorruptionConfig(kind="label_noise", fraction=0.3)
    chosen = corrupted_owners(cfg, 10, seed=5)
    assert len(chosen) == 3
    assert set(chosen.values()) == {"label_noise"}
    assert chosen == corrupted_owners(cfg, 10, seed=5)
    assert chosen != corrupted_owners(cfg, 10, seed=6)


def test_explicit_owners_win() -> None:
    cfg = CorruptionConfig(kind="sign_flip", owners=[1, 7])
    assert corrupted_owners(cfg, 10, seed=0) == {1: "sign_flip", 7: "sign_flip"}


def test_none_corrupts_nobody() -> None:
    assert corrupted_owners(CorruptionConfig(), 10, seed=0) == {}


def test_label_noise_rate_and_only_other_classes() -> None:
    noisy = corrupt_data(DATA, CorruptionConfig("label_noise", rate=0.3), np.random.default_rng(1))
    changed = noisy.y != DATA.y
    assert abs(changed.mean() - 0.3) < 0.03
    assert np.array_equal(noisy.x, DATA.x)


def test_label_flip_shifts_labels() -> None:
    flipped = corrupt_data(DATA, CorruptionConfig("label_flip", rate=1.0), np.random.default_rng(1))
    assert np.array_equal(flipped.y, (DATA.y + 1) % 10)


def test_feature_noise_keeps_labels_and_adds_scaled_noise() -> None:
    cfg = CorruptionConfig("feature_noise", scale=2.0)
    noisy = corrupt_data(DATA, cfg, np.random.default_rng(1))
    assert np.array_equal(noisy.y, DATA.y)
    ratio = (noisy.x - DATA.x).std(axis=0) / DATA.x.std(axis=0)
    assert np.allclose(ratio, 2.0, rtol=0.1)


def test_out_of_task_breaks_the_feature_label_link() -> None:
    data = make_dataset(np.eye(10)[DATA.y] * 5, DATA.y, 10)  # labels readable from features
    junk = corrupt_data(data, CorruptionConfig("out_of_task"), np.random.default_rng(1))
    agreement = (junk.x.argmax(1) == junk.y).mean()
    assert agreement < 0.2
    assert junk.x.shape == data.x.shape


def _update(
    kind: str, last_change: np.ndarray | None = LAST_CHANGE, scale: float = 1.0
) -> np.ndarray:
    honest = None if kind.startswith("free_rider") else HONEST
    return corrupt_update(
        honest,
        CorruptionConfig(kind, scale=scale),
        last_global_change=last_change,
        global_weights=GLOBAL,
        rng=np.random.default_rng(2),
    )


def test_update_corruptions() -> None:
    assert not _update("free_rider_zero").any()
    assert np.array_equal(_update("free_rider_replay"), LAST_CHANGE)
    assert not _update("free_rider_replay", last_change=None).any()
    random = _update("free_rider_random", scale=2.0)
    assert np.isclose(np.linalg.norm(random), 2.0 * np.linalg.norm(LAST_CHANGE))
    assert abs(np.corrcoef(random, LAST_CHANGE)[0, 1]) < 0.5
    assert np.allclose(_update("sign_flip", scale=3.0), -3.0 * HONEST)
    assert np.allclose(_update("scaled_update", scale=10.0), 10.0 * HONEST)


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_federation_corrupts_only_the_chosen_owners(kind: str) -> None:
    config = compose_config([f"corruption={kind}", "corruption.owners=[2]", "num_clients=5"])
    federation = build_federation(config)
    assert federation.corruption == {2: kind}
    for owner, clean in zip(federation.owners, federation.clean_owners, strict=True):
        same = np.array_equal(owner.train.x, clean.train.x) and np.array_equal(
            owner.train.y, clean.train.y
        )
        assert same == (owner.index != 2)


@pytest.mark.parametrize("kind", UPDATE_KINDS)
def test_update_kinds_leave_data_alone(kind: str) -> None:
    config = compose_config([f"corruption={kind}", "corruption.owners=[1]", "num_clients=4"])
    federation = build_federation(config)
    assert federation.corruption == {1: kind}
    assert np.array_equal(federation.owners[1].train.y, federation.clean_owners[1].train.y)
