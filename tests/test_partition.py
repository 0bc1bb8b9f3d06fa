"""Partitioners: disjoint, complete, seeded, and honest about what they promise."""

from __future__ import annotations

import numpy as np
import pytest

from fedcurate.config import ConfigError, PartitionConfig
from fedcurate.data.partition import PARTITIONERS, partition

LABELS = np.random.default_rng(0).integers(0, 10, size=1200)


def _parts(name: str, owners: int = 10, seed: int = 1, **knobs: float) -> list[np.ndarray]:
    cfg = PartitionConfig(name=name, **knobs)  # type: ignore[arg-type]
    return partition(LABELS, owners, cfg, np.random.default_rng(seed))


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
def test_disjoint_complete_and_nonempty(name: str) -> None:
    parts = _parts(name)
    joined = np.concatenate(parts)
    assert len(parts) == 10
    assert sorted(joined.tolist()) == list(range(len(LABELS)))
    assert min(len(p) for p in parts) >= 1


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
def test_seeded(name: str) -> None:
    first, again, other = _parts(name, seed=3), _parts(name, seed=3), _parts(name, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_iid_sizes_are_balanced() -> None:
    sizes = [len(p) for p in _parts("iid")]
    assert max(sizes) - min(sizes) <= 1


def test_dirichlet_skews_labels_and_respects_minimum() -> None:
    parts = _parts("dirichlet", alpha=0.1, min_examples=20)
    assert min(len(p) for p in parts) >= 20
    dominant = [np.bincount(LABELS[p], minlength=10).max() / len(p) for p in parts]
    assert np.mean(dominant) > 0.4  # IID would give ~0.1


def test_dirichlet_impossible_minimum_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"partition\.alpha"):
        partition(
            LABELS[:40],
            10,
            PartitionConfig("dirichlet", alpha=0.01, min_examples=4),
            np.random.default_rng(0),
        )


def test_shards_give_each_owner_its_classes() -> None:
    parts = _parts("shards", classes_per_owner=2)
    assert all(len(np.unique(LABELS[p])) <= 2 for p in parts)


def test_shards_that_cannot_cover_every_class_fail() -> None:
    with pytest.raises(ConfigError, match="classes_per_owner"):
        _parts("shards", owners=3, classes_per_owner=2)


def test_quantity_skew_varies_sizes_not_labels() -> None:
    parts = _parts("quantity_skew", alpha=0.5, min_examples=10)
    sizes = np.array([len(p) for p in parts])
    assert sizes.min() >= 10
    assert sizes.max() > 2 * sizes.min()
    mixes = np.array([np.bincount(LABELS[p], minlength=10) / len(p) for p in parts if len(p) > 60])
    assert np.abs(mixes - np.bincount(LABELS) / len(LABELS)).max() < 0.2


def test_unknown_partitioner_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="dirichlet"):
        _parts("natural")
