"""Datasets that need no download: scikit-learn's bundled sets and generated ones.

Tabular features are standardised with statistics of the whole set. This is
dataset preparation done once by whoever ships the benchmark (like MNIST's fixed
normalisation constants); real sites bring their own preprocessed files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine

from fedcurate.config import ConfigError, DatasetConfig
from fedcurate.data.arrays import ArrayDataset, make_dataset
from fedcurate.io import atomic_write_bytes
from fedcurate.seeding import numpy_rng


def _standardise(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def load_digits_dataset(_: DatasetConfig) -> ArrayDataset:
    """8x8 digits as ``(n, 1, 8, 8)`` images scaled to [0, 1]."""
    bunch = load_digits()
    return make_dataset(bunch.images[:, None, :, :] / 16.0, bunch.target, 10)


def load_breast_cancer_dataset(_: DatasetConfig) -> ArrayDataset:
    """Wisconsin breast cancer, 30 standardised features, 2 classes."""
    bunch = load_breast_cancer()
    return make_dataset(_standardise(bunch.data), bunch.target, 2)


def load_wine_dataset(_: DatasetConfig) -> ArrayDataset:
    """Wine, 13 standardised features, 3 classes."""
    bunch = load_wine()
    return make_dataset(_standardise(bunch.data), bunch.target, 3)


def _cache_dir() -> Path:
    root = os.environ.get("FEDCURATE_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(root or Path.home() / ".cache") / "fedcurate"


def load_mnist1d_dataset(_: DatasetConfig) -> ArrayDataset:
    """MNIST-1D generated offline with its published arguments, as ``(n, 1, 40)``.

    Generation takes a few seconds, so the result is cached on disk; the
    generator is deterministic (its own fixed seed), so the cache is only a speed-up.
    """
    from mnist1d.data import get_dataset_args
    from mnist1d.data import make_dataset as make_mnist1d

    args = get_dataset_args()
    key = hashlib.sha256(repr(sorted(vars(args).items())).encode()).hexdigest()[:16]
    cache = _cache_dir() / f"mnist1d-{key}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            x, y = stored["x"], stored["y"]
    else:
        raw = make_mnist1d(args)
        x = np.concatenate([raw["x"], raw["x_test"]])
        y = np.concatenate([raw["y"], raw["y_test"]])
        buffer = _npz_bytes(x=x, y=y)
        atomic_write_bytes(cache, buffer)
    return make_dataset(x[:, None, :], y, 10)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    handle = io.BytesIO()
    np.savez(handle, **arrays)  # type: ignore[arg-type]
    return handle.getvalue()


def synthetic_devices(cfg: DatasetConfig, num_devices: int, seed: int) -> list[ArrayDataset]:
    """FedProx Synthetic(alpha, beta) (Li et al., MLSys 2020), one dataset per device.

    ``n_k = floor(lognormal(4, 2)) + 50``; ``u_k ~ N(0, alpha)``, ``B_k ~ N(0, beta)``;
    ``W_k, b_k ~ N(u_k, 1)``; ``v_k ~ N(B_k, 1)``; ``x ~ N(v_k, diag(j^-1.2))``;
    ``y = argmax(x W_k + b_k)``. The IID variant shares ``W, b ~ N(0, 1)`` and ``v = 0``.
    """
    rng = numpy_rng(seed, "synthetic", repr((cfg.alpha, cfg.beta, cfg.iid)))
    dim, classes = cfg.num_features, cfg.num_classes
    sizes = rng.lognormal(4, 2, num_devices).astype(int) + 50
    mean_w = rng.normal(0, cfg.alpha, num_devices)
    mean_x_centre = rng.normal(0, cfg.beta, num_devices)
    std_x = np.power(np.arange(1, dim + 1), -1.2) ** 0.5
    shared_w = rng.normal(0, 1, (dim, classes))
    shared_b = rng.normal(0, 1, classes)
    devices = []
    for k in range(num_devices):
        if cfg.iid:
            w, b, mean_x = shared_w, shared_b, np.zeros(dim)
        else:
            w = rng.normal(mean_w[k], 1, (dim, classes))
            b = rng.normal(mean_w[k], 1, classes)
            mean_x = rng.normal(mean_x_centre[k], 1, dim)
        x = mean_x + rng.normal(0, 1, (sizes[k], dim)) * std_x
        devices.append(make_dataset(x, np.argmax(x @ w + b, axis=1), classes))
    return devices


POOLED_DATASETS: dict[str, Callable[[DatasetConfig], ArrayDataset]] = {
    "digits": load_digits_dataset,
    "breast_cancer": load_breast_cancer_dataset,
    "wine": load_wine_dataset,
    "mnist1d": load_mnist1d_dataset,
}

#: Datasets whose owners come with the data (one device per owner).
NATURAL_DATASETS = ("synthetic",)

DATASET_NAMES = (*POOLED_DATASETS, *NATURAL_DATASETS, "site")


def load_pooled(cfg: DatasetConfig) -> ArrayDataset:
    """A bundled dataset by name, as one pool of examples."""
    try:
        loader = POOLED_DATASETS[cfg.name]
    except KeyError:
        raise ConfigError(
            f"dataset.name: '{cfg.name}' is not a pooled dataset; "
            f"choose one of {sorted(POOLED_DATASETS)}"
        ) from None
    return loader(cfg)
