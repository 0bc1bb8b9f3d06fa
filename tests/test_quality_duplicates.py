"""Exact and near duplicates, and outliers, planted in real digits."""

from __future__ import annotations

import numpy as np
import pytest

from fedcurate.config import DatasetConfig
from fedcurate.data import ArrayDataset
from fedcurate.data.bundled import load_pooled
from fedcurate.quality import exact_duplicate_groups, find_outliers, near_duplicate_pairs
from fedcurate.quality.outliers import modified_z_scores


@pytest.fixture(scope="module")
def digits() -> ArrayDataset:
    """400 digits rows (no duplicates among them)."""
    return load_pooled(DatasetConfig(name="digits")).subset(np.arange(400))


def test_exact_duplicates_are_grouped_and_conflicts_named() -> None:
    x = np.array([[0.0, 1.0], [0.5, 0.25], [-0.0, 1.0 + 1e-9], [0.5, 0.25], [2.0, 3.0]])
    labels = np.array([1, 4, 1, 5, 1])
    groups = exact_duplicate_groups(x, labels)
    # Rounding to 6 decimals matches 1 and 1 + 1e-9, and -0.0 with 0.0.
    assert [g.rows for g in groups] == [(0, 2), (1, 3)]
    assert [g.conflicting for g in groups] == [False, True]


def test_unlabelled_rows_do_not_make_a_conflict() -> None:
    x = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    (group,) = exact_duplicate_groups(x, np.array([3, -1, 3]))
    assert group.rows == (0, 1)
    assert not group.conflicting


def test_planted_duplicates_and_near_duplicates_are_found(digits: ArrayDataset) -> None:
    rng = np.random.default_rng(0)
    flat = digits.x.reshape(len(digits), -1)
    n = len(digits)
    x = np.concatenate([flat, flat[[10, 20]], flat[[30, 40]] + rng.normal(0, 0.005, (2, 64))])
    labels = np.concatenate([digits.y, digits.y[[10, 20]], [(digits.y[30] + 1) % 10, digits.y[40]]])
    assert [g.rows for g in exact_duplicate_groups(x, labels)] == [(10, n), (20, n + 1)]
    pairs = near_duplicate_pairs(x, labels)
    assert [(p.row, p.neighbour) for p in pairs] == [(30, n + 2), (40, n + 3)]
    assert [p.conflicting for p in pairs] == [True, False]
    assert all(p.distance < 0.1 for p in pairs)


def test_clean_digits_have_no_near_duplicates(digits: ArrayDataset) -> None:
    flat = digits.x.reshape(len(digits), -1)
    assert exact_duplicate_groups(flat, digits.y) == ()
    assert near_duplicate_pairs(flat, digits.y) == ()


def test_noise_rows_are_outliers_and_clean_rows_are_not(digits: ArrayDataset) -> None:
    rng = np.random.default_rng(0)
    flat = digits.x.reshape(len(digits), -1).astype(np.float64)
    noise = rng.random((4, 64))
    x = np.concatenate([flat, noise])
    labels = np.concatenate([digits.y, [0, 1, -1, 3]])
    outliers = find_outliers(x, labels, num_classes=10)
    flagged = {o.row for o in outliers}
    assert flagged >= set(range(len(digits), len(digits) + 4))
    assert len(flagged - set(range(len(digits), len(digits) + 4))) <= 2
    assert [o.score for o in outliers] == sorted((o.score for o in outliers), reverse=True)
    assert {o.label for o in outliers if o.row == len(digits) + 2} == {-1}


def test_modified_z_scores() -> None:
    scores = modified_z_scores(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    # median 3, MAD 1: z = 0.6745 (v - 3).
    assert scores.tolist() == pytest.approx([0.6745 * (v - 3) for v in (1, 2, 3, 4, 100)])
    assert modified_z_scores(np.ones(4)).tolist() == [0, 0, 0, 0]
