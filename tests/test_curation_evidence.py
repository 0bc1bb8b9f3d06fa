"""Standing: credit and data-quality signals relative to each round's participants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from fedcurate.config import CuratorConfig
from fedcurate.curation.evidence import (
    EVIDENCE_CLIP,
    EvidenceLog,
    Observation,
    alarm,
    mean_standing,
    round_standing,
    standings,
    uphill_records,
)
from fedcurate.curation.ledger import ContributionLedger, OwnerRecord, RoundRecord
from fedcurate.curation.policies import decide

CONFIG = CuratorConfig(name="first_order", policy="exclude", exclusion_outlier_threshold=2.0)


def rounds_of(
    credit: Mapping[str, Sequence[float]], quality: Mapping[str, Sequence[float]] | None = None
) -> dict[str, list[Observation]]:
    """Owner -> observations of rounds 1, 2, ... (label quality optional)."""
    return {
        name: [
            Observation(r, c, {} if quality is None else labelled(quality[name][r - 1]))
            for r, c in enumerate(values, start=1)
        ]
        for name, values in credit.items()
    }


def labelled(quality: float) -> dict[str, float]:
    """Signals holding label quality only."""
    return {"label_quality": quality}


def test_standing_is_relative_to_the_round_and_clipped() -> None:
    observations = {
        "a": Observation(1, 1.0, labelled(2.0)),
        "b": Observation(1, 1.2, labelled(2.2)),
        "c": Observation(1, 0.8, labelled(1.8)),
        "d": Observation(1, -50.0, labelled(2.0)),
    }
    standing = round_standing(observations)
    assert standing["d"].credit == -EVIDENCE_CLIP
    assert standing["a"].credit == pytest.approx(0.0, abs=0.5)
    # Shifting every value of a round by a constant changes nothing.
    shifted = {
        n: Observation(1, o.relative + 7.0, labelled(o.signals["label_quality"] - 3.0))
        for n, o in observations.items()
    }
    moved = round_standing(shifted)
    for name, original in standing.items():
        assert moved[name].terms == pytest.approx(original.terms)
        assert moved[name].total == pytest.approx(original.total)


def test_a_bad_term_is_not_offset_by_good_ones() -> None:
    """One signal far below the others is an alarm even when another term is far above."""
    rng = np.random.default_rng(3)
    signals = [("label_quality", 3.0), ("sharpening", 0.2), ("breadth", 0.6)]
    observations = {
        f"h{i}": Observation(
            1, 1.0 + 0.1 * rng.normal(), {k: v + 0.05 * rng.normal() for k, v in signals}
        )
        for i in range(8)
    }
    observations["shrinks"] = Observation(
        1, 3.0, {"label_quality": 3.5, "sharpening": -0.5, "breadth": 0.7}
    )
    standing = round_standing(observations)
    assert standing["shrinks"].terms["sharpening"] == -EVIDENCE_CLIP
    assert standing["shrinks"].terms["credit"] > 0
    assert sum(standing["shrinks"].terms.values()) > 0  # a plain sum would clear it
    assert standing["shrinks"].total < -1.0


def test_breadth_and_credit_weigh_less_only_beside_the_plaintext_signals() -> None:
    """How broadly an update helps drops with heterogeneity too; alone, credit keeps its weight."""
    clean = {"label_quality": 0.0, "sharpening": 0.0, "breadth": 0.0}
    assert alarm({"credit": -4.0, **clean}) == pytest.approx(-2.0)
    assert alarm({"credit": 0.0, **clean, "breadth": -4.0}) == pytest.approx(-1.0)
    assert alarm({"credit": 0.0, **clean, "label_quality": -4.0}) == pytest.approx(-4.0)
    assert alarm({"credit": -4.0}) == pytest.approx(-4.0)
    assert alarm({"credit": -4.0, "sharpening_projection": 2.0}) == pytest.approx(-3.8)


def test_a_screened_update_gets_the_lowest_standing_and_leaves_the_reference() -> None:
    honest = {
        n: Observation(1, v, labelled(1.0 + v)) for n, v in [("a", 1.0), ("b", 0.5), ("c", 1.5)]
    }
    alone = round_standing(honest)
    with_rider = round_standing({**honest, "rider": Observation(1, 0.0, screened=True)})
    assert with_rider["rider"].total == -EVIDENCE_CLIP
    assert all(with_rider[n] == alone[n] for n in honest)


def test_signals_are_optional_and_participation_partial() -> None:
    history = {
        "a": [Observation(1, 1.0), Observation(3, 1.0)],
        "b": [Observation(1, 0.0), Observation(2, 0.5), Observation(3, 0.0)],
        "c": [Observation(2, 1.5), Observation(3, 2.0)],
    }
    per_round = standings(history)
    assert [len(per_round[n]) for n in "abc"] == [2, 3, 2]
    assert all(set(s.terms) == {"credit"} for values in per_round.values() for s in values)
    assert mean_standing(history)["a"] == pytest.approx(np.mean([s.total for s in per_round["a"]]))


def test_the_log_extended_round_by_round_is_the_log_rebuilt_from_scratch() -> None:
    """Standings are computed once per round; extending never changes an earlier log."""
    rng = np.random.default_rng(3)
    rounds = [
        {
            name: Observation(
                server_round,
                float(rng.normal()),
                signals={"label_quality": float(rng.normal())},
                alignment=float(rng.normal()),
            )
            for name in "abcde"
            if rng.random() < 0.8
        }
        for server_round in range(1, 13)
    ]
    log = EvidenceLog()
    for observations in rounds[:-1]:
        log = log.extended(observations)
    before = (dict(log.observations), dict(log.standings))
    extended = log.extended(rounds[-1])
    assert (dict(log.observations), dict(log.standings)) == before
    history = {name: list(observations) for name, observations in extended.observations.items()}
    rebuilt = EvidenceLog.of(history)
    assert dict(extended.standings) == dict(rebuilt.standings)
    assert extended.mean_standing() == rebuilt.mean_standing() == mean_standing(history)


def test_clean_fits_protect_an_owner_with_low_credit() -> None:
    """Benign heterogeneity: lower credit in every round, but its local model fits cleanly."""
    rng = np.random.default_rng(0)
    credit = {f"h{i}": list(1.0 + 0.2 * rng.normal(size=8)) for i in range(7)}
    quality = {name: list(3.0 + 0.3 * rng.normal(size=8)) for name in credit}
    # Low credit, below what counts as confidently helpful (HELP_EFFECT).
    credit["unusual"] = list(0.2 + 0.1 * rng.normal(size=8))
    quality["unusual"] = list(4.0 + 0.3 * rng.normal(size=8))
    credit["noisy"] = list(0.2 + 0.1 * rng.normal(size=8))
    quality["noisy"] = list(1.0 + 0.3 * rng.normal(size=8))
    history = rounds_of(credit, quality)
    decisions = decide("exclude", EvidenceLog.of(history), dict.fromkeys(history, 1.0), CONFIG)
    assert decisions["unusual"].included
    assert not decisions["noisy"].included
    assert "label quality" in decisions["noisy"].reason
    assert all(decisions[f"h{i}"].included for i in range(7))


def test_a_screened_update_is_left_out_of_its_round_only() -> None:
    credit = {f"h{i}": [1.0 + 0.1 * i] * 4 for i in range(5)}
    history = rounds_of(credit)
    history["rider"] = [Observation(r, 0.0, screened=True) for r in range(1, 4)]
    history["rider"].append(Observation(4, 1.2))
    sent_replay = {**history, "rider": history["rider"][:3]}
    decisions = decide(
        "exclude", EvidenceLog.of(sent_replay), dict.fromkeys(sent_replay, 1.0), CONFIG
    )
    assert not decisions["rider"].included
    assert "public information" in decisions["rider"].reason
    # Its next, genuine update, like the median owner's, is judged on the whole record:
    # three floor rounds and one at the median are not yet significant.
    decisions = decide("exclude", EvidenceLog.of(history), dict.fromkeys(history, 1.0), CONFIG)
    assert decisions["rider"].included


def test_the_ledger_keeps_signals_and_reports_standing() -> None:
    ledger = ContributionLedger()
    for server_round in (1, 2):
        owners = {
            name: OwnerRecord(
                value=v,
                relative=v,
                weight=1.0,
                included=True,
                reason="r",
                score=v - 1.2,
                signals=None if q is None else labelled(q),
                screen="replay" if name == "c" else None,
            )
            for name, v, q in [("a", 1.5, 2.0), ("b", 1.0, 1.0), ("c", 0.0, None)]
        }
        ledger.record(RoundRecord(server_round, "first_order", "loss", 1, "", owners))
    history = ledger.history()
    assert history["a"][0].signals == {"label_quality": 2.0}
    assert history["c"][0].screened
    # The direction of an update whose alignment was not measured (encrypted): its score's.
    assert history["a"][0].uphill is False
    assert history["b"][0].uphill is True
    report = ledger.report()
    assert report["standing"]["c"] == -EVIDENCE_CLIP
    assert report["standing"]["a"] > report["standing"]["b"]
    restored = ContributionLedger()
    restored.load_state_dict(ledger.state_dict())
    assert restored.report() == report


def test_harm_excludes_even_with_clean_fits() -> None:
    """A sign-flipped update fits other owners' data well; its harm still excludes it."""
    rng = np.random.default_rng(1)
    credit = {f"h{i}": list(1.0 + 0.5 * rng.normal(size=10)) for i in range(6)}
    quality = {name: list(3.0 + 0.3 * rng.normal(size=10)) for name in credit}
    for name in ("flip1", "flip2", "flip3"):
        credit[name] = list(-1.5 + 0.1 * rng.normal(size=10))
        quality[name] = list(3.5 + 0.3 * rng.normal(size=10))
    history = rounds_of(credit, quality)
    decisions = decide("exclude", EvidenceLog.of(history), dict.fromkeys(history, 1.0), CONFIG)
    for name in ("flip1", "flip2", "flip3"):
        assert not decisions[name].included
        assert "confidently harmful" in decisions[name].reason
    assert all(decisions[f"h{i}"].included for i in range(6))


