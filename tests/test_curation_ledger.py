"""The contribution ledger: JSON state round trip, credit and reward shares."""

from __future__ import annotations

import json

import pytest

from fedcurate.curation.ledger import (
    ContributionLedger,
    OwnerRecord,
    RoundRecord,
    relative_values,
    round_weights,
)
from simulations.bench_ledger import measure


def round_record(
    server_round: int,
    relatives: dict[str, float],
    scale: float = 0.01,
    utility: str = "accuracy",
) -> RoundRecord:
    """A round whose values are ``scale`` times ``relatives`` (in ``utility``'s unit)."""
    owners = {
        name: OwnerRecord(
            value=scale * r, relative=r, weight=1.0, included=True, reason="kept", score=None
        )
        for name, r in relatives.items()
    }
    return RoundRecord(server_round, "exact_shapley", utility, 1024, "note", owners)


def test_relative_values_are_shares_of_an_equal_split() -> None:
    shares = relative_values({"a": 0.2, "b": 0.2, "c": -0.1})
    assert sum(abs(v) for v in shares.values()) == pytest.approx(3.0)
    assert shares["a"] == pytest.approx(1.2)
    assert relative_values({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}


def test_state_dict_round_trips_through_json() -> None:
    ledger = ContributionLedger()
    ledger.record(round_record(1, {"site-x": 1.5, "site-y": 0.5}))
    ledger.record(round_record(3, {"site-x": 1.0, "site-z": -1.0}))
    state = json.loads(json.dumps(ledger.state_dict()))
    restored = ContributionLedger()
    restored.load_state_dict(state)
    assert restored.rounds == ledger.rounds
    assert restored.report() == ledger.report()
    assert dict(restored.evidence.standings) == dict(ledger.evidence.standings)
    with pytest.raises(ValueError, match="version"):
        restored.load_state_dict({"version": 99, "rounds": []})


def test_the_report_as_json_is_the_report_dumped_before_and_after_a_load() -> None:
    ledger = ContributionLedger()
    assert ledger.report_json() == json.dumps(ledger.report())
    ledger.record(round_record(1, {"site-x": 1.5, "site-y": 0.5}))
    assert ledger.report_json() == json.dumps(ledger.report())
    ledger.record(round_record(2, {"site-x": -1.0, "site-z": 2.0}))
    assert json.loads(ledger.report_json()) == ledger.report()
    restored = ContributionLedger()
    restored.load_state_dict(ledger.state_dict())
    restored.record(round_record(4, {"site-y": 1.0}))
    assert restored.report_json() == json.dumps(restored.report())


def test_a_state_with_rounds_out_of_order_is_refused_and_changes_nothing() -> None:
    ledger = ContributionLedger()
    ledger.record(round_record(1, {"a": 1.0, "b": -0.5}))
    report = ledger.report()
    state = ContributionLedger().state_dict()
    state["rounds"] = [round_record(r, {"a": 1.0}).to_dict() for r in (2, 4, 3)]
    with pytest.raises(ValueError, match="round 3 is not after the last recorded round 4"):
        ledger.load_state_dict(state)
    assert ledger.report() == report
    assert ledger.standing() == report["standing"]


def test_rounds_are_recorded_once_in_order() -> None:
    ledger = ContributionLedger()
    ledger.record(round_record(2, {"a": 1.0}))
    with pytest.raises(ValueError, match="not after the last recorded round 2"):
        ledger.record(round_record(2, {"a": 1.0}))


def test_cumulative_credit_and_reward_shares() -> None:
    ledger = ContributionLedger()
    assert ledger.reward_shares() == {}
    ledger.record(round_record(1, {"a": 1.5, "b": 0.5, "rider": -1.0}))
    ledger.record(round_record(2, {"a": 1.0, "b": 1.0, "rider": 0.0}))
    # Mean |value| 0.01 and 0.02 / 3: the rounds count 1.2 and 0.8 times an average one.
    assert ledger.cumulative() == {
        "a": pytest.approx(1.5 * 1.2 + 1.0 * 0.8),
        "b": pytest.approx(0.5 * 1.2 + 1.0 * 0.8),
        "rider": pytest.approx(-1.0 * 1.2),
    }
    shares = ledger.reward_shares()
    assert shares == {"a": pytest.approx(2.6 / 4), "b": pytest.approx(1.4 / 4), "rider": 0.0}
    assert sum(shares.values()) == pytest.approx(1.0)
    nobody = ContributionLedger()
    nobody.record(round_record(1, {"a": -1.0, "b": 0.0}))
    assert nobody.reward_shares() == {"a": 0.5, "b": 0.5}


def test_rounds_count_by_the_value_they_handed_out_within_their_utility() -> None:
    ledger = ContributionLedger()
    # Accuracy rounds: a late one hands out a tenth of the value of an early one.
    ledger.record(round_record(1, {"a": 1.0, "b": 1.0}, scale=0.1))
    ledger.record(round_record(2, {"a": -1.0, "b": 1.0}, scale=0.01))
    # Loss rounds (GTG-Shapley's fallback) are scaled among themselves, whatever their unit.
    ledger.record(round_record(3, {"a": 1.0, "b": 1.0}, scale=50.0, utility="loss"))
    ledger.record(round_record(4, {"a": 1.0, "b": -1.0}, scale=50.0, utility="loss"))
    accuracy_weights = (0.1 / 0.055, 0.01 / 0.055)
    credit = ledger.cumulative()
    assert credit["a"] == pytest.approx(accuracy_weights[0] - accuracy_weights[1] + 2.0)
    assert credit["b"] == pytest.approx(sum(accuracy_weights) + 0.0)
    assert credit["a"] > credit["b"]  # a's harmful round handed out little value
    assert round_weights(ledger.rounds) == pytest.approx([*accuracy_weights, 1.0, 1.0])
    nothing = ContributionLedger()
    nothing.record(round_record(1, {"a": 0.0, "b": 0.0}))
    assert round_weights(nothing.rounds) == [0.0]
    assert nothing.cumulative() == {"a": 0.0, "b": 0.0}


def test_the_bookkeeping_benchmark_times_a_round_after_a_long_run() -> None:
    line = measure(owners=6, rounds=5)
    assert (line["owners"], line["rounds"]) == (6, 5)
    assert all(line[key] > 0.0 for key in ("extend_s", "rebuild_s", "decide_s", "report_s"))
    assert line["rebuild_over_extend"] == line["rebuild_s"] / line["extend_s"]
