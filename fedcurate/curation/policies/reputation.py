"""The ``reputation`` policy: a decaying beta reputation with quarantine and readmission."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedcurate.config import CuratorConfig
from fedcurate.curation.evidence import EvidenceLog, Observation
from fedcurate.curation.policies.base import OwnerDecision


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
