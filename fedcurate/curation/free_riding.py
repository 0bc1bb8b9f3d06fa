"""Recognise updates that carry no information beyond what the server already holds.

A free rider that replays the last global change ``w_t - w_{t-1}`` sends, in
effect, server momentum: an average of the previous round's updates. Per-round
Shapley values measure usefulness, not novelty, and on non-IID owners such an
average is often *more* useful than any single honest update, so coalition
values alone pay replay free riders well (measured on digits: a quarter or more
of the rewards each). Credit should pay for what an owner's data adds. Following
the free-rider model of Fraboni et al. (AISTATS 2021), an update built from
public information alone (zero, or any combination of recent global changes)
adds nothing, so it earns no positive credit; its value itself is left as
measured.

* Plaintext: the share of ``Δ_i`` outside the span of the recent global changes
  ``w_t - w_{t-k}``, ``k = 1..memory``; at most ``tolerance`` means public.
* Encrypted (first-order scalars only): the curator computes ``⟨r_k, g⟩`` for the
  public changes ``r_k`` itself; an owner whose ``⟨Δ_i, g⟩`` matches one of them
  (or is zero) within ``tolerance`` relative is a replay. A scalar cannot reveal
  a *scaled* replay; that needs the update.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np


class PublicHistory:
    """The last few global models the curator has seen, in order.

    Parameters
    ----------
    memory : int
        How many past global changes ``w_t - w_{t-k}`` count as public.
    """

    def __init__(self, memory: int) -> None:
        self._models: deque[np.ndarray] = deque(maxlen=memory + 1)

    def observe(self, global_weights: np.ndarray) -> None:
        """Record ``w_t`` (a repeated call with the same model is ignored)."""
        if not self._models or not np.array_equal(self._models[-1], global_weights):
            self._models.append(np.array(global_weights, dtype=np.float64))

    def state_dict(self) -> dict[str, list[np.ndarray]]:
        """The remembered models (numpy arrays: picklable, not JSON)."""
        return {"models": [model.copy() for model in self._models]}

    def load_state_dict(self, state: Mapping[str, list[np.ndarray]]) -> None:
        """Restore from :meth:`state_dict`."""
        self._models.clear()
        self._models.extend(np.array(model, dtype=np.float64) for model in state["models"])

    def changes(self) -> list[np.ndarray]:
        """``w_t - w_{t-k}`` for every remembered earlier model (newest first)."""
        if not self._models:
            return []
        latest = self._models[-1]
        return [latest - model for model in reversed(list(self._models)[:-1])]


def orthonormal_basis(directions: list[np.ndarray]) -> np.ndarray:
    """``(k, d)`` orthonormal rows spanning ``directions`` (numerically zero ones dropped)."""
    nonzero = [d for d in directions if np.linalg.norm(d) > 0.0]
    if not nonzero:
        return np.zeros((0, 0))
    q, r = np.linalg.qr(np.stack(nonzero, axis=1))
    keep = np.abs(np.diag(r)) > 1e-12 * np.abs(np.diag(r)).max()
    return q[:, keep].T


def unexplained_fraction(update: np.ndarray, basis: np.ndarray) -> float:
    """``||Δ - PΔ|| / ||Δ||`` for the projection ``P`` on ``basis`` (0 for a zero update)."""
    norm = float(np.linalg.norm(update))
    if norm == 0.0:
        return 0.0
    residual = update - basis.T @ (basis @ update) if basis.size else update
    return float(np.linalg.norm(residual)) / norm


def screen_updates(
    updates: Mapping[str, np.ndarray], public_changes: list[np.ndarray], tolerance: float
) -> dict[str, str]:
    """Owner name -> why its update counts as public information, for flagged owners."""
    basis = orthonormal_basis(public_changes)
    flagged = {}
    for name, update in updates.items():
        fraction = unexplained_fraction(update, basis)
        if fraction <= tolerance:
            what = "a zero update" if not np.any(update) else "a replay of recent global changes"
            flagged[name] = (
                f"{what}: {fraction:.2g} of it lies outside public information "
                f"(tolerance {tolerance:g}), no positive credit"
            )
    return flagged


def screen_scores(
    inner_products: Mapping[str, float],
    public_products: Mapping[str, float],
    tolerance: float,
) -> dict[str, str]:
    """Owner name -> why its ``⟨Δ_i, g⟩`` reveals a replay or a zero update."""
    scale = max((abs(v) for v in inner_products.values()), default=0.0)
    flagged = {}
    for name, product in inner_products.items():
        if abs(product) <= tolerance * scale:
            flagged[name] = (
                f"<delta, g> = {product:.3g} is zero within {tolerance:g} of the largest: "
                "a zero update, no positive credit"
            )
            continue
        for label, public in public_products.items():
            if abs(product - public) <= tolerance * abs(public):
                flagged[name] = (
                    f"<delta, g> = {product:.6g} matches {label} ({public:.6g}) within "
                    f"{tolerance:g}: a replay, no positive credit"
                )
                break
    return flagged
