"""The ``exclude`` policy: leave out owners whose record is confidently bad."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from fedcurate.curation.policies.base import (
    UPHILL_ALIGNMENT,
    OwnerDecision,
    alignments_of,
    is_newcomer,
    mean_alignment,
    relatives_of,
    round_screen,
    uphill_description,
)
from fedcurate.curation.quality import LABEL_QUALITY

#: Harm that excludes on credit alone: a mean relative value this far below 0 undoes
#: as much as an average owner adds (relative values have mean magnitude 1).
HARM_EFFECT = 1.0
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
        relatives = relatives_of(observations)
        alignments = alignments_of(observations)
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
            alignment=mean_alignment(observations),
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
        if not is_newcomer(observations, config)
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
    steep = uphill_description(latest, newcomer=False)
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
