"""One round's input to the curator: the global model, named updates, weights.

Owners are identified by arbitrary string names; nothing here or downstream
assumes they are numbered. Every coalition-based method and the policies see
the owners in sorted-name order, so results do not depend on the order in
which replies arrived.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """``cos(a, b)``; 0 when either vector is zero."""
    scale = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    return float(np.dot(a, b)) / scale if scale > 0 else 0.0


@dataclass(frozen=True)
class RoundUpdates:
    """The global flat weights ``w_t`` and each participant's flat update ``Δ_i``.

    Parameters
    ----------
    global_weights : np.ndarray
        ``w_t``, one flat vector in :class:`~fedcurate.models.ParamLayout` order.
    updates : Mapping[str, np.ndarray]
        Owner name -> ``Δ_i = w_i - w_t``, same shape as ``global_weights``.
    weights : Mapping[str, float]
        Owner name -> aggregation weight ``p_i > 0`` (e.g. its number of
        examples); the coalition model renormalises them within the coalition.

    Raises
    ------
    ValueError
        No owner, names that differ between ``updates`` and ``weights``, a shape
        mismatch, a non-finite value or a weight that is not positive.
    """

    global_weights: np.ndarray
    updates: Mapping[str, np.ndarray]
    weights: Mapping[str, float]

    def __post_init__(self) -> None:
        check_participants(self.updates, self.weights)
        if self.global_weights.ndim != 1 or not np.isfinite(self.global_weights).all():
            raise ValueError("global_weights must be one finite flat vector")
        for name, update in self.updates.items():
            if update.shape != self.global_weights.shape:
                raise ValueError(
                    f"update of '{name}' has shape {update.shape}, the global model "
                    f"{self.global_weights.shape}"
                )
            if not np.isfinite(update).all():
                raise ValueError(f"update of '{name}' contains NaN or infinite values")

    @property
    def owners(self) -> tuple[str, ...]:
        """Participants in sorted-name order."""
        return tuple(sorted(self.updates))

    def stacked_updates(self) -> np.ndarray:
        """``(n, d)`` matrix of the updates in :attr:`owners` order."""
        return np.stack([np.asarray(self.updates[name], dtype=np.float64) for name in self.owners])

    def weight_vector(self) -> np.ndarray:
        """Aggregation weights in :attr:`owners` order."""
        return np.array([float(self.weights[name]) for name in self.owners])


def check_participants(per_owner: Iterable[str], weights: Mapping[str, float]) -> None:
    """Reject owner names that differ from the weights' and invalid weights.

    Raises
    ------
    ValueError
        ``per_owner`` (updates, scores) and ``weights`` name different owners,
        there is no owner, a name is empty or a weight is not positive and finite.
    """
    names = set(per_owner)
    if names != set(weights):
        raise ValueError(f"values name {sorted(names)} but weights name {sorted(weights)}")
    if not weights:
        raise ValueError("a round needs at least one participating owner")
    for name, weight in weights.items():
        if not name:
            raise ValueError("owner names must be non-empty strings")
        if not (np.isfinite(weight) and weight > 0):
            raise ValueError(f"aggregation weight of '{name}' must be positive, got {weight}")
