"""Simulated low-quality and malicious data owners (simulation only).

Data corruptions change an owner's training set before it trains; update
corruptions change what an owner sends (free riders do not train at all). Which
owners are affected is a seeded function of the config, so the server, every
owner and the run outputs agree on the ground truth without exchanging it.
"""

from __future__ import annotations

import numpy as np

from fedcurate.config import ConfigError, CorruptionConfig
from fedcurate.data.arrays import ArrayDataset
from fedcurate.seeding import numpy_rng

DATA_KINDS = ("label_noise", "label_flip", "feature_noise", "out_of_task")
FREE_RIDER_KINDS = ("free_rider_zero", "free_rider_replay", "free_rider_random")
UPDATE_KINDS = (*FREE_RIDER_KINDS, "sign_flip", "scaled_update")
CORRUPTION_KINDS = ("none", *DATA_KINDS, *UPDATE_KINDS)


def corrupted_owners(cfg: CorruptionConfig, num_owners: int, seed: int) -> dict[int, str]:
    """Owner index -> corruption kind, for every affected owner.

    Explicit ``cfg.owners`` win; otherwise ``round(fraction * num_owners)`` owners
    are drawn with a seeded generator.
    """
    if cfg.kind not in CORRUPTION_KINDS:
        raise ConfigError(f"corruption.kind: '{cfg.kind}' is not one of {list(CORRUPTION_KINDS)}")
    if cfg.kind == "none":
        return {}
    if cfg.owners is not None:
        chosen = sorted(set(cfg.owners))
    else:
        count = round(cfg.fraction * num_owners)
        rng = numpy_rng(seed, "corrupted-owners")
        chosen = sorted(int(i) for i in rng.choice(num_owners, size=count, replace=False))
    return dict.fromkeys(chosen, cfg.kind)


def corrupt_data(
    data: ArrayDataset, cfg: CorruptionConfig, rng: np.random.Generator
) -> ArrayDataset:
    """An owner's training set after a data corruption (others pass through).

    * ``label_noise``: each label, with probability ``rate``, becomes a uniformly
      drawn *other* class.
    * ``label_flip``: with probability ``rate``, ``y -> (y + 1) mod C``.
    * ``feature_noise``: Gaussian noise of ``scale`` per-feature standard deviations.
    * ``out_of_task``: features drawn from a Gaussian with the data's per-feature
      mean and spread, labels uniformly random: data unrelated to the task.
    """
    classes = data.num_classes
    if cfg.kind == "label_noise":
        hit = rng.random(len(data)) < cfg.rate
        shift = rng.integers(1, classes, size=len(data))
        return data.with_labels(np.where(hit, (data.y + shift) % classes, data.y))
    if cfg.kind == "label_flip":
        hit = rng.random(len(data)) < cfg.rate
        return data.with_labels(np.where(hit, (data.y + 1) % classes, data.y))
    if cfg.kind == "feature_noise":
        spread = data.x.std(axis=0, keepdims=True) + 1e-8
        return data.with_features(data.x + cfg.scale * spread * rng.normal(size=data.x.shape))
    if cfg.kind == "out_of_task":
        mean = data.x.mean(axis=0, keepdims=True)
        spread = data.x.std(axis=0, keepdims=True)
        noise = mean + spread * rng.normal(size=data.x.shape)
        return ArrayDataset(
            noise.astype(np.float32), rng.integers(0, classes, size=len(data)), classes
        )
    return data


def corrupt_update(
    honest: np.ndarray | None,
    cfg: CorruptionConfig,
    *,
    last_global_change: np.ndarray | None,
    global_weights: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """What a corrupted owner sends instead of its honest flat update.

    Parameters
    ----------
    honest : np.ndarray or None
        The owner's honest update (``None`` for free riders, which do not train).
    cfg : CorruptionConfig
        ``kind`` and ``scale``.
    last_global_change : np.ndarray or None
        ``w_t - w_{t-1}`` as seen by the owner, ``None`` before its second round.
    global_weights : np.ndarray
        ``w_t``, the flat global model the owner received.
    rng : np.random.Generator
        Source of randomness for ``free_rider_random``.
    """
    kind = cfg.kind
    if kind == "free_rider_zero":
        return np.zeros_like(global_weights)
    if kind == "free_rider_replay":
        return np.zeros_like(global_weights) if last_global_change is None else last_global_change
    if kind == "free_rider_random":
        reference = (
            float(np.linalg.norm(last_global_change))
            if last_global_change is not None
            else 1e-2 * float(np.linalg.norm(global_weights))
        )
        direction = rng.normal(size=global_weights.shape)
        direction /= np.linalg.norm(direction) + 1e-12
        return (cfg.scale * reference * direction).astype(global_weights.dtype)
    if honest is None:
        raise ValueError(f"corruption '{kind}' transforms an honest update, none was given")
    if kind == "sign_flip":
        return -cfg.scale * honest
    if kind == "scaled_update":
        return cfg.scale * honest
    return honest
