"""Model weights as Flower ArrayRecords and as flat vectors.

Updates travel as Flower ``ArrayRecord`` objects keyed like the PyTorch state
dict; encryption and valuation work on one flat float vector. A
:class:`ParamLayout` converts between the two without ambiguity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
from torch import nn


def model_to_record(model: nn.Module) -> ArrayRecord:
    """The model's state dict as an ArrayRecord (float32 numpy arrays)."""
    return ArrayRecord(
        {
            key: Array(value.detach().cpu().numpy().copy())
            for key, value in model.state_dict().items()
        }
    )


def load_record(model: nn.Module, record: ArrayRecord) -> nn.Module:
    """Copy ``record`` into ``model`` (strict: keys and shapes must match)."""
    state = {key: torch.from_numpy(array.numpy().copy()) for key, array in record.items()}
    model.load_state_dict(state, strict=True)
    return model


@dataclass(frozen=True)
class ParamLayout:
    """Ordered keys, shapes and dtypes of a model's arrays."""

    keys: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @staticmethod
    def of(record: ArrayRecord) -> ParamLayout:
        """The layout of ``record``."""
        keys = tuple(record.keys())
        return ParamLayout(keys, tuple(tuple(record[k].shape) for k in keys))

    @property
    def size(self) -> int:
        """Total number of scalars."""
        return int(sum(int(np.prod(s)) for s in self.shapes))

    def flatten(self, record: ArrayRecord) -> np.ndarray:
        """One float64 vector holding every array of ``record`` in layout order."""
        return np.concatenate([record[k].numpy().astype(np.float64).ravel() for k in self.keys])

    def unflatten(self, vector: np.ndarray) -> ArrayRecord:
        """The ArrayRecord (float32) whose flattening is ``vector``."""
        if vector.shape != (self.size,):
            raise ValueError(f"vector of shape {vector.shape} does not fit {self.size} parameters")
        arrays, start = {}, 0
        for key, shape in zip(self.keys, self.shapes, strict=True):
            count = int(np.prod(shape))
            arrays[key] = Array(vector[start : start + count].reshape(shape).astype(np.float32))
            start += count
        return ArrayRecord(arrays)

    def matches(self, record: ArrayRecord) -> bool:
        """Whether ``record`` has exactly this layout."""
        return ParamLayout.of(record) == self
