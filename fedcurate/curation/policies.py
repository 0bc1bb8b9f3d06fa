"""Policies: what the values decide about this round's aggregation.

A policy reads the evidence log (:class:`~fedcurate.curation.evidence.EvidenceLog`):
every owner's observations (relative values and, where measured, data-quality
signals, descent alignment and the free-rider screen) and their standings, the
current round included; and the
participants' reported aggregation weights ``p_i``, and decides for each
participant a weight (0 = left out of the aggregate) with a reason in words.
Policies keep no state of their own: each decision is a function of the ledger,
so a resumed run decides exactly as an uninterrupted one.

* ``none``: weights as reported.
* ``weight``: ``p_i`` times the owner's mean relative value, floored and
  capped (credit takes weight away, never adds beyond ``p_i``), 0 for a record
  that hurts and points uphill; a newcomer's floor is higher.
* ``exclude``: leave out owners whose standing (credit and data-quality signals
  relative to each round's other participants, see
  :mod:`fedcurate.curation.evidence`) is *confidently* and far below the others',
  or whose updates confidently harm; until then, an owner whose record hurts and
  points uphill sits out the round, or, when its local models confidently fit
  well (unusual, not corrupted), stays in at the floor weight.
* ``reputation``: a decaying beta reputation with quarantine and readmission.

``weight`` and ``exclude`` also leave out of its round an update that
:func:`round_screen` flags (public information, pointing steeply uphill, or
pointing uphill before its owner has a record): a fact about that update, not a
judgement of its owner's record. Once an owner has a record, ``exclude`` lets
the record judge a steeply uphill update and holds it at the floor weight for
its round when the record keeps the owner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats  # type: ignore[import-untyped]

from fedcurate.config import CuratorConfig
from fedcurate.curation.evidence import (
    EvidenceLog,
    Observation,
    Standing,
    UphillRecord,
    uphill_records,
)
from fedcurate.curation.quality import LABEL_QUALITY

#: Harm that excludes on credit alone: a mean relative value this far below 0 undoes
#: as much as an average owner adds (relative values have mean magnitude 1).
HARM_EFFECT = 1.0
#: Harm that excludes whatever its size: updates whose mean descent alignment
#: ``cos(Δ_i, -∇L_val)`` is this far below 0 point uphill, not merely sideways
#: as honest updates of skewed owners do.
UPHILL_ALIGNMENT = 0.3
#: Help that protects from exclusion on data signals: a mean relative value at least
#: this far above 0 (a quarter of an average owner's contribution) ...
HELP_EFFECT = 0.25
#: ... by a one-sided t-test at this confidence (ordinary evidence suffices: it
#: vetoes an exclusion rather than imposing one).
HELP_CONFIDENCE = 0.95
#: An owner not (yet) excluded sits out a round while its record hurts and its
#: updates point uphill at this one-sided confidence (see :func:`exclude_policy`) ...
SUSPENSION_CONFIDENCE = 0.95
#: ... unless its local models fit their best validation examples better than the
#: median participant's (mean label-quality term above 0) at this confidence: then
#: it stays in at the floor weight.
CLEAN_CONFIDENCE = 0.95
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


def _relatives(observations: Sequence[Observation]) -> np.ndarray:
    return np.array([o.relative for o in observations], dtype=np.float64)


def _alignments(observations: Sequence[Observation]) -> np.ndarray:
    """Descent alignments of the rounds they were measured in."""
    return np.array([o.alignment for o in observations if o.alignment is not None])


def _mean_alignment(observations: Sequence[Observation]) -> float | None:
    """Mean descent alignment over the rounds it was measured in (``None``: never)."""
    alignments = _alignments(observations)
    return float(alignments.mean()) if alignments.size else None


def _newcomer(observations: Sequence[Observation], config: CuratorConfig) -> bool:
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
    uphill = _uphill(latest, newcomer)
    return None if uphill is None else f"excluded this round: {uphill}"


def _uphill(latest: Observation, newcomer: bool) -> str | None:
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


def no_policy(
    log: EvidenceLog, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """Every participant with its reported weight."""
    return {
        name: OwnerDecision(weight, f"policy none: reported weight {weight:g}")
        for name, weight in base_weights.items()
    }


def weight_policy(
    log: EvidenceLog, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """``p_i * clip(mean relative value, floor, weight_cap)``; a newcomer's floor is higher.

    An owner with fewer than ``warmup_rounds`` valued rounds is a newcomer: its
    first values are noisy (a skewed owner's first updates can look harmful), so
    its multiplier is floored at ``warmup_floor`` rather than ``weight_floor``
    (by default its credit takes at most half its weight), and the zero weight
    below waits for a record. On the curator benchmark's 40 %-bad cells, kept at
    full weight, label-flipping owners under DP pulled the model their way for
    the three warm-up rounds and it did not recover (IID digits: 2 points below
    clean-only); floored as low as past warm-up, skewed non-IID owners were held
    down on their first values (non-IID digits: up to 5 points lower; the
    README's ``--curator-override curator.warmup_floor`` comparison). The mean
    (not the sum) of relative values is used so that an owner sampled in fewer
    rounds is not penalised for it. The floor keeps owners that help little in
    the aggregate (a skewed label mix still teaches its classes);
    an owner whose mean credit is negative *and* whose updates point uphill on
    average (mean descent alignment below 0; plaintext only) gets weight 0
    instead, as a floored sign flip would still subtract. The cap (default 1, an
    equal share) keeps high credit from amplifying an update: first-order credit
    is largest for the biggest step along the validation gradient, and scaling
    that step up overshoots. With skewed data the model then swings between one
    owner's classes and the others' from round to round. An update flagged by
    :func:`round_screen` gets weight 0 in its round; the owner is not barred.
    """
    history = log.observations
    decisions = {}
    for name, weight in base_weights.items():
        newcomer = _newcomer(history[name], config)
        screen = round_screen(history[name][-1], newcomer)
        if screen is not None:
            decisions[name] = OwnerDecision(0.0, screen)
        elif newcomer:
            decisions[name] = _warmup_weight(weight, history[name], config)
        else:
            decisions[name] = _credit_weight(weight, history[name], config)
    return decisions


def _warmup_weight(
    weight: float, observations: Sequence[Observation], config: CuratorConfig
) -> OwnerDecision:
    """The ``weight`` policy's decision for a newcomer: its credit floored at ``warmup_floor``."""
    mean = float(_relatives(observations).mean())
    multiplier, bound = _clipped_multiplier(mean, config.warmup_floor, config.weight_cap)
    reason = (
        f"newcomer ({len(observations)} of {config.warmup_rounds} warm-up rounds): mean "
        f"relative value {mean:+.3f}, multiplier {multiplier:.3f}{bound}"
    )
    return OwnerDecision(weight * multiplier, reason)


def _credit_weight(
    weight: float, observations: Sequence[Observation], config: CuratorConfig
) -> OwnerDecision:
    """The ``weight`` policy's decision for an owner past its warm-up."""
    relatives = _relatives(observations)
    mean = float(relatives.mean())
    alignment = _mean_alignment(observations)
    if mean < 0.0 and alignment is not None and alignment < 0.0:
        reason = (
            f"mean relative value {mean:+.3f} and mean descent alignment "
            f"{alignment:+.2f} over {len(relatives)} rounds: its updates hurt, weight 0"
        )
        return OwnerDecision(0.0, reason)
    multiplier, bound = _clipped_multiplier(mean, config.weight_floor, config.weight_cap)
    reason = (
        f"mean relative value {mean:+.3f} over {len(relatives)} rounds: "
        f"multiplier {multiplier:.3f}{bound}"
    )
    return OwnerDecision(weight * multiplier, reason)


def _clipped_multiplier(mean: float, floor: float, cap: float) -> tuple[float, str]:
    """``clip(mean, floor, cap)`` and which bound, if any, applied (for the reason)."""
    if mean < floor:
        return floor, f" (floored at {floor:g})"
    if mean > cap:
        return cap, " (capped)"
    return mean, ""


@dataclass(frozen=True)
class HarmEvidence:
    """Why an owner's record is, or is not, confidently bad.

    Attributes
    ----------
    rounds : int
        Rounds the owner was valued in.
    standing : float
        Mean standing (robust SDs from each round's median participant).
    terms : dict[str, float]
        Mean of each term of the standing (credit and each signal).
    standing_p : float
        One-sided t-test p-value of "the mean standing is below 0".
    relative : float
        Mean relative value (credit in shares of an equal split).
    relative_p : float
        One-sided t-test p-value of "the mean relative value is below 0".
    helpful_p : float
        One-sided t-test p-value of "the mean relative value is above 0".
    alignment : float or None
        Mean descent alignment over the rounds it was measured in (``None``: never).
    uphill_p : float or None
        One-sided t-test p-value of "the mean descent alignment is below 0"
        (``None`` when measured in fewer than two rounds).
    clean_p : float
        One-sided t-test p-value of "the mean label-quality term is above 0"
        (1 when label quality was measured in fewer than two rounds).
    uphill_record : UphillRecord or None
        Its uphill record when the sign test finds its updates point uphill more
        often than not (see :func:`fedcurate.curation.evidence.uphill_records`).
    """

    rounds: int
    standing: float
    terms: dict[str, float]
    standing_p: float
    relative: float
    relative_p: float
    helpful_p: float
    alignment: float | None
    uphill_p: float | None
    clean_p: float
    uphill_record: UphillRecord | None

    @staticmethod
    def of(
        observations: Sequence[Observation],
        per_round: Sequence[Standing],
        uphill_record: UphillRecord | None,
    ) -> HarmEvidence:
        """The evidence of one owner: its observations, their standings, its uphill record."""
        totals = np.array([s.total for s in per_round], dtype=np.float64)
        relatives = _relatives(observations)
        alignments = _alignments(observations)
        names = sorted({k for s in per_round for k in s.terms}, key=lambda k: (k != "credit", k))
        label_quality = np.array(
            [s.terms[LABEL_QUALITY] for s in per_round if LABEL_QUALITY in s.terms]
        )
        return HarmEvidence(
            rounds=len(per_round),
            standing=float(totals.mean()),
            terms={k: float(np.mean([s.terms.get(k, 0.0) for s in per_round])) for k in names},
            standing_p=below_zero_p(totals),
            relative=float(relatives.mean()),
            relative_p=below_zero_p(relatives),
            helpful_p=below_zero_p(-relatives),
            alignment=_mean_alignment(observations),
            uphill_p=below_zero_p(alignments) if len(alignments) > 1 else None,
            clean_p=below_zero_p(-label_quality) if len(label_quality) > 1 else 1.0,
            uphill_record=uphill_record,
        )

    @property
    def helpful(self) -> bool:
        """Whether its updates confidently lower the validation loss by a useful amount."""
        return self.relative >= HELP_EFFECT and self.helpful_p < 1.0 - HELP_CONFIDENCE

    @property
    def uphill(self) -> bool:
        """Whether its updates, on average, point uphill on the validation loss."""
        return self.alignment is not None and self.alignment <= -UPHILL_ALIGNMENT

    @property
    def hurts_uphill(self) -> bool:
        """Whether its record so far hurts and its updates point uphill, however slightly."""
        return (
            self.relative < 0.0
            and self.uphill_p is not None
            and self.uphill_p < 1.0 - SUSPENSION_CONFIDENCE
        )

    @property
    def clean(self) -> bool:
        """Whether its local models confidently fit their best examples better than the median."""
        return self.clean_p < 1.0 - CLEAN_CONFIDENCE

    @property
    def suspended(self) -> bool:
        """Whether it sits out the round: it hurts uphill and its data do not look clean."""
        return self.hurts_uphill and not self.clean


def below_zero_p(values: np.ndarray) -> float:
    """One-sided t-test p-value of "the mean of ``values`` is below 0"."""
    mean = float(values.mean())
    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    if spread == 0.0:
        return 0.0 if mean < 0 else 1.0
    t_statistic = mean / (spread / np.sqrt(len(values)))
    return float(stats.t.cdf(t_statistic, df=len(values) - 1))


def exclude_policy(
    log: EvidenceLog, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """Leave out owners whose record is confidently bad.

    No oracle count of bad owners. An update flagged by :func:`round_screen` is
    left out of the round it was sent in, except a steeply uphill update of an
    owner past its warm-up: the record rules below judge that owner, and when
    they keep it the update enters its round at the floor weight
    (``weight_floor``). By then the record rules stop nearly every sign flip
    themselves, while skewed owners of a two-class problem (breast cancer) send
    steeply uphill updates late in a run: on the curator benchmark's held-out
    seeds 3-5 the zero weight left 35 of 252 benign breast-cancer Dirichlet
    owners out of the last round. An owner with at least ``warmup_rounds``
    valued rounds is excluded on either of two one-sided t-tests across its
    rounds, each at ``exclusion_confidence`` and Bonferroni-corrected for both
    tests of every owner with enough rounds (consistent, not merely unlucky):

    * *far below the others*: its mean standing (credit and data-quality signals,
      relative to each round's participants, see :mod:`fedcurate.curation.evidence`)
      is below 0 and at least ``exclusion_outlier_threshold`` robust standard
      deviations below the median participant. Benign heterogeneity keeps owners
      within a band of the median, and mostly lowers credit while the data
      signals stay clean; standing is relative to each round's median, so up to
      half the owners can be bad without moving the reference onto them.
    * *harmful*: its mean relative value is below 0, and either at most
      ``-HARM_EFFECT`` (its updates undo as much as an average owner's add) or
      its updates point uphill (mean descent alignment at most
      ``-UPHILL_ALIGNMENT``; plaintext only). This catches what the data signals
      cannot see: a sign-flipped update fits other owners' data well, and a small
      owner's sign flip does little harm per round but points straight uphill.

    An owner is also excluded when its updates point uphill more often than not,
    by the exact sign test of :func:`fedcurate.curation.evidence.uphill_records`
    (its own confidence, ``UPHILL_RECORD_CONFIDENCE``): what the mean alignment
    misses under DP or strong heterogeneity, where a sign flip's alignment is
    small, its sign is not.

    The first rule reads how the owner's data *look*; the value measures what its
    updates *do*. So an owner far below the others is still kept when its mean
    relative value is at least ``HELP_EFFECT`` and above 0 by a one-sided t-test
    at ``HELP_CONFIDENCE``: an unusual but useful owner (a skewed label mix, a
    small data set) or one whose mild noise still leaves it a net contributor.
    On the curator benchmark without DP (``fedcurate bench curator``, table
    *Exclusions*) benign owners excluded fell from 10.5 % to 6.6 % on breast
    cancer and from 3.0 % to 1.5 % on digits.

    Exclusion waits for near-certainty, which takes rounds; meanwhile an owner
    whose record so far hurts (mean relative value below 0) and whose updates
    point uphill (mean descent alignment below 0 by a one-sided t-test at
    ``SUSPENSION_CONFIDENCE``; plaintext only) sits out the round, and returns
    once its record no longer says so. Under DP the noise shrinks every descent
    alignment (a sign flip's to about -0.05 on digits), so a fixed uphill
    threshold cannot see it, but its sign is consistent from round to round. On
    the curator benchmark this keeps sign flips and label flips from holding the
    model back while exclusion waits.

    Benign heterogeneity can point uphill too: on Synthetic(1, 1) every device
    has its own labelling function, so an honest device's update can raise the
    loss on the validation mix from round to round. Its data are clean, though:
    its local models fit the examples that resemble its data better than the
    median participant's, while corrupted labels keep a loss floor (and the sign
    flips this rule exists for fit worse than the median owner on the benchmark
    when first suspended). So an owner whose mean label-quality term is above 0
    by a one-sided t-test at ``CLEAN_CONFIDENCE`` is not suspended but kept at
    the floor weight (``weight_floor`` times its reported weight, as the
    ``weight`` policy holds a low-credit owner): its data stay in the model, its
    uphill updates barely move it. Exclusion still applies. On the curator
    benchmark, kept at full weight instead, such owners cost accuracy on
    non-IID digits (their updates hurt the pooled test set as they hurt the
    validation mix); at the floor weight they did not.

    The decision is re-taken each round from all evidence so far, so more
    rounds only sharpen it.
    """
    history, per_round = log.observations, log.standings
    uphill = uphill_records(history)
    established = {
        name: HarmEvidence.of(observations, per_round[name], uphill.get(name))
        for name, observations in history.items()
        if not _newcomer(observations, config)
    }
    # Bonferroni over both tests of every owner under test (not just this round's
    # participants): with partial participation the whole federation is the family.
    alpha = (1.0 - config.exclusion_confidence) / (2 * max(len(established), 1))
    decisions = {}
    for name, weight in base_weights.items():
        latest = history[name][-1]
        if name in established and not latest.screened:
            decisions[name] = _record_decision(weight, latest, established[name], alpha, config)
        elif (screen := round_screen(latest, name not in established)) is not None:
            decisions[name] = OwnerDecision(0.0, screen)
        else:
            reason = (
                f"kept: {len(history[name])} of {config.warmup_rounds} warm-up rounds, "
                "too little evidence to exclude"
            )
            decisions[name] = OwnerDecision(weight, reason)
    return decisions


def _record_decision(
    weight: float,
    latest: Observation,
    evidence: HarmEvidence,
    alpha: float,
    config: CuratorConfig,
) -> OwnerDecision:
    """An established owner's decision; a steeply uphill ``latest`` update it keeps is floored."""
    decision = _exclusion_decision(weight, evidence, alpha, config)
    steep = _uphill(latest, newcomer=False)
    if steep is None or not decision.included:
        return decision
    reason = f"kept at the floor weight this round: {steep}; its record keeps it"
    return OwnerDecision(weight * config.weight_floor, reason)


def _exclusion_decision(
    weight: float, evidence: HarmEvidence, alpha: float, config: CuratorConfig
) -> OwnerDecision:
    alignment = "unknown" if evidence.alignment is None else f"{evidence.alignment:+.2f}"
    terms = ", ".join(f"{k.replace('_', ' ')} {z:+.2f}" for k, z in evidence.terms.items())
    summary = (
        f"mean standing {evidence.standing:+.2f} robust SDs from the median owner over "
        f"{evidence.rounds} rounds ({terms}), p = {evidence.standing_p:.2g}; mean relative value "
        f"{evidence.relative:+.2f}, p = {evidence.relative_p:.2g}, descent alignment "
        f"{alignment} (threshold {alpha:.2g})"
    )
    below = evidence.standing_p < alpha
    far_below = below and evidence.standing <= -config.exclusion_outlier_threshold
    harmful = evidence.relative_p < alpha and (evidence.relative <= -HARM_EFFECT or evidence.uphill)
    if far_below and not evidence.helpful:
        return OwnerDecision(0.0, f"excluded: confidently far below the other owners; {summary}")
    if harmful:
        return OwnerDecision(0.0, f"excluded: confidently harmful; {summary}")
    if evidence.uphill_record is not None:
        record = evidence.uphill_record.describe()
        return OwnerDecision(0.0, f"excluded: uphill round after round, {record}; {summary}")
    if evidence.suspended:
        why = (
            f"suspended this round: its record so far hurts and points uphill "
            f"(p = {evidence.uphill_p:.2g} for a mean descent alignment below 0); "
            "it returns once its record no longer says so"
        )
        return OwnerDecision(0.0, f"{why}; {summary}")
    if evidence.hurts_uphill:
        why = (
            f"kept at the floor weight: its record hurts and points uphill (p = "
            f"{evidence.uphill_p:.2g}), but its local models fit their best examples better than "
            f"the median owner's (p = {evidence.clean_p:.2g} for a mean label-quality term above "
            "0): unusual, not corrupted"
        )
        return OwnerDecision(weight * config.weight_floor, f"{why}; {summary}")
    if far_below:
        why = (
            f"far below the other owners, but its updates confidently help "
            f"(p = {evidence.helpful_p:.2g} for a mean relative value above 0)"
        )
    elif not below and evidence.relative_p >= alpha:
        why = "not significantly below the other owners nor harmful"
    else:
        why = "not far enough below the other owners, nor harmful enough"
    return OwnerDecision(weight, f"kept: {why}; {summary}")


@dataclass(frozen=True)
class ReputationState:
    """Beta reputation of one owner after its latest round."""

    reputation: float
    quarantined: bool
    since: int | None


def replay_reputation(
    observations: Sequence[Observation], config: CuratorConfig
) -> ReputationState:
    """Fold an owner's history into a beta reputation with forgetting and hysteresis.

    Beta reputation (Jøsang & Ismail, Bled eCommerce 2002), as used for FL
    participants by Kang et al. (IEEE IoT Journal 2019): each round adds the
    owner's relative value, clipped to [-1, 1], as positive or negative evidence;
    past evidence decays by ``reputation_decay`` per round; reputation is
    ``(positive + 1) / (positive + negative + 2)`` (0.5 with no evidence). After
    ``warmup_rounds`` an owner below ``quarantine_below`` is quarantined; it is
    still valued every round it takes part in and is readmitted once its
    reputation reaches ``readmit_above``.
    """
    positive = negative = 0.0
    quarantined, since = False, None
    reputation = 0.5
    for count, observation in enumerate(observations, start=1):
        evidence = min(max(observation.relative, -1.0), 1.0)
        positive = config.reputation_decay * positive + max(evidence, 0.0)
        negative = config.reputation_decay * negative + max(-evidence, 0.0)
        reputation = (positive + 1.0) / (positive + negative + 2.0)
        if quarantined and reputation >= config.readmit_above:
            quarantined, since = False, None
        elif (
            not quarantined
            and count >= config.warmup_rounds
            and reputation < config.quarantine_below
        ):
            quarantined, since = True, observation.round
    return ReputationState(reputation, quarantined, since)


def reputation_policy(
    log: EvidenceLog, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """``p_i * reputation`` for active owners, 0 for quarantined ones."""
    decisions = {}
    for name, weight in base_weights.items():
        observations = log.observations[name]
        state = replay_reputation(observations, config)
        earlier = replay_reputation(observations[:-1], config)
        if state.quarantined:
            reason = (
                f"quarantined since round {state.since}: reputation {state.reputation:.3f} "
                f"(readmitted at {config.readmit_above:g})"
            )
            decisions[name] = OwnerDecision(0.0, reason)
            continue
        readmitted = "readmitted, " if earlier.quarantined else ""
        reason = f"{readmitted}reputation {state.reputation:.3f} after {len(observations)} rounds"
        decisions[name] = OwnerDecision(weight * state.reputation, reason)
    return decisions


POLICIES: dict[str, Policy] = {
    "none": no_policy,
    "weight": weight_policy,
    "exclude": exclude_policy,
    "reputation": reputation_policy,
}


def decide(
    policy: str, log: EvidenceLog, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """Apply ``policy``; never leave a round without any update to aggregate.

    When a policy would leave every participant out, the round keeps all of them
    at their reported weights and every reason says so: an empty aggregate
    would silently repeat the old model.
    """
    decisions = POLICIES[policy](log, base_weights, config)
    if any(decision.included for decision in decisions.values()):
        return decisions
    return {
        name: OwnerDecision(
            base_weights[name],
            f"kept at reported weight: the policy left every participant out ({decision.reason})",
        )
        for name, decision in decisions.items()
    }
