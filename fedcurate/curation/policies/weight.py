"""The ``weight`` policy: aggregation weights from mean credit, floored and capped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fedcurate.config import CuratorConfig
from fedcurate.curation.evidence import EvidenceLog, Observation
from fedcurate.curation.policies.base import (
    OwnerDecision,
    is_newcomer,
    mean_alignment,
    relatives_of,
    round_screen,
)


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
        newcomer = is_newcomer(history[name], config)
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
    mean = float(relatives_of(observations).mean())
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
    relatives = relatives_of(observations)
    mean = float(relatives.mean())
    alignment = mean_alignment(observations)
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
