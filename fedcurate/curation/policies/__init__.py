"""Policies: what the values decide about this round's aggregation.

A policy reads the evidence log (:class:`~fedcurate.curation.evidence.EvidenceLog`:
every owner's observations, i.e. relative values and, where measured,
data-quality signals, descent alignment and the free-rider screen, and their
standings, the current round included) and the participants' reported
aggregation weights ``p_i``, and decides for each participant a weight (0 =
left out of the aggregate) with a reason in words. Policies keep no state of
their own: each decision is a function of the ledger, so a resumed run decides
exactly as an uninterrupted one. One policy per module; :data:`POLICIES` names
them for ``curator.policy``.

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

from collections.abc import Mapping

from fedcurate.config import CuratorConfig
from fedcurate.curation.evidence import EvidenceLog
from fedcurate.curation.policies.base import OwnerDecision, Policy, round_screen
from fedcurate.curation.policies.exclude import HarmEvidence, exclude_policy
from fedcurate.curation.policies.none import no_policy
from fedcurate.curation.policies.reputation import (
    ReputationState,
    replay_reputation,
    reputation_policy,
)
from fedcurate.curation.policies.weight import weight_policy

__all__ = [
    "POLICIES",
    "HarmEvidence",
    "OwnerDecision",
    "Policy",
    "ReputationState",
    "decide",
    "replay_reputation",
    "round_screen",
]

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
