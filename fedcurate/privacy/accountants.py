"""Privacy accountants: a small registry over Opacus' own accountant classes.

An accountant's state is its ``history`` of ``(noise_multiplier, sample_rate,
steps)`` entries (Opacus ``IAccountant.state_dict``). Restoring that state into
a fresh accountant each round reproduces the epsilon of one long run exactly, so
the history is all an owner needs to persist between rounds.

Opacus' classes record the history; RDP epsilons are computed by
:mod:`fedcurate.privacy.rdp`, which returns ``RDPAccountant.get_epsilon``'s
float in microseconds once an owner's per-step RDP is cached.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from opacus.accountants import IAccountant, PRVAccountant, RDPAccountant

from fedcurate.privacy.rdp import HistoryEntry, rdp_epsilon

#: Accounting mechanisms an owner may choose (``privacy.accountant``).
ACCOUNTANTS: dict[str, type[IAccountant]] = {"rdp": RDPAccountant, "prv": PRVAccountant}
DEFAULT_ACCOUNTANT = "rdp"


def create_accountant(name: str, state: Mapping[str, Any] | None = None) -> IAccountant:
    """A fresh Opacus accountant, optionally restored from ``state``.

    Parameters
    ----------
    name : str
        A key of :data:`ACCOUNTANTS`.
    state : Mapping, optional
        An ``accountant.state_dict()`` of the same mechanism.

    Raises
    ------
    ValueError
        Unknown ``name``, or ``state`` of another mechanism or malformed.
    """
    if name not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant '{name}'; choose one of {sorted(ACCOUNTANTS)}")
    accountant = ACCOUNTANTS[name]()
    if state is not None:
        accountant.load_state_dict(dict(state))
        accountant.history = [_entry(item) for item in accountant.history]
    return accountant


def _entry(item: Any) -> HistoryEntry:
    """A validated history entry (JSON turns its tuples into lists)."""
    if not isinstance(item, (list, tuple)) or len(item) != 3:
        raise ValueError(f"history entry {item!r} is not (noise_multiplier, sample_rate, steps)")
    sigma, rate, steps = item
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (sigma, rate))
    whole = isinstance(steps, int) and not isinstance(steps, bool)
    if not (
        numbers and whole and math.isfinite(sigma) and sigma >= 0 and 0 < rate <= 1 and steps >= 1
    ):
        raise ValueError(f"history entry {item!r} is out of range")
    return float(sigma), float(rate), steps


def total_steps(history: Sequence[HistoryEntry]) -> int:
    """Number of DP-SGD steps composed in ``history``."""
    return sum(steps for _, _, steps in history)


def epsilon_for_history(name: str, history: Sequence[HistoryEntry], delta: float) -> float:
    """Epsilon at ``delta`` after composing ``history`` (0 when empty, inf without noise).

    Equal to Opacus' accountant's ``get_epsilon(delta)`` on ``history``. Results
    are cached: a PRV evaluation takes seconds on these CPUs, and the budget
    guard asks the same question several times per round.
    """
    return _epsilon_cached(name, tuple(_entry(item) for item in history), float(delta))


@functools.lru_cache(maxsize=1024)
def _epsilon_cached(name: str, history: tuple[HistoryEntry, ...], delta: float) -> float:
    if not history:
        return 0.0
    if any(sigma == 0 for sigma, _, _ in history):
        # Noise-free steps have no finite guarantee (RDP says inf, PRV fails).
        return math.inf
    if name == "rdp":
        return rdp_epsilon(history, delta)
    accountant = create_accountant(name)
    accountant.history = list(history)
    return float(accountant.get_epsilon(delta=delta))
