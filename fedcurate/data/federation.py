"""Build a simulated federation: central test set, curator validation set, owners.

Pooled datasets are split three ways first: ``test_fraction`` for the server's
central evaluation and ``validation_fraction`` for the curator (both stratified
and never seen by an owner); the rest is partitioned among the owners, and each
owner keeps ``owner_test_fraction`` of its share for federated evaluation.
Natural datasets (one device per owner) split every device into train and test;
the central test set is the union of device test parts and the curator's
validation set a slice of every device's training part.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from fedcurate.config import Config, ConfigError
from fedcurate.data.arrays import ArrayDataset
from fedcurate.data.bundled import DATASET_NAMES, NATURAL_DATASETS, load_pooled, synthetic_devices
from fedcurate.data.corruption import DATA_KINDS, corrupt_data, corrupted_owners
from fedcurate.data.partition import partition
from fedcurate.seeding import numpy_rng


@dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about the task."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int


@dataclass(frozen=True)
class OwnerData:
    """One data owner's local training and test sets."""

    index: int
    train: ArrayDataset
    test: ArrayDataset


@dataclass(frozen=True)
class Federation:
    """Everything a simulation needs, built deterministically from the config.

    Attributes
    ----------
    owners : tuple of OwnerData
        Per-owner data *after* any data corruption.
    clean_owners : tuple of OwnerData
        The same owners before corruption (for clean-only baselines).
    corruption : dict
        Owner index -> corruption kind (data and update kinds), the ground truth.
    """

    spec: DatasetSpec
    test: ArrayDataset
    validation: ArrayDataset
    owners: tuple[OwnerData, ...]
    clean_owners: tuple[OwnerData, ...]
    corruption: dict[int, str]


def owner_name(index: int) -> str:
    """Stable identifier of simulated owner ``index`` (owners are named, never numbered)."""
    return f"owner-{index:03d}"


def dataset_spec(config: Config) -> DatasetSpec:
    """The task's input shape and classes, as every party must agree on them.

    Site data (``dataset=site``) is flat features of ``dataset.num_features``.
    """
    if config.dataset.name == "site":
        return DatasetSpec("site", (config.dataset.num_features,), config.dataset.num_classes)
    return build_federation(config).spec


def build_federation(config: Config) -> Federation:
    """The federation described by ``config`` (cached per process)."""
    key = json.dumps(
        [
            asdict(config.dataset),
            asdict(config.partition),
            asdict(config.corruption),
            config.num_clients,
            config.seed,
        ],
        sort_keys=True,
    )
    if key not in _CACHE:
        _CACHE[key] = _build(config)
    return _CACHE[key]


_CACHE: dict[str, Federation] = {}


def _build(config: Config) -> Federation:
    name = config.dataset.name
    if name not in DATASET_NAMES or name == "site":
        raise ConfigError(
            f"dataset.name: '{name}' cannot be simulated; choose one of "
            f"{[n for n in DATASET_NAMES if n != 'site']}"
        )
    if name in NATURAL_DATASETS:
        test, validation, clean = _natural_split(config)
    else:
        test, validation, clean = _pooled_split(config)
    spec = DatasetSpec(name, test.input_shape, test.num_classes)
    corruption = corrupted_owners(config.corruption, config.num_clients, config.seed)
    owners = tuple(
        _apply_corruption(owner, config) if owner.index in corruption else owner for owner in clean
    )
    return Federation(spec, test, validation, owners, clean, corruption)


def _apply_corruption(owner: OwnerData, config: Config) -> OwnerData:
    if config.corruption.kind not in DATA_KINDS:
        return owner
    rng = numpy_rng(config.seed, "corrupt-data", owner.index)
    return OwnerData(owner.index, corrupt_data(owner.train, config.corruption, rng), owner.test)


def _stratified_split(
    data: ArrayDataset, fraction: float, rng: np.random.Generator
) -> tuple[ArrayDataset, ArrayDataset]:
    """``(rest, held_out)`` with ``fraction`` of ``data`` held out, stratified by label."""
    if fraction == 0.0:
        return data, data.subset(np.arange(0))
    indices = np.arange(len(data))
    counts = np.bincount(data.y)[np.bincount(data.y) > 0]
    held_count = int(np.ceil(fraction * len(data)))
    can_stratify = counts.min() >= 2 and len(counts) <= min(held_count, len(data) - held_count)
    stratify = data.y if can_stratify else None
    rest, held = train_test_split(
        indices,
        test_size=fraction,
        stratify=stratify,
        random_state=int(rng.integers(2**31 - 1)),
    )
    return data.subset(np.sort(rest)), data.subset(np.sort(held))


def split_owner_data(
    data: ArrayDataset, name: str, config: Config
) -> tuple[ArrayDataset, ArrayDataset]:
    """An owner's ``(train, test)`` split, seeded by the owner's name."""
    rng = numpy_rng(config.seed, "owner-split", name)
    fraction = config.dataset.owner_test_fraction
    order = rng.permutation(len(data))
    n_test = min(len(data) - 1, max(1, round(fraction * len(data)))) if fraction > 0 else 0
    return data.subset(np.sort(order[n_test:])), data.subset(np.sort(order[:n_test]))


def _owner_split(index: int, data: ArrayDataset, config: Config) -> OwnerData:
    return OwnerData(index, *split_owner_data(data, owner_name(index), config))


def _pooled_split(config: Config) -> tuple[ArrayDataset, ArrayDataset, tuple[OwnerData, ...]]:
    cfg = config.dataset
    pool = load_pooled(cfg)
    rng = numpy_rng(config.seed, "central-splits")
    rest, test = _stratified_split(pool, cfg.test_fraction, rng)
    validation_share = cfg.validation_fraction / (1.0 - cfg.test_fraction)
    owners_pool, validation = _stratified_split(rest, validation_share, rng)
    parts = partition(
        owners_pool.y,
        config.num_clients,
        config.partition,
        numpy_rng(config.seed, "partition"),
    )
    owners = tuple(
        _owner_split(i, owners_pool.subset(part), config) for i, part in enumerate(parts)
    )
    return test, validation, owners


def _natural_split(config: Config) -> tuple[ArrayDataset, ArrayDataset, tuple[OwnerData, ...]]:
    if config.partition.name != "natural":
        raise ConfigError(
            f"partition={config.partition.name}: dataset '{config.dataset.name}' comes "
            "with one device per owner; use partition=natural"
        )
    devices = synthetic_devices(config.dataset, config.num_clients, config.seed)
    owners, validation_parts = [], []
    for index, device in enumerate(devices):
        owner = _owner_split(index, device, config)
        rng = numpy_rng(config.seed, "validation-slice", index)
        train, held = _stratified_split(owner.train, config.dataset.validation_fraction, rng)
        owners.append(OwnerData(index, train, owner.test))
        validation_parts.append(held)
    test = ArrayDataset.concatenate([o.test for o in owners])
    return test, ArrayDataset.concatenate(validation_parts), tuple(owners)
