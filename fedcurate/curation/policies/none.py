"""The ``none`` policy: every participant with its reported weight."""

from __future__ import annotations

from collections.abc import Mapping

from fedcurate.config import CuratorConfig
from fedcurate.curation.evidence import EvidenceLog
from fedcurate.curation.policies.base import OwnerDecision


def no_policy(
    log: EvidenceLog, base_weights: Mapping[str, float], config: CuratorConfig
) -> dict[str, OwnerDecision]:
    """Every participant with its reported weight."""
    return {
        name: OwnerDecision(weight, f"policy none: reported weight {weight:g}")
        for name, weight in base_weights.items()
    }
