"""Standing: the per-round evidence about each owner that the ``exclude`` policy weighs.

An :class:`Observation` is what the ledger knows about one owner in one round:
its credit (relative value), its data-quality signals (see
:mod:`fedcurate.curation.quality`; under encryption only the sharpening
projection computed on the ciphertext) and whether its update was screened as public
information (see :mod:`fedcurate.curation.free_riding`). From the observations of
a round, every participant gets a :class:`Standing`, in robust standard
deviations from the round's median participant.

Each *term* (the credit and every signal) is a robust z-score (median, 1.4826
MAD) among the round's participants whose update was not screened, clipped to
``±EVIDENCE_CLIP`` so that one freak round cannot decide alone; a term not
measured for an owner counts 0. The terms are combined asymmetrically,

    alarm = Σ_k a_k · min(z_k, 0) + POSITIVE_WEIGHT · Σ_k max(z_k, 0),

and the standing is the owner's alarm minus the median participant's (not
rescaled: one term's z-score keeps its meaning when it is the only one, as
under encryption, and the sum of several spreads like a single one).
Corruption shows in one term or several (label flips and heavy label noise: low
credit, poor fits and shrinking weights; mild label noise and feature noise:
shrinking weights; sign flips: very low credit), while the others may even look
good: a sign-flipped update fits other owners' data well. So a low mark in one
term is offset only by a fraction of a high mark in another, and benign
heterogeneity, which mostly lowers credit while the data signals stay clean,
does not add up to an alarm. A screened update gets the lowest standing,
``-EVIDENCE_CLIP``: it carries no data of its owner.

The alarm weights ``a_k`` (:data:`ALARM_WEIGHTS`, 1 unless listed) are lower for
the two terms that measure how *broadly* an update helps, which heterogeneity
lowers as well: honest owners with a skewed label mix pull the model towards
their own classes, so their credit is low, and their local models improve few
validation examples, so their breadth is low. On non-IID digits under DP,
breadth is even inverted: label-noise owners improve more examples than honest
ones. Re-scoring the cached observations of the curator benchmark's runs with
credit counted at half and breadth at a quarter raised the mean detection AUROC
from 0.922 to 0.927 without DP and from 0.875 to 0.886 with DP (and, on held-out
seeds 3-5 of the 40 %-bad cells, from 0.950 to 0.954 and from 0.865 to 0.884);
the low marks of label quality and sharpening carry the weight that credit and
breadth lose there. So the weights apply only where those plaintext signals are
measured: credit alone, or beside the encrypted sharpening projection, keeps its
full weight. The optional input-span signal (see :mod:`fedcurate.curation.quality`)
counts at half too: rescoring the curator benchmark's runs without DP (seeds
0-5), half and full weight gave the same mean detection AUROC (0.946 and 0.947 on
seeds 0-2, 0.934 and 0.933 on 3-5).

Why per round and relative: rounds differ in scale (early rounds move the model
far, late ones barely; DP noise varies), so raw values from different rounds do
not add up, but a participant's place among the round's participants does.

One piece of evidence is absolute instead: the *uphill record*, in how many of
its rounds an owner's update pointed uphill on the validation loss (descent
alignment, or under encryption the first-order score, below 0). An exact sign
test (:func:`uphill_records`) asks whether that happened more often than not,
at :data:`UPHILL_RECORD_CONFIDENCE`, Bonferroni-corrected over the owners; an
owner it finds gets the lowest mean standing (and the ``exclude`` policy leaves
it out). Round-relative terms miss a sign flip among strongly heterogeneous
owners, where honest updates also often score low and the flipped one's data
signals look clean; its update still points uphill round after round, which
an honest one does not. On the curator benchmark (``fedcurate bench curator``,
15 rounds, seeds 0-5 over the whole grid, every prefix of every run) the test
never fired on any of 5,040 benign owners; it found 251 of 360 sign flips (and
56 of 1,080 label-corrupted owners) by the end of a run. The mean detection
AUROC rose from 0.924 to 0.933 without DP and from 0.890 to 0.895 with DP
(held-out seeds 3-5: 0.906 to 0.914 and 0.850 to 0.857), all of it in the
sign-flip cells (Synthetic(1, 1) without DP: 0.75-0.81 to 0.94-0.98).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats  # type: ignore[import-untyped]

from fedcurate.curation.quality import INPUT_SPAN, SIGNALS

#: Largest size of one evidence term in one round (robust standard deviations).
EVIDENCE_CLIP = 5.0
#: Factors turning a median / mean absolute deviation into a normal standard deviation.
MAD_TO_SD = 1.4826
MEAN_AD_TO_SD = 1.2533
#: How much a good mark in one term offsets a bad mark in another (see above).
POSITIVE_WEIGHT = 0.1
#: Weight of a term's bad mark in the alarm, 1 unless listed (see above).
ALARM_WEIGHTS = {"credit": 0.5, "breadth": 0.25, INPUT_SPAN: 0.5}
#: Confidence at which the sign test finds an owner's updates point uphill more
#: often than not (Bonferroni over the owners; see above). An exact test whose null,
#: uphill in half the rounds, is already generous to honest owners, so it needs
#: less than the t-tests' ``exclusion_confidence``: at 10 owners it takes at
#: least 14 rounds, all uphill.
UPHILL_RECORD_CONFIDENCE = 0.999


@dataclass(frozen=True)
class Observation:
    """One owner in one round, as the ledger recorded it.

    Attributes
    ----------
    round : int
        Server round.
    relative : float
        The owner's credit: its value as a share of an equal split.
    signals : Mapping[str, float]
        Data-quality signals (name -> value, higher = cleaner), empty when not
        measured (encrypted or screened updates).
    screened : bool
        Whether the update was screened as public information.
    alignment : float or None
        Descent alignment ``cos(Δ_i, -∇L_val)`` of the update, ``None`` when not
        measured (see :func:`fedcurate.curation.first_order.descent_alignment`).
    score : float or None
        First-order score ``-<∇L_val, Δ_i>`` of the update, ``None`` when the
        method gives none (its sign is the alignment's, and it is known under
        encryption too).
    """

    round: int
    relative: float
    signals: Mapping[str, float] = field(default_factory=dict)
    screened: bool = False
    alignment: float | None = None
    score: float | None = None

    @property
    def uphill(self) -> bool | None:
        """Whether the update points uphill on the validation loss (``None``: not known)."""
        if self.screened:
            return None
        direction = self.alignment if self.alignment is not None else self.score
        return None if direction is None else direction < 0.0


History = Mapping[str, Sequence[Observation]]


@dataclass(frozen=True)
class Standing:
    """One owner's standing in one round (robust SDs from the median participant).

    Attributes
    ----------
    terms : Mapping[str, float]
        ``"credit"`` and each measured signal: the owner's clipped robust z-score.
    total : float
        The standing: the owner's :func:`alarm` minus the round's median one.
    """

    terms: Mapping[str, float]
    total: float

    @property
    def credit(self) -> float:
        """The credit term."""
        return self.terms["credit"]


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
    # Python's min/max, not np.clip: this runs for every owner, term and round.
    return {name: min(max(float(z), -EVIDENCE_CLIP), EVIDENCE_CLIP) for name, z in scores.items()}


def alarm(terms: Mapping[str, float]) -> float:
    """``Σ a_k min(z_k, 0) + POSITIVE_WEIGHT · Σ max(z_k, 0)`` over one owner's terms.

    ``a_k`` is :data:`ALARM_WEIGHTS` when the plaintext signals are among the
    terms, 1 otherwise (see the module doc).
    """
    weights = ALARM_WEIGHTS if set(SIGNALS) <= set(terms) else {}
    return sum(
        weights.get(name, 1.0) * min(z, 0.0) + POSITIVE_WEIGHT * max(z, 0.0)
        for name, z in terms.items()
    )


def round_standing(observations: Mapping[str, Observation]) -> dict[str, Standing]:
    """Standing of every participant of one round (``observations``: owner -> its observation)."""
    valued = {name: o for name, o in observations.items() if not o.screened}
    scores = {"credit": _clipped(robust_z({name: o.relative for name, o in valued.items()}))}
    for signal in sorted({signal for o in valued.values() for signal in o.signals}):
        measured = {name: o.signals[signal] for name, o in valued.items() if signal in o.signals}
        scores[signal] = _clipped(robust_z(measured))
    terms = {name: {k: z.get(name, 0.0) for k, z in scores.items()} for name in valued}
    alarms = {name: alarm(t) for name, t in terms.items()}
    centre = float(np.median(list(alarms.values()))) if alarms else 0.0
    totals = _clipped({name: value - centre for name, value in alarms.items()})
    return {
        name: Standing(terms[name], totals[name])
        if name in valued
        else Standing(dict.fromkeys(scores, 0.0) | {"credit": -EVIDENCE_CLIP}, -EVIDENCE_CLIP)
        for name in observations
    }


def standings(history: History) -> dict[str, Sequence[Standing]]:
    """Owner -> its standing in each of its rounds, oldest first (aligned with ``history``)."""
    return dict(EvidenceLog.of(history).standings)


@dataclass(frozen=True)
class EvidenceLog:
    """Every owner's observations and their standings, oldest first: what policies decide on.

    A round's standings depend on that round's observations only, so they are
    computed once, when the round joins the log (:meth:`extended`): deciding a
    round then costs the same in round 300 as in round 3, where recomputing
    every past round grew with the length of the run.

    Attributes
    ----------
    observations : Mapping[str, Sequence[Observation]]
        Owner -> its observations over the rounds it took part in.
    standings : Mapping[str, Sequence[Standing]]
        Owner -> its standing in each of those rounds (aligned with ``observations``).
    """

    observations: Mapping[str, Sequence[Observation]] = field(default_factory=dict)
    standings: Mapping[str, Sequence[Standing]] = field(default_factory=dict)

    @staticmethod
    def of(history: History) -> EvidenceLog:
        """The log of ``history`` (owner -> observations, oldest first), rounds in order."""
        by_round: dict[int, dict[str, Observation]] = {}
        for name, observations in history.items():
            for observation in observations:
                by_round.setdefault(observation.round, {})[name] = observation
        log = EvidenceLog(dict.fromkeys(history, ()), dict.fromkeys(history, ()))
        for server_round in sorted(by_round):
            log = log.extended(by_round[server_round])
        return log

    def extended(self, round_observations: Mapping[str, Observation]) -> EvidenceLog:
        """A new log with one more round (participant -> its observation); this one is unchanged."""
        round_standings = round_standing(round_observations)
        observations = dict(self.observations)
        standings = dict(self.standings)
        for name, observation in round_observations.items():
            observations[name] = (*observations.get(name, ()), observation)
            standings[name] = (*standings.get(name, ()), round_standings[name])
        return EvidenceLog(observations, standings)

    def mean_standing(self) -> dict[str, float]:
        """Owner -> mean total standing over its rounds, sorted by name (the policy's evidence).

        An owner with an uphill record (:func:`uphill_records`) gets the lowest
        standing, ``-EVIDENCE_CLIP``.
        """
        means = {
            name: float(np.mean([s.total for s in per_round])) if per_round else 0.0
            for name, per_round in sorted(self.standings.items())
        }
        uphill = uphill_records(self.observations)
        return {name: -EVIDENCE_CLIP if name in uphill else mean for name, mean in means.items()}


@dataclass(frozen=True)
class UphillRecord:
    """How often one owner's updates pointed uphill, and the sign test of it."""

    uphill: int
    rounds: int
    p_value: float

    def describe(self) -> str:
        """The record in words, for a decision's reason."""
        return (
            f"its update pointed uphill in {self.uphill} of {self.rounds} rounds "
            f"(sign test p = {self.p_value:.2g})"
        )


def uphill_records(history: History) -> dict[str, UphillRecord]:
    """Owners whose updates confidently point uphill more often than not (see the module doc).

    One-sided exact binomial test of "uphill in at most half the rounds" over
    the rounds whose direction is known, at :data:`UPHILL_RECORD_CONFIDENCE`,
    Bonferroni-corrected over every owner in ``history``.
    """
    alpha = (1.0 - UPHILL_RECORD_CONFIDENCE) / max(len(history), 1)
    found = {}
    for name, observations in sorted(history.items()):
        directions = [o.uphill for o in observations if o.uphill is not None]
        if not directions:
            continue
        uphill = sum(directions)
        p_value = float(stats.binomtest(uphill, len(directions), 0.5, "greater").pvalue)
        if p_value < alpha:
            found[name] = UphillRecord(uphill, len(directions), p_value)
    return found


def mean_standing(history: History) -> dict[str, float]:
    """Owner -> mean total standing over its rounds, sorted by name (see :class:`EvidenceLog`)."""
    return EvidenceLog.of(history).mean_standing()