def honest_owners(rng: np.random.Generator, rounds: int) -> dict[str, list[Observation]]:
    """Seven owners that help, pointing downhill, over rounds 1 .. ``rounds``."""
    return {
        f"h{i}": [
            Observation(r, 1.0 + 0.8 * rng.normal(), labelled(3.0), alignment=0.4)
            for r in range(1, rounds + 1)
        ]
        for i in range(7)
    }


def test_an_uphill_owner_is_excluded_even_when_its_harm_is_small() -> None:
    """Slightly harmful every round: pointing uphill excludes, pointing sideways does not."""
    rng = np.random.default_rng(2)
    history = honest_owners(rng, 10)
    sideways = [0.1, -0.2] * 5
    for name, alignments in (("uphill", [-0.6] * 10), ("sideways", sideways)):
        history[name] = [
            Observation(r, -0.3 + 0.02 * rng.normal(), labelled(3.0), alignment=alignment)
            for r, alignment in enumerate(alignments, start=1)
        ]
    decisions = decide("exclude", EvidenceLog.of(history), dict.fromkeys(history, 1.0), CONFIG)
    assert not decisions["uphill"].included
    assert "descent alignment -0.60" in decisions["uphill"].reason
    assert decisions["sideways"].included


def test_a_record_that_hurts_and_points_uphill_sits_out_until_it_recovers() -> None:
    """DP shrinks a sign flip's alignment far below the uphill threshold; its sign stays."""
    rng = np.random.default_rng(3)
    history = honest_owners(rng, 3)
    history["flipped"] = [
        Observation(r, -0.4 + 0.3 * rng.normal(), labelled(3.0), alignment=-0.05 + 0.01 * r)
        for r in range(1, 4)
    ]
    decisions = decide("exclude", EvidenceLog.of(history), dict.fromkeys(history, 1.0), CONFIG)
    assert not decisions["flipped"].included
    assert decisions["flipped"].reason.startswith("suspended this round")
    assert all(decisions[f"h{i}"].included for i in range(7))
    # Helpful updates pointing downhill bring it back.
    for r in range(4, 8):
        history["flipped"].append(Observation(r, 1.5, labelled(3.0), alignment=0.4))
        for i in range(7):
            history[f"h{i}"].append(Observation(r, 1.0, labelled(3.0), alignment=0.4))
    decisions = decide("exclude", EvidenceLog.of(history), dict.fromkeys(history, 1.0), CONFIG)
    assert decisions["flipped"].included
    assert decisions["flipped"].reason.startswith("kept")


