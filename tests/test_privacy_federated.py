"""DP-SGD inside the federation: ledgers, budgets, restarts, and what is released."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fedcurate.config import compose_config
from server.loop import FederatedRun
from simulations.runner import run_simulation

DP = ["num_clients=3", "num_rounds=3", "train.local_epochs=1", "privacy=dp_sgd"]


def simulate(run_dir: Path, *extra: str) -> dict[str, Any]:
    args = [*DP, *extra]
    return run_simulation(compose_config(args), args, run_dir)


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def killed_then_resumed(
    monkeypatch: pytest.MonkeyPatch,
    run_dir: Path,
    step: str,
    at_round: int,
    before_kill: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Kill the server when round ``at_round`` reaches ``FederatedRun.<step>``, then resume."""
    original = getattr(FederatedRun, step)

    def killed(self: FederatedRun, server_round: int, *args: Any) -> Any:
        if server_round == at_round:
            before_kill()
            raise KeyboardInterrupt("server killed")
        return original(self, server_round, *args)

    with monkeypatch.context() as patched:
        patched.setattr(FederatedRun, step, killed)
        with pytest.raises(KeyboardInterrupt):
            simulate(run_dir)
    return simulate(run_dir)


def test_every_owner_reports_its_spending_within_budget(run_dir: Path) -> None:
    summary = simulate(run_dir)
    privacy = summary["privacy"]
    assert privacy["budget"] == 8.0
    assert set(privacy["owners"]) == {"owner-000", "owner-001", "owner-002"}
    for entry in privacy["owners"].values():
        assert 0 < entry["epsilon"] <= 8.0
        assert entry["rounds_trained"] == 3
        assert entry["delta"] <= 1e-5
        assert entry["stopped_on_budget"] is None
    per_round = [r["privacy"]["epsilon"]["owner-000"] for r in records(run_dir)]
    assert per_round == sorted(per_round)  # composition only grows
    assert privacy["max_epsilon"] == max(e["epsilon"] for e in privacy["owners"].values())


def test_no_metric_of_private_data_leaves_an_owner(run_dir: Path) -> None:
    simulate(run_dir)
    for record in records(run_dir):
        assert set(record["train"]) == {"train-seconds"}  # no loss/accuracy of private data
        assert record["federated"] is None  # owners decline evaluations on their data


def test_owners_stop_when_the_next_round_would_exceed_the_budget(run_dir: Path) -> None:
    summary = simulate(run_dir, "privacy.planned_rounds=2", "privacy.epsilon=3.0")
    assert summary["status"].startswith("stopped: round 3: every sampled owner declined")
    assert summary["rounds_completed"] == 2
    for entry in summary["privacy"]["owners"].values():
        assert entry["stopped_on_budget"] == 3
        assert entry["epsilon"] <= 3.0
        assert entry["rounds_trained"] == 2


def test_ledgers_survive_a_restart_and_match_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = simulate(tmp_path / "straight")
    resumed = killed_then_resumed(monkeypatch, tmp_path / "resumed", "_run_round", 3)
    assert resumed["privacy"]["owners"] == straight["privacy"]["owners"]
    assert resumed["final"] == straight["final"]


def test_a_round_lost_after_the_owners_trained_is_replayed_not_paid_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = simulate(tmp_path / "straight")
    # _select_model runs after training and aggregation, before the checkpoint.
    resumed = killed_then_resumed(monkeypatch, tmp_path / "resumed", "_select_model", 3)
    assert [r["round"] for r in records(tmp_path / "resumed")] == [1, 2, 3]
    assert records(tmp_path / "resumed")[2]["failed"] == {}
    assert resumed["privacy"]["owners"] == straight["privacy"]["owners"]
    assert resumed["final"] == straight["final"]


@pytest.mark.parametrize("damage", ["lost", "corrupt"])
def test_a_repeated_round_without_its_kept_release_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    run_dir = tmp_path / "run"
    kept = run_dir / "sites" / "owner-002" / "last-dp-release.npz"

    def damage_kept_release() -> None:
        if damage == "lost":
            kept.unlink()
        else:
            kept.write_bytes(kept.read_bytes()[:100])

    summary = killed_then_resumed(monkeypatch, run_dir, "_select_model", 3, damage_kept_release)
    declined = records(run_dir)[2]["declined"]
    assert "already trained round 3" in declined["owner-002"]
    assert summary["privacy"]["owners"]["owner-002"]["rounds_trained"] == 3


def test_a_lost_ledger_is_never_a_fresh_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "run" / "sites" / "owner-001" / "privacy-ledger.json"
    summary = killed_then_resumed(monkeypatch, tmp_path / "run", "_run_round", 2, ledger.unlink)
    failed = records(tmp_path / "run")[1]["failed"]
    assert "privacy ledger missing" in failed["owner-001"]
    assert "server records 1 round(s)" in failed["owner-001"]
    assert summary["privacy"]["owners"]["owner-001"]["rounds_trained"] == 1
    shutil.rmtree(tmp_path / "run")


def test_a_free_rider_posing_as_a_dp_owner_is_screened_by_the_curator(run_dir: Path) -> None:
    """It releases no data metric, like honest DP owners: accepted, then caught as a replay."""
    summary = simulate(
        run_dir,
        "num_clients=4",
        "corruption=free_rider_replay",
        "corruption.owners=[1]",
        "curator=first_order",
        "curator.policy=exclude",
    )
    assert all(r["rejected"] == {} and "owner-001" in r["replied"] for r in records(run_dir))
    ledger = json.loads((run_dir / "ledger.json").read_text())
    rider = [entry["owners"]["owner-001"] for entry in ledger["rounds"]]
    assert len(rider) == 3
    assert all(owner["screen"] and not owner["included"] for owner in rider[1:])
    assert summary["curator"]["reward_shares"]["owner-001"] <= 0.01
    assert "public information" in summary["curator"]["excluded"]["owner-001"]
