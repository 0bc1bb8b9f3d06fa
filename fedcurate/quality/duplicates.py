"""Exact and near-duplicate rows of a site's data.

Exact duplicates are rows whose features agree after rounding to ``decimals``
places (so a float written and read back still matches). Near duplicates are
distinct rows whose nearest neighbour lies much closer than is typical for the
data: within ``relative_distance`` times the median nearest-neighbour distance
(Euclidean, in input space). Duplicates inflate a site's weight in training,
leak between train and test splits, and when their labels disagree one of them
is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors


@dataclass(frozen=True)
class DuplicateGroup:
    """Rows with identical (rounded) features and their labels (-1: unlabelled)."""

    rows: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def conflicting(self) -> bool:
        """Whether labelled members disagree."""
        return len({label for label in self.labels if label >= 0}) > 1


@dataclass(frozen=True)
class NearDuplicate:
    """A row, its nearest distinct row, their distance and labels."""

    row: int
    neighbour: int
    distance: float
    labels: tuple[int, int]

    @property
    def conflicting(self) -> bool:
        """Whether both are labelled and the labels differ."""
        return min(self.labels) >= 0 and self.labels[0] != self.labels[1]


def _rounded_rows(x: np.ndarray, decimals: int) -> np.ndarray:
    # Adding 0.0 turns -0.0 into 0.0, which np.unique would otherwise keep apart.
    return np.round(x.reshape(len(x), -1).astype(np.float64), decimals) + 0.0


def exact_duplicate_groups(
    x: np.ndarray, labels: np.ndarray, decimals: int = 6
) -> tuple[DuplicateGroup, ...]:
    """Groups of two or more rows with the same features after rounding."""
    _, group_of, counts = np.unique(
        _rounded_rows(x, decimals), axis=0, return_inverse=True, return_counts=True
    )
    group_of = group_of.ravel()
    groups = []
    for group in np.flatnonzero(counts > 1):
        rows = np.flatnonzero(group_of == group)
        groups.append(
            DuplicateGroup(tuple(int(r) for r in rows), tuple(int(labels[r]) for r in rows))
        )
    return tuple(sorted(groups, key=lambda g: g.rows[0]))


def near_duplicate_pairs(
    x: np.ndarray, labels: np.ndarray, relative_distance: float = 0.1, decimals: int = 6
) -> tuple[NearDuplicate, ...]:
    """Pairs of distinct rows closer than ``relative_distance`` x the median NN distance.

    Exact duplicates are collapsed first (to their first row) so they neither
    pair with each other nor drag the median to zero.
    """
    _, first_rows = np.unique(_rounded_rows(x, decimals), axis=0, return_index=True)
    first_rows = np.sort(first_rows)
    if len(first_rows) < 3:
        return ()
    points = x.reshape(len(x), -1)[first_rows].astype(np.float64)
    distances, neighbours = NearestNeighbors(n_neighbors=2).fit(points).kneighbors(points)
    nearest, partner = distances[:, 1], neighbours[:, 1]
    cutoff = relative_distance * float(np.median(nearest))
    pairs = {}
    for i in np.flatnonzero(nearest < cutoff):
        row, other = sorted((int(first_rows[i]), int(first_rows[partner[i]])))
        pairs[row, other] = NearDuplicate(
            row, other, float(nearest[i]), (int(labels[row]), int(labels[other]))
        )
    return tuple(pairs[key] for key in sorted(pairs))
