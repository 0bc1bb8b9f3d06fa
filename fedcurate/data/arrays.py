"""In-memory labelled arrays, the one data type every other piece works on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ArrayDataset:
    """Features ``x`` (float32, ``(n, *input_shape)``) and labels ``y`` (int64, ``(n,)``).

    Parameters
    ----------
    x : np.ndarray
        Features of shape ``(n, *input_shape)``.
    y : np.ndarray
        Integer class labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes of the task (not only those present here).
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        if self.x.ndim < 2 or len(self.x) != len(self.y):
            raise ValueError(
                f"features {self.x.shape} and labels {self.y.shape} do not describe "
                "the same number of examples"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(int(d) for d in self.x.shape[1:])

    def subset(self, indices: np.ndarray) -> ArrayDataset:
        """The examples at ``indices`` (copied)."""
        return ArrayDataset(self.x[indices], self.y[indices], self.num_classes)

    def with_labels(self, y: np.ndarray) -> ArrayDataset:
        """The same features with other labels."""
        return ArrayDataset(self.x, y.astype(np.int64), self.num_classes)

    def with_features(self, x: np.ndarray) -> ArrayDataset:
        """The same labels with other features."""
        return ArrayDataset(x.astype(np.float32), self.y, self.num_classes)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Torch views of ``x`` and ``y`` (no copy)."""
        return torch.from_numpy(self.x), torch.from_numpy(self.y)

    @staticmethod
    def concatenate(parts: list[ArrayDataset]) -> ArrayDataset:
        """One dataset holding every part's examples in order."""
        if not parts:
            raise ValueError("nothing to concatenate")
        return ArrayDataset(
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.y for p in parts]),
            parts[0].num_classes,
        )


def make_dataset(x: np.ndarray, y: np.ndarray, num_classes: int) -> ArrayDataset:
    """An :class:`ArrayDataset` with canonical dtypes."""
    return ArrayDataset(
        np.ascontiguousarray(x, dtype=np.float32),
        np.ascontiguousarray(y, dtype=np.int64),
        int(num_classes),
    )
