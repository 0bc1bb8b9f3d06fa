"""Reproducible randomness derived from the experiment seed.

Every random choice is drawn from a generator seeded by ``(seed, purpose, ...)``
rather than from process-global state, so results do not depend on which
process, thread or backend runs a piece of work, nor on what ran before it.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def _as_int(key: int | str) -> int:
    return key if isinstance(key, int) else zlib.crc32(key.encode())


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed determined by ``seed`` and the ordered ``keys``."""
    entropy = [seed, *(_as_int(key) for key in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def numpy_rng(seed: int, *keys: int | str) -> np.random.Generator:
    """A NumPy generator for one purpose (see :func:`derive_seed`)."""
    return np.random.default_rng(derive_seed(seed, *keys))


def torch_generator(seed: int, *keys: int | str) -> torch.Generator:
    """A CPU torch generator for one purpose (see :func:`derive_seed`)."""
    generator = torch.Generator()
    generator.manual_seed(derive_seed(seed, *keys))
    return generator
