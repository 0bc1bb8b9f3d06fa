"""Standing: the per-round evidence about each owner that the ``exclude`` policy weighs.

An :class:`Observation` is what the ledger knows about one owner in one round:
its credit (relative value), its label-quality evidence (plaintext mode, see
:mod:`fedcurate.curation.quality`) and whether its update was screened as public
information (see :mod:`fedcurate.curation.free_riding`). From the observations of
a round, every participant gets a :class:`Standing`, in robust standard
deviations from the round's median participant:

    standing = z(credit) + z(label quality)

each term a robust z-score (median, 1.4826 MAD) among the round's participants
whose update was not screened, clipped to ``±EVIDENCE_CLIP`` so that one freak
round cannot decide alone; the quality term is 0 when quality is unknown
(encrypted updates). A screened update gets the lowest standing,
``-EVIDENCE_CLIP``: it carries no data of its owner.

Why per round and relative: rounds differ in scale (early rounds move the model
far, late ones barely; DP noise varies), so raw values from different rounds do
not add up, but a participant's place among the round's participants does. Why
the sum: corruption shows in one term or both (label flips and heavy label
noise: low credit and poor fits; mild label noise: poor fits; sign flips: very
low credit), while benign heterogeneity mostly shows as low credit *with* clean
fits, which the quality term offsets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Largest size of one evidence term in one round (robust standard deviations).
EVIDENCE_CLIP = 5.0
#: Factors turning a median / mean absolute deviation into a normal standard deviation.
MAD_TO_SD = 1.4826
MEAN_AD_TO_SD = 1.2533


@dataclass(frozen=True)
class Observation:
    """One owner in one round, as the ledger recorded it.

    Attributes
    ----------
    round : int
        Server round.
    relative : float
        The owner's credit: its value as a share of an equal split.
    quality : float or None
        Label-quality evidence (``-log`` fit floor), ``None`` when not measured.
    screened : bool
        Whether the update was screened as public information.
    alignment : float or None
        Descent alignment ``cos(Δ_i, -∇L_val)`` of the update, ``None`` when not
        measured (see :func:`fedcurate.curation.first_order.descent_alignment`).
    """

    round: int
    relative: float
    quality: float | None = None
    screened: bool = False
    alignment: float | None = None


History = Mapping[str, Sequence[Observation]]


@dataclass(frozen=True)
class Standing:
    """One owner's standing in one round, by term (robust SDs from the median participant)."""

    credit: float
    quality: float

    @property
    def total(self) -> float:
        """``credit + quality``."""
        return self.credit + self.quality


def robust_z(values: Mapping[str, float]) -> dict[str, float]:
    """``(x_i - median) / (1.4826 MAD)`` per key (unclipped).

    When the MAD is 0 (at least half the values are equal) the scale falls back
    to the mean absolute deviation, so one deviating value still gets a finite
    score; when every value is equal, every score is 0.
    """
    if not values:
        return {}
    array = np.array(list(values.values()), dtype=np.float64)
    median = float(np.median(array))
    deviations = np.abs(array - median)
    scale = MAD_TO_SD * float(np.median(deviations)) or MEAN_AD_TO_SD * float(deviations.mean())
    if scale == 0.0:
        return dict.fromkeys(values, 0.0)
    return {name: (float(value) - median) / scale for name, value in values.items()}


def _clipped(scores: Mapping[str, float]) -> dict[str, float]:
    return {name: float(np.clip(z, -EVIDENCE_CLIP, EVIDENCE_CLIP)) for name, z in scores.items()}


def round_standing(observations: Mapping[str, Observation]) -> dict[str, Standing]:
    """Standing of every participant of one round (``observations``: owner -> its observation)."""
    valued = {name: o for name, o in observations.items() if not o.screened}
    credit = _clipped(robust_z({name: o.relative for name, o in valued.items()}))
    judged = {name: o.quality for name, o in valued.items() if o.quality is not None}
    quality = _clipped(robust_z(judged))
    return {
        name: Standing(-EVIDENCE_CLIP, 0.0)
        if o.screened
        else Standing(credit[name], quality.get(name, 0.0))
        for name, o in observations.items()
    }


def standings(history: History) -> dict[str, list[Standing]]:
    """Owner -> its standing in each of its rounds, oldest first (aligned with ``history``)."""
    by_round: dict[int, dict[str, Observation]] = {}
    for name, observations in history.items():
        for observation in observations:
            by_round.setdefault(observation.round, {})[name] = observation
    result: dict[str, list[Standing]] = {name: [] for name in history}
    for server_round in sorted(by_round):
        for name, standing in round_standing(by_round[server_round]).items():
            result[name].append(standing)
    return result


def mean_standing(history: History) -> dict[str, float]:
    """Owner -> mean total standing over its rounds, sorted by name (the policy's evidence)."""
    return {
        name: float(np.mean([s.total for s in per_round])) if per_round else 0.0
        for name, per_round in sorted(standings(history).items())
    }