@pytest.mark.parametrize(("quality", "suspended"), [(3.0, True), (4.0, False)])
def test_an_owner_whose_local_models_fit_well_is_not_suspended(
    quality: float, suspended: bool
) -> None:
    """Uphill but clean (an unusual labelling function) stays at the floor; unclean sits out."""
    rng = np.random.default_rng(4)
    history = honest_owners(rng, 5)
    history["unusual"] = [
        Observation(r, -0.3 + 0.1 * rng.normal(), labelled(quality), alignment=-0.1)
        for r in range(1, 6)
    ]
    decision = decide("exclude", EvidenceLog.of(history), dict.fromkeys(history, 1.0), CONFIG)[
        "unusual"
    ]
    assert decision.included is not suspended
    if suspended:
        assert decision.reason.startswith("suspended this round")
    else:
        assert decision.weight == pytest.approx(CONFIG.weight_floor)
        assert decision.reason.startswith("kept at the floor weight")
        assert "unusual, not corrupted" in decision.reason


@pytest.mark.parametrize("policy", ["weight", "exclude"])
def test_an_uphill_update_is_left_out_of_its_round_before_any_record(policy: str) -> None:
    """Without a record, an update at the (not steep) uphill threshold already sits out."""
    history = {
        f"h{i}": [Observation(1, 1.0 + 0.1 * i, labelled(3.0), alignment=0.3)] for i in range(5)
    }
    history["flipped"] = [Observation(1, -1.0, labelled(3.0), alignment=-0.35)]
    history["sideways"] = [Observation(1, 0.1, labelled(3.0), alignment=-0.2)]
    decisions = decide(policy, EvidenceLog.of(history), dict.fromkeys(history, 1.0), CONFIG)
    assert not decisions["flipped"].included
    assert "uphill, before its owner has a record (descent alignment -0.35" in (
        decisions["flipped"].reason
    )
    assert decisions["sideways"].included
    # Its next update, pointing downhill, is judged on the whole record again.
    history["flipped"].append(Observation(2, 1.0, labelled(3.0), alignment=0.3))
    for i in range(5):
        history[f"h{i}"].append(Observation(2, 1.0, labelled(3.0), alignment=0.3))
    history["sideways"].append(Observation(2, 1.0, labelled(3.0), alignment=0.3))
    decisions = decide(policy, EvidenceLog.of(history), dict.fromkeys(history, 1.0), CONFIG)
    assert decisions["flipped"].included


