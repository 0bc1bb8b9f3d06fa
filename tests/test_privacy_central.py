"""Client-level DP at the server (privacy=central_dp) through Flower's DP wrapper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

import clients.owner
from fedcurate.config import ConfigError, PrivacyConfig, compose_config
from fedcurate.privacy.central import ClientLevelAccountant, central_noise_multiplier
from fedcurate.privacy.rdp import rdp_epsilon
from server.strategies import build_strategy
from simulations.runner import run_simulation

ARGS = ["num_clients=4", "num_rounds=3", "train.local_epochs=1", "privacy=central_dp"]


def simulate(run_dir: Path, *extra: str) -> dict[str, Any]:
    args = [*ARGS, *extra]
    return run_simulation(compose_config(args), args, run_dir)


def test_noise_is_calibrated_to_the_budget_over_the_planned_rounds() -> None:
    cfg = PrivacyConfig(name="central_dp", epsilon=4.0, delta=1e-3)
    z = central_noise_multiplier(cfg, 1e-3, rounds=10)
    assert rdp_epsilon([(z, 1.0, 10)], 1e-3) <= 4.0
    assert rdp_epsilon([(z * 0.97, 1.0, 10)], 1e-3) > 4.0 - 0.05  # not wastefully large


def test_every_round_is_one_release_at_the_calibrated_multiplier() -> None:
    accountant = ClientLevelAccountant(noise_multiplier=2.0, delta=1e-3, budget=100.0)
    accountant.record()
    accountant.record()
    assert accountant.history == [(2.0, 1.0, 1), (2.0, 1.0, 1)]
    assert accountant.epsilon() == rdp_epsilon([(2.0, 1.0, 2)], 1e-3)


def test_strategy_is_wrapped_in_flowers_server_side_clipping() -> None:
    strategy = build_strategy(compose_config(ARGS), noise_multiplier=1.5)
    assert isinstance(strategy, DifferentialPrivacyServerSideFixedClipping)
    assert strategy.noise_multiplier == 1.5
    assert strategy.num_sampled_clients == 4


def test_run_reports_client_level_epsilon_and_withholds_private_metrics(run_dir: Path) -> None:
    summary = simulate(run_dir)
    privacy = summary["privacy"]
    assert privacy["mechanism"] == "central_dp"
    assert 0 < privacy["epsilon"] <= privacy["budget"] == 8.0
    assert privacy["rounds"] == 3
    assert privacy["delta"] == 1 / 40
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    spent = [r["privacy"]["client_level_epsilon"] for r in records]
    assert spent == sorted(spent)
    assert all(set(r["train"]) == {"train-seconds"} for r in records)
    assert all(r["federated"] is None for r in records)


def test_the_run_stops_before_exceeding_the_budget(run_dir: Path) -> None:
    summary = simulate(run_dir, "privacy.planned_rounds=2", "privacy.noise_multiplier=null")
    assert summary["status"].startswith("stopped: round 3: client-level ε would exceed")
    assert summary["rounds_completed"] == 2
    assert summary["privacy"]["epsilon"] <= 8.0


def test_central_dp_refuses_encryption() -> None:
    with pytest.raises(ConfigError, match="clips every update"):
        compose_config([*ARGS, "crypto=ckks"])


def test_noise_follows_the_updates_actually_averaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    averaged: list[int] = []
    original = DifferentialPrivacyServerSideFixedClipping.aggregate_train

    def spy(self: Any, server_round: int, replies: Any) -> Any:
        replies = list(replies)
        averaged.append(self.num_sampled_clients)
        assert self.num_sampled_clients == len(replies)
        return original(self, server_round, replies)

    honest = clients.owner.train

    def flaky(site: Any, content: Any, context: Any) -> Any:
        if site.name == "owner-001":
            raise RuntimeError("site down")
        return honest(site, content, context)

    monkeypatch.setattr(DifferentialPrivacyServerSideFixedClipping, "aggregate_train", spy)
    monkeypatch.setattr(clients.owner, "train", flaky)
    full = simulate(tmp_path / "full")
    assert averaged == [3, 3, 3]  # owner-001 failed every round: noise for 3 updates
    assert full["privacy"]["epsilon"] <= 8.0
