"""What every policy shares: the decision type, an owner's record in numbers, the round screen."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedcurate.config import CuratorConfig
from fedcurate.curation.evidence import EvidenceLog, Observation

#: Harm that excludes whatever its size: updates whose mean descent alignment
#: ``cos(Δ_i, -∇L_val)`` is this far below 0 point uphill, not merely sideways
#: as honest updates of skewed owners do.
UPHILL_ALIGNMENT = 0.3
#: An update this far uphill is left out of its own round (``exclude`` holds it at
#: the floor weight instead when its owner's record keeps the owner): on the
#: curator benchmark without DP honest updates reach it in 6.5 of 1,000
#: owner-rounds (13.5 on held-out seeds 3-5, nearly all of them skewed
#: breast-cancer owners late in a run), sign flips in 53 % of theirs (39 %); with
#: DP honest updates never do. Before an owner has a record (its warm-up rounds)
#: ``UPHILL_ALIGNMENT`` suffices: early on every honest owner's data lowers the
#: validation loss (see :func:`round_screen`).
STEEP_UPHILL_ALIGNMENT = 0.5


@dataclass(frozen=True)
class OwnerDecision:
    """Aggregation weight (0 = excluded) and the reason for it."""

    weight: float
    reason: str

    @property
    def included(self) -> bool:
        """Whether the owner's update enters the aggregate."""
        return self.weight > 0.0


Policy = Callable[[EvidenceLog, Mapping[str, float], CuratorConfig], dict[str, OwnerDecision]]


def relatives_of(observations: Sequence[Observation]) -> np.ndarray:
    return np.array([o.relative for o in observations], dtype=np.float64)


def alignments_of(observations: Sequence[Observation]) -> np.ndarray:
    """Descent alignments of the rounds they were measured in."""
    return np.array([o.alignment for o in observations if o.alignment is not None])


def mean_alignment(observations: Sequence[Observation]) -> float | None:
    """Mean descent alignment over the rounds it was measured in (``None``: never)."""
    alignments = alignments_of(observations)
    return float(alignments.mean()) if alignments.size else None


def is_newcomer(observations: Sequence[Observation], config: CuratorConfig) -> bool:
    """Whether the owner is still in its warm-up: fewer than ``warmup_rounds`` valued rounds."""
    return len(observations) < config.warmup_rounds


def round_screen(latest: Observation, newcomer: bool) -> str | None:
    """Why an owner's update of this round is left out of it, or ``None``.

    A screened update is public information (a replay of the last global
    change): it carries no data of its owner. An update that points steeply
    uphill (descent alignment at most ``-STEEP_UPHILL_ALIGNMENT``) would undo
    other owners' progress before the record can judge its owner; a floored
    weight would still let it subtract (``exclude``, once the owner has a
    record, lets the record judge instead, see :func:`exclude_policy`). A
    newcomer (``newcomer``: still in its warm-up rounds) has no record at all,
    and in the first rounds, far from any optimum, every honest owner's data
    lowers the validation loss: its update sits out already at
    ``-UPHILL_ALIGNMENT``. On the curator benchmark without DP, honest updates
    of rounds 1-3 reach that in 1 of 1,512 owner-rounds on digits, none on
    breast cancer and 2.5 % on Synthetic(1,1); sign flips in 85 %, where the
    steep threshold let a non-IID digits sign flip at -0.35 into the first
    rounds.
    """
    if latest.screened:
        return "excluded this round: its update is public information, no data of its own"
    uphill = uphill_description(latest, newcomer)
    return None if uphill is None else f"excluded this round: {uphill}"


def uphill_description(latest: Observation, newcomer: bool) -> str | None:
    """How far uphill the update points, when that is past the screen's threshold."""
    threshold = UPHILL_ALIGNMENT if newcomer else STEEP_UPHILL_ALIGNMENT
    if latest.alignment is None or latest.alignment > -threshold:
        return None
    steeply = "" if newcomer else "steeply "
    before = ", before its owner has a record" if newcomer else ""
    return (
        f"its update points {steeply}uphill{before} "
        f"(descent alignment {latest.alignment:+.2f} <= {-threshold:g})"
    )
