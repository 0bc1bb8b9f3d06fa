"""Policies decide from evidence across rounds, with a reason for every decision."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest

from fedcurate.config import CuratorConfig
from fedcurate.curation.evidence import EvidenceLog, Observation, robust_z
from fedcurate.curation.policies import decide, replay_reputation

CONFIG = CuratorConfig(name="gtg_shapley")


def history(**relatives: Iterable[float]) -> dict[str, list[Observation]]:
    """Owner -> observations in rounds 1, 2, ... from lists of relative values."""
    return {
        name.replace("_", "-"): [Observation(r, v) for r, v in enumerate(values, start=1)]
        for name, values in relatives.items()
    }


def base(owners: dict[str, list[Observation]]) -> dict[str, float]:
    return dict.fromkeys(owners, 10.0)


def test_none_keeps_reported_weights() -> None:
    owners = history(site_a=[1.0], site_b=[-3.0])
    decisions = decide("none", EvidenceLog.of(owners), {"site-a": 5.0, "site-b": 7.0}, CONFIG)
    assert {n: d.weight for n, d in decisions.items()} == {"site-a": 5.0, "site-b": 7.0}


def test_exclusion_needs_evidence_across_rounds() -> None:
    honest = {f"h{i}": [1.0 + 0.1 * i, 0.9, 1.1 - 0.05 * i, 1.0, 0.95] for i in range(6)}
    bad = [-1.5, -1.2, -1.4, -1.6, -1.3]
    early = history(**{k: v[:2] for k, v in honest.items()}, bad=bad[:2])
    decision = decide("exclude", EvidenceLog.of(early), base(early), CONFIG)["bad"]
    assert decision.included
    assert "warm-up" in decision.reason
    later = history(**honest, bad=bad)
    decisions = decide("exclude", EvidenceLog.of(later), base(later), CONFIG)
    assert not decisions["bad"].included
    assert "confidently far below" in decisions["bad"].reason
    assert all(decisions[name].included for name in honest)


def test_one_bad_round_is_not_enough() -> None:
    owners = history(
        **{f"h{i}": [1.0, 1.1 - 0.02 * i, 0.9, 1.0, 1.05] for i in range(6)},
        unlucky=[-4.0, 1.0, 0.8, 1.1, 0.9],
    )
    decision = decide("exclude", EvidenceLog.of(owners), base(owners), CONFIG)["unlucky"]
    assert decision.included
    assert "not significantly below the other owners nor harmful" in decision.reason


def test_benign_outlier_among_heterogeneous_owners_is_kept() -> None:
    """Consistently slightly negative, but the others spread just as widely."""
    rng = np.random.default_rng(0)
    spread = {
        f"device_{i}": list(m + 0.1 * rng.normal(size=8))
        for i, m in enumerate([-0.2, 0.3, 0.8, 1.5, 2.0, 0.1, 1.1])
    }
    owners = history(**spread, unusual=list(-0.4 + 0.05 * rng.normal(size=8)))
    decision = decide("exclude", EvidenceLog.of(owners), base(owners), CONFIG)["unusual"]
    assert decision.included
    assert "not far enough below" in decision.reason


def test_an_owner_whose_data_look_unusual_is_kept_while_its_updates_help() -> None:
    """Far below the others in a data signal every round: excluded unless its value helps."""
    rng = np.random.default_rng(2)
    rounds = range(1, 9)

    def owner(relative: float, sharpening: float) -> list[Observation]:
        return [
            Observation(
                r, relative + 0.1 * rng.normal(), {"sharpening": sharpening + 0.02 * rng.normal()}
            )
            for r in rounds
        ]

    owners = {f"h{i}": owner(1.0, 0.2) for i in range(6)}
    owners |= {"skewed": owner(0.8, -0.5), "noisy": owner(0.0, -0.5)}
    decisions = decide("exclude", EvidenceLog.of(owners), base(owners), CONFIG)
    assert decisions["skewed"].included
    assert (
        "far below the other owners, but its updates confidently help" in decisions["skewed"].reason
    )
    assert not decisions["noisy"].included
    assert "confidently far below" in decisions["noisy"].reason
    assert all(decisions[f"h{i}"].included for i in range(6))


def test_false_exclusion_rate_of_benign_federations_is_small() -> None:
    """50 federations of 10 honest, heterogeneous, noisy owners over 20 rounds."""
    rng = np.random.default_rng(1)
    ever_excluded, owners_seen = 0, 0
    for _ in range(50):
        means = rng.normal(1.0, 0.6, size=10)
        values = means[:, None] + rng.standard_t(df=3, size=(10, 20))
        excluded: set[str] = set()
        for rounds in range(1, 21):
            owners = history(**{f"o{i}": values[i, :rounds] for i in range(10)})
            decisions = decide("exclude", EvidenceLog.of(owners), base(owners), CONFIG)
            excluded |= {name for name, d in decisions.items() if not d.included}
        ever_excluded += len(excluded)
        owners_seen += 10
    assert ever_excluded / owners_seen <= 0.05


def test_robust_z_survives_a_zero_mad() -> None:
    scores = robust_z({"a": 1.0, "b": 1.0, "c": 1.0, "d": -2.0})
    assert np.isfinite(list(scores.values())).all()
    assert scores["d"] < -3 < 0 == scores["a"]


def test_reputation_quarantines_and_readmits() -> None:
    relatives = [-1.0] * 5 + [1.0] * 5
    states = [
        replay_reputation(history(x=relatives[:k])["x"], CONFIG).quarantined
        for k in range(1, len(relatives) + 1)
    ]
    first = states.index(True)
    assert first >= CONFIG.warmup_rounds - 1
    assert states[-1] is False
    owners = history(x=relatives[: first + 1], y=[1.0] * (first + 1))
    quarantined = decide("reputation", EvidenceLog.of(owners), base(owners), CONFIG)["x"]
    assert quarantined.weight == 0.0
    assert f"quarantined since round {first + 1}" in quarantined.reason
    readmitted_at = first + states[first:].index(False) + 1
    assert readmitted_at <= len(relatives)
    owners = history(x=relatives[:readmitted_at], y=[1.0] * readmitted_at)
    decisions = decide("reputation", EvidenceLog.of(owners), base(owners), CONFIG)
    assert decisions["x"].included
    assert decisions["x"].reason.startswith("readmitted")
    assert decisions["x"].weight < decisions["y"].weight


def test_weight_policy_floors_caps_and_newcomers() -> None:
    owners = history(
        veteran=[0.5, 0.5, 0.5], star=[3.0, 2.0, 4.0], harmful=[-1.0, -1.0, -1.0], newbie=[-2.0]
    )
    decisions = decide("weight", EvidenceLog.of(owners), dict.fromkeys(owners, 2.0), CONFIG)
    assert decisions["veteran"].weight == pytest.approx(1.0)
    assert decisions["star"].weight == pytest.approx(2.0 * CONFIG.weight_cap)
    assert "(capped)" in decisions["star"].reason
    owners["uphill"] = [Observation(r, -0.5, alignment=-0.2) for r in (1, 2, 3)]
    owners["sideways"] = [Observation(r, -0.5, alignment=0.1) for r in (1, 2, 3)]
    decisions = decide("weight", EvidenceLog.of(owners), dict.fromkeys(owners, 2.0), CONFIG)
    assert decisions["uphill"].weight == 0.0
    assert "its updates hurt" in decisions["uphill"].reason
    assert decisions["sideways"].weight == pytest.approx(2.0 * CONFIG.weight_floor)
    assert decisions["harmful"].weight == pytest.approx(2.0 * CONFIG.weight_floor)
    assert "floored" in decisions["harmful"].reason
    assert decisions["newbie"].weight == pytest.approx(2.0 * CONFIG.warmup_floor)
    assert "newcomer" in decisions["newbie"].reason


def test_weight_policy_lets_a_newcomers_credit_take_at_most_part_of_its_weight() -> None:
    """First values are noisy: a newcomer is floored higher, and never zeroed by its record."""
    owners = history(helpful=[1.5], middling=[0.7], diluting=[-0.8, -0.4])
    owners["uphill"] = [Observation(r, -0.5, alignment=-0.2) for r in (1, 2)]
    decisions = decide("weight", EvidenceLog.of(owners), dict.fromkeys(owners, 2.0), CONFIG)
    assert CONFIG.weight_floor < CONFIG.warmup_floor < 0.7 < CONFIG.weight_cap
    assert decisions["helpful"].weight == pytest.approx(2.0 * CONFIG.weight_cap)
    assert decisions["middling"].weight == pytest.approx(2.0 * 0.7)
    for name in ("diluting", "uphill"):
        assert decisions[name].weight == pytest.approx(2.0 * CONFIG.warmup_floor)
        assert f"floored at {CONFIG.warmup_floor:g}" in decisions[name].reason


@pytest.mark.parametrize("policy", ["weight", "exclude"])
def test_screened_and_steeply_uphill_updates_are_left_out_of_their_round(policy: str) -> None:
    """A floored weight would still let a sign flip subtract; the next round judges anew."""
    rounds = range(1, CONFIG.warmup_rounds + 1)
    owners = {f"h{i}": [Observation(r, 1.0, alignment=0.4) for r in rounds] for i in range(4)}
    owners["flipped"] = [Observation(r, 0.8, alignment=0.3) for r in rounds[:-1]]
    owners["flipped"].append(Observation(rounds[-1], -1.5, alignment=-0.7))
    owners["replay"] = [Observation(r, 0.9) for r in rounds[:-1]]
    owners["replay"].append(Observation(rounds[-1], 0.0, screened=True))
    decisions = decide(policy, EvidenceLog.of(owners), dict.fromkeys(owners, 1.0), CONFIG)
    # Past warm-up, exclude lets the record judge the owner and holds the update
    # at the floor; weight zeroes it.
    floored = policy == "exclude"
    assert decisions["flipped"].weight == (CONFIG.weight_floor if floored else 0.0)
    assert decisions["flipped"].reason.startswith(
        "kept at the floor weight this round" if floored else "excluded this round"
    )
    assert "steeply uphill (descent alignment -0.70" in decisions["flipped"].reason
    assert decisions["replay"].weight == 0.0
    assert "public information" in decisions["replay"].reason
    assert all(decisions[f"h{i}"].included for i in range(4))
    for observations in owners.values():
        observations.append(Observation(rounds[-1] + 1, 1.0, alignment=0.4))
    decisions = decide(policy, EvidenceLog.of(owners), dict.fromkeys(owners, 1.0), CONFIG)
    assert decisions["flipped"].included
    assert decisions["replay"].included


def test_a_round_never_ends_without_any_update() -> None:
    owners = history(a=[-1.0] * 4, b=[-1.0] * 4)
    decisions = decide("reputation", EvidenceLog.of(owners), {"a": 3.0, "b": 4.0}, CONFIG)
    assert {n: d.weight for n, d in decisions.items()} == {"a": 3.0, "b": 4.0}
    assert all("left every participant out" in d.reason for d in decisions.values())


def test_exclude_leaves_out_an_owner_whose_updates_point_uphill_round_after_round() -> None:
    """Credit and alignment just below the others' (a sign flip under DP): the sign test sees it."""
    owners = {
        f"h{i}": [Observation(r, 1.0 + 0.05 * i, alignment=0.05) for r in range(1, 16)]
        for i in range(9)
    }
    owners["flip"] = [Observation(r, 0.9, alignment=-0.01) for r in range(1, 16)]
    decisions = decide("exclude", EvidenceLog.of(owners), base(owners), CONFIG)
    assert not decisions["flip"].included
    assert "uphill round after round" in decisions["flip"].reason
    assert "15 of 15 rounds" in decisions["flip"].reason
    assert all(decisions[f"h{i}"].included for i in range(9))
    fewer = {name: observations[:10] for name, observations in owners.items()}
    assert (
        "uphill round after round"
        not in decide("exclude", EvidenceLog.of(fewer), base(fewer), CONFIG)["flip"].reason
    )
