"""Policies: what the values decide about this round's aggregation.

A policy reads every owner's history of relative values (see
:mod:`fedcurate.curation.ledger`; the current round included) and the
participants' reported aggregation weights ``p_i``, and decides for each
participant a weight (0 = left out of the aggregate) with a reason in words.
Policies keep no state of their own: each decision is a function of the ledger,
so a resumed run decides exactly as an uninterrupted one.

* ``none``: weights as reported.
* ``weight``: ``p_i`` times the owner's mean relative value (floored), a
  neutral multiplier for newcomers.
* ``exclude``: leave out owners whose values are *confidently* harmful: the
  mean is significantly below 0 across rounds *and* far below the other owners'.
* ``reputation``: a decaying beta reputation with quarantine and readmission.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats  # type: ignore[import-untyped]

from fedcurate.config import CuratorConfig
from fedcurate.curation.ledger import Observation

#: Factors turning a median / mean absolute deviation into a normal standard deviation.
MAD_TO_SD = 1.4826
MEAN_AD_TO_SD = 1.2533


@dataclass(frozen=True)
class OwnerDecision:
    """Aggregation weight (0 = excluded) and the reason for it."""

    weight: float
    reason: str

    @property
    def included(self) -> bool:
        """Whether the owner's update enters the aggregate."""
        return self.weight > 0.0


History = Mapping[str, Sequence[Observation]]
Policy = Callable[[History, Mapping[str, float], CuratorConfig], dict[str, OwnerDecision]]


def _relatives(observations: Sequence[Observation]) -> np.ndarray:
    return np.array([o.relative for o in observations], dtype=np.float64)


def no_policy(
    history: History, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """Every participant with its reported weight."""
    return {
        name: OwnerDecision(weight, f"policy none: reported weight {weight:g}")
        for name, weight in base_weights.items()
    }


def weight_policy(
    history: History, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """``p_i * max(mean relative value, weight_floor)``; newcomers get ``newcomer_weight``.

    An owner with fewer than ``warmup_rounds`` valued rounds is a newcomer: it
    has not had the chance to earn credit, so it is weighted like an average
    contributor (multiplier ``newcomer_weight``) rather than by its first, noisy
    values. The mean (not the sum) of relative values is used so that an owner
    sampled in fewer rounds is not penalised for it.
    """
    decisions = {}
    for name, weight in base_weights.items():
        relatives = _relatives(history[name])
        if len(relatives) < config.warmup_rounds:
            multiplier = config.newcomer_weight
            reason = (
                f"newcomer ({len(relatives)} of {config.warmup_rounds} warm-up rounds): "
                f"multiplier {multiplier:g}"
            )
        else:
            mean = float(relatives.mean())
            multiplier = max(mean, config.weight_floor)
            floored = " (floored)" if mean < config.weight_floor else ""
            reason = (
                f"mean relative value {mean:+.3f} over {len(relatives)} rounds: "
                f"multiplier {multiplier:.3f}{floored}"
            )
        decisions[name] = OwnerDecision(weight * multiplier, reason)
    return decisions


@dataclass(frozen=True)
class HarmEvidence:
    """Why an owner's record is, or is not, confidently harmful."""

    rounds: int
    mean: float
    p_value: float
    outlier_score: float


def harm_p_value(relatives: np.ndarray) -> float:
    """One-sided t-test p-value of "the mean relative value is below 0"."""
    mean = float(relatives.mean())
    spread = float(relatives.std(ddof=1)) if len(relatives) > 1 else 0.0
    if spread == 0.0:
        return 0.0 if mean < 0 else 1.0
    t_statistic = mean / (spread / np.sqrt(len(relatives)))
    return float(stats.t.cdf(t_statistic, df=len(relatives) - 1))


def outlier_scores(means: Mapping[str, float]) -> dict[str, float]:
    """Robust z-scores ``(m_i - median) / (1.4826 MAD)`` of the owners' mean relative values.

    When the MAD is 0 (at least half the owners look alike) the scale falls back
    to the mean absolute deviation, so one deviating owner still gets a finite
    score rather than an infinite one.
    """
    values = np.array(list(means.values()), dtype=np.float64)
    median = float(np.median(values))
    deviations = np.abs(values - median)
    scale = MAD_TO_SD * float(np.median(deviations)) or MEAN_AD_TO_SD * float(deviations.mean())
    if scale == 0.0:
        return dict.fromkeys(means, 0.0)
    return {name: (m - median) / scale for name, m in means.items()}


def exclude_policy(
    history: History, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """Leave out owners whose cumulative record is confidently harmful.

    No oracle count of bad owners: an owner with at least ``warmup_rounds``
    valued rounds is excluded when both

    * its mean relative value is below 0 by a one-sided t-test across its rounds
      at ``exclusion_confidence``, Bonferroni-corrected for every owner with
      enough rounds (harmful, not merely unlucky), and
    * that mean lies more than ``exclusion_outlier_threshold`` robust standard
      deviations below the median owner's (unlike the others: benign
      heterogeneity spreads every owner's values, which widens the MAD and
      protects unusual but honest owners).

    The decision is re-taken each round from all evidence so far, so more
    rounds only sharpen it.
    """
    established = {
        name: _relatives(observations)
        for name, observations in history.items()
        if len(observations) >= config.warmup_rounds
    }
    means = {name: float(relatives.mean()) for name, relatives in established.items()}
    outliers = outlier_scores(means) if means else {}
    # Bonferroni over every owner under test (not just this round's participants):
    # with partial participation the whole federation is the family of tests.
    alpha = (1.0 - config.exclusion_confidence) / max(len(established), 1)
    decisions = {}
    for name, weight in base_weights.items():
        if name not in established:
            reason = (
                f"kept: {len(history[name])} of {config.warmup_rounds} warm-up rounds, "
                "too little evidence to exclude"
            )
            decisions[name] = OwnerDecision(weight, reason)
            continue
        evidence = HarmEvidence(
            len(established[name]), means[name], harm_p_value(established[name]), outliers[name]
        )
        decisions[name] = _exclusion_decision(weight, evidence, alpha, config)
    return decisions


def _exclusion_decision(
    weight: float, evidence: HarmEvidence, alpha: float, config: CuratorConfig
) -> OwnerDecision:
    summary = (
        f"mean relative value {evidence.mean:+.3f} over {evidence.rounds} rounds, "
        f"one-sided p = {evidence.p_value:.2g} (threshold {alpha:.2g}), "
        f"{evidence.outlier_score:+.2f} robust SDs from the median owner"
    )
    significant = evidence.p_value < alpha
    outlying = evidence.outlier_score < -config.exclusion_outlier_threshold
    if significant and outlying:
        return OwnerDecision(0.0, f"excluded: confidently harmful; {summary}")
    why = "not significantly below 0" if not significant else "not unlike the other owners"
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
        evidence = float(np.clip(observation.relative, -1.0, 1.0))
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
    history: History, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """``p_i * reputation`` for active owners, 0 for quarantined ones."""
    decisions = {}
    for name, weight in base_weights.items():
        observations = history[name]
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
    policy: str, history: History, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """Apply ``policy``; never leave a round without any update to aggregate.

    When a policy would leave every participant out, the round keeps all of them
    at their reported weights and every reason says so: an empty aggregate
    would silently repeat the old model.
    """
    decisions = POLICIES[policy](history, base_weights, config)
    if any(decision.included for decision in decisions.values()):
        return decisions
    return {
        name: OwnerDecision(
            base_weights[name],
            f"kept at reported weight: the policy left every participant out ({decision.reason})",
        )
        for name, decision in decisions.items()
    }
