"""Partitioners: divide a pool of labelled examples among data owners.

Every partitioner returns one index array per owner. Guarantees (tested): the
parts are disjoint, together they cover every index exactly once, each owner gets
at least one example, and the same seed gives the same parts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fedcurate.config import ConfigError, PartitionConfig

Partitioner = Callable[[np.ndarray, int, PartitionConfig, np.random.Generator], list[np.ndarray]]

_MAX_DRAWS = 1000


def iid(
    labels: np.ndarray, owners: int, _: PartitionConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """A uniformly random split into near-equal parts."""
    return [np.sort(part) for part in np.array_split(rng.permutation(len(labels)), owners)]


def dirichlet(
    labels: np.ndarray, owners: int, cfg: PartitionConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Label skew: each class is split by ``Dirichlet(alpha)`` proportions.

    Draws are repeated until every owner holds at least ``min_examples`` (the
    usual rejection scheme); a clear error says when that cannot happen.
    """
    minimum = _feasible_minimum(len(labels), owners, cfg.min_examples)
    classes = np.unique(labels)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    for _ in range(_MAX_DRAWS):
        parts: list[list[np.ndarray]] = [[] for _ in range(owners)]
        for members in by_class:
            shares = rng.dirichlet(np.full(owners, cfg.alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for owner, piece in enumerate(np.split(members, cuts)):
                parts[owner].append(piece)
        merged = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in merged) >= minimum:
            return merged
    raise ConfigError(
        f"partition.alpha={cfg.alpha}: no Dirichlet draw in {_MAX_DRAWS} gave every one of "
        f"{owners} owners {minimum} examples; raise alpha or lower partition.min_examples"
    )


def shards(
    labels: np.ndarray, owners: int, cfg: PartitionConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Pathological non-IID: every owner holds ``classes_per_owner`` classes.

    Classes are dealt round-robin over a seeded class order so every class goes to
    some owner; each class's examples are split evenly among the owners holding it.
    """
    classes = rng.permutation(np.unique(labels))
    per_owner = min(cfg.classes_per_owner, len(classes))
    if owners * per_owner < len(classes):
        raise ConfigError(
            f"partition.classes_per_owner={per_owner}: {owners} owners cannot cover "
            f"{len(classes)} classes; raise it or add owners"
        )
    holders: dict[int, list[int]] = {int(c): [] for c in classes}
    for owner in range(owners):
        for slot in range(per_owner):
            holders[int(classes[(owner * per_owner + slot) % len(classes)])].append(owner)
    parts: list[list[np.ndarray]] = [[] for _ in range(owners)]
    for cls, members in holders.items():
        examples = rng.permutation(np.flatnonzero(labels == cls))
        for owner, piece in zip(members, np.array_split(examples, len(members)), strict=True):
            parts[owner].append(piece)
    merged = [np.sort(np.concatenate(p)) for p in parts]
    if min(len(p) for p in merged) == 0:
        raise ConfigError(
            f"partition=shards: some owner got no example ({owners} owners, "
            f"{len(labels)} examples); use fewer owners"
        )
    return merged


def quantity_skew(
    labels: np.ndarray, owners: int, cfg: PartitionConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Owner sizes from ``Dirichlet(alpha)``, each owner a random sample of the pool."""
    minimum = _feasible_minimum(len(labels), owners, cfg.min_examples)
    spare = len(labels) - minimum * owners
    shares = rng.dirichlet(np.full(owners, cfg.alpha))
    sizes = minimum + np.floor(shares * spare).astype(int)
    sizes[: len(labels) - sizes.sum()] += 1
    order = rng.permutation(len(labels))
    return [np.sort(part) for part in np.split(order, np.cumsum(sizes)[:-1])]


def _feasible_minimum(pool: int, owners: int, wanted: int) -> int:
    if pool < owners:
        raise ConfigError(f"num_clients={owners}: only {pool} examples to share among owners")
    return min(wanted, pool // owners)


PARTITIONERS: dict[str, Partitioner] = {
    "iid": iid,
    "dirichlet": dirichlet,
    "shards": shards,
    "quantity_skew": quantity_skew,
}


def partition(
    labels: np.ndarray, owners: int, cfg: PartitionConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Split ``range(len(labels))`` among ``owners`` with the configured partitioner."""
    try:
        partitioner = PARTITIONERS[cfg.name]
    except KeyError:
        raise ConfigError(
            f"partition.name: '{cfg.name}' does not fit a pooled dataset; "
            f"choose one of {sorted(PARTITIONERS)}"
        ) from None
    return partitioner(labels, owners, cfg, rng)