def uphill_history(
    pattern: Sequence[bool], owners: int = 10, rounds: int = 15, encrypted: bool = False
) -> dict[str, list[Observation]]:
    """``owners - 1`` honest owners (always downhill) and ``suspect``, uphill where ``pattern``."""

    def observation(server_round: int, uphill: bool) -> Observation:
        direction = -0.2 if uphill else 0.3
        if encrypted:
            return Observation(server_round, 1.0, score=direction)
        return Observation(server_round, 1.0, alignment=direction, score=None)

    history = {
        f"h{i}": [observation(r, False) for r in range(1, rounds + 1)] for i in range(owners - 1)
    }
    history["suspect"] = [observation(r, up) for r, up in enumerate(pattern, start=1)]
    return history


@pytest.mark.parametrize("encrypted", [False, True])
def test_an_owner_uphill_round_after_round_has_an_uphill_record(encrypted: bool) -> None:
    """Alignment in plaintext, the sign of the first-order score under encryption."""
    history = uphill_history([True] * 15, encrypted=encrypted)
    records = uphill_records(history)
    assert set(records) == {"suspect"}
    assert (records["suspect"].uphill, records["suspect"].rounds) == (15, 15)
    assert "uphill in 15 of 15 rounds" in records["suspect"].describe()
    standing = mean_standing(history)
    assert standing["suspect"] == -EVIDENCE_CLIP
    assert all(standing[f"h{i}"] > -EVIDENCE_CLIP for i in range(9))


def test_an_uphill_record_needs_a_confident_sign_test() -> None:
    # Uphill in 13 of 15 rounds: p = 0.0037, above 0.001 / 10 owners.
    assert uphill_records(uphill_history([True] * 13 + [False] * 2)) == {}
    # Too few rounds: 10 of 10 gives p = 0.001.
    assert uphill_records(uphill_history([True] * 10, rounds=10)) == {}
    # 14 of 15 (p = 4.9e-4) is enough among 2 owners (a smaller Bonferroni family), not 10.
    almost_always = [True] * 14 + [False]
    assert uphill_records(uphill_history(almost_always)) == {}
    assert set(uphill_records(uphill_history(almost_always, owners=2))) == {"suspect"}


def test_screened_and_unmeasured_rounds_do_not_count_as_uphill() -> None:
    screened = [Observation(r, 0.0, screened=True, alignment=-0.9) for r in range(1, 16)]
    unmeasured = [Observation(r, 1.0) for r in range(1, 16)]
    assert screened[0].uphill is None
    assert unmeasured[0].uphill is None
    history = {**uphill_history([False] * 15), "rider": screened, "quiet": unmeasured}
    assert uphill_records(history) == {}
