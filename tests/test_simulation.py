"""End-to-end simulations on the in-process backend: outputs, faults, resume."""

from __future__ import annotations

import functools
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, RecordDict

import clients.owner
from clients.site import Site
from fedcurate.config import compose_config
from server.errors import RoundFailedError
from server.loop import FederatedRun
from server.strategies import STRATEGIES
from simulations.inprocess import InProcessGrid
from simulations.runner import run_simulation

SMALL = ["num_clients=4", "num_rounds=2", "train.local_epochs=1"]


def simulate(run_dir: Path, *overrides: str) -> dict[str, Any]:
    args = [*SMALL, *overrides]
    return run_simulation(compose_config(args), args, run_dir)


def final_arrays(run_dir: Path) -> ArrayRecord:
    latest = sorted((run_dir / "checkpoints").glob("round-*.pkl"))[-1]
    arrays: ArrayRecord = pickle.loads(latest.read_bytes())["state"].arrays
    return arrays


def test_run_directory_holds_the_promised_outputs(run_dir: Path) -> None:
    summary = simulate(run_dir, "corruption=label_noise", "corruption.owners=[1]")
    for key in ("rounds_completed", "num_clients", "wall_seconds", "privacy", "curator"):
        assert key in summary
    assert summary["rounds_completed"] == 2
    assert summary["num_clients"] == 4
    assert 0.0 <= summary["final"]["accuracy"] <= 1.0
    assert summary["final"]["loss"] > 0
    assert summary["best"]["round"] in (1, 2)
    communication = summary["communication"]
    assert communication["bytes_up"] > 0
    assert communication["bytes_down"] > 0
    assert 4.0 <= communication["bytes_up_per_param"] < 5.0  # float32 plus record overhead
    assert summary["corruption"] == {"owner-001": "label_noise"}
    assert summary["config"]["num_clients"] == 4
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["round"] for r in records] == [1, 2]
    assert records[-1]["central"] == summary["final"]
    assert set(records[-1]["federated"]["per_owner"]) == {f"owner-00{i}" for i in range(4)}
    assert (run_dir / "config.yaml").exists()
    assert (run_dir / "overrides.txt").exists()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "best.pkl",
        "round-00001.pkl",
        "round-00002.pkl",
    ]
    assert summary["best"]["selected_by"] == "validation"
    assert set(summary["validation"]) == {"loss", "accuracy"}


def test_same_seed_same_model_other_seed_other_model(tmp_path: Path) -> None:
    simulate(tmp_path / "a")
    simulate(tmp_path / "b")
    simulate(tmp_path / "c", "seed=1")
    a, b, c = (final_arrays(tmp_path / n) for n in "abc")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not all(np.array_equal(a[k].numpy(), c[k].numpy()) for k in a)


def _crash_once_in_round_three(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the next run stop in round 3 (once); the list records the crash."""
    original = FederatedRun._run_round
    crashed: list[int] = []

    def run_round(self: FederatedRun, server_round: int, *args: Any) -> Any:
        if server_round == 3 and not crashed:
            crashed.append(server_round)
            raise KeyboardInterrupt("stopped by the test")
        return original(self, server_round, *args)

    monkeypatch.setattr(FederatedRun, "_run_round", run_round)
    return crashed


def test_resume_ends_with_the_same_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = ["num_rounds=4"]
    simulate(tmp_path / "straight", *overrides)
    crashed = _crash_once_in_round_three(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        simulate(tmp_path / "resumed", *overrides)
    summary = simulate(tmp_path / "resumed", *overrides)

    assert crashed == [3]
    assert summary["rounds_completed"] == 4
    straight, resumed = final_arrays(tmp_path / "straight"), final_arrays(tmp_path / "resumed")
    assert all(np.array_equal(straight[k].numpy(), resumed[k].numpy()) for k in straight)
    records = [
        json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["round"] for r in records] == [1, 2, 3, 4]


@pytest.mark.parametrize("crypto", ["none", "ckks"])
def test_a_resumed_run_keeps_the_curators_ledger_round_by_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crypto: str
) -> None:
    """The server keeps the ledger from each verdict's round entry, also across a restart."""
    overrides = ["num_rounds=4", "curator=first_order", f"crypto={crypto}"]
    simulate(tmp_path / "straight", *overrides)
    _crash_once_in_round_three(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        simulate(tmp_path / "resumed", *overrides)
    summary = simulate(tmp_path / "resumed", *overrides)

    straight, resumed = (
        json.loads((tmp_path / run / "ledger.json").read_text()) for run in ("straight", "resumed")
    )
    assert [entry["round"] for entry in resumed["rounds"]] == [1, 2, 3, 4]
    assert summary["curator"]["values"] == resumed["cumulative"]
    if crypto == "none":
        assert resumed == straight
    else:  # CKKS encryption is randomised: the same decisions, values equal to its precision
        for ours, theirs in zip(resumed["rounds"], straight["rounds"], strict=True):
            assert ours["owners"].keys() == theirs["owners"].keys()
            for name, owner in ours["owners"].items():
                assert owner["value"] == pytest.approx(theirs["owners"][name]["value"], rel=1e-4)


def test_resume_refuses_another_experiment(run_dir: Path) -> None:
    simulate(run_dir)
    with pytest.raises(ValueError, match="different experiment"):
        simulate(run_dir, "seed=5")


def _breaking(owner: str, how: str) -> Any:
    honest = clients.owner.train

    def train(site: Site, content: RecordDict, context: Context) -> RecordDict:
        reply = honest(site, content, context)
        if site.name != owner:
            return reply
        if how == "crash":
            raise RuntimeError("disk on fire")
        arrays = reply.array_records["arrays"]
        key = next(iter(arrays))
        broken = arrays[key].numpy().copy()
        broken.flat[0] = np.nan
        arrays[key] = Array(broken)
        return reply

    return train


def test_crashed_owner_is_recorded_and_the_round_completes(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clients.owner, "train", _breaking("owner-002", "crash"))
    summary = simulate(run_dir)
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert "disk on fire" in record["failed"]["owner-002"]
    assert "owner-002" not in record["replied"]
    assert len(record["replied"]) == 3
    assert summary["rounds_completed"] == 2


def test_nan_update_is_rejected_with_a_reason(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clients.owner, "train", _breaking("owner-001", "nan"))
    summary = simulate(run_dir)
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert "NaN" in record["rejected"]["owner-001"]
    assert np.isfinite(summary["final"]["loss"])


def test_too_few_replies_stop_the_run_instead_of_stalling(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_crash(site: Site, content: RecordDict, context: Context) -> RecordDict:
        raise RuntimeError("site offline")

    monkeypatch.setattr(clients.owner, "train", always_crash)
    with pytest.raises(RoundFailedError, match="after 3 attempts"):
        simulate(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"].startswith("failed: round 1: 0 valid replies after 3 attempts")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_learns(tmp_path: Path, name: str) -> None:
    extra = ["strategy.num_malicious=0"] if "krum" in name else []
    summary = simulate(tmp_path / name, f"strategy={name}", *extra, "num_rounds=3")
    assert summary["final"]["accuracy"] > 0.3, summary["final"]


def test_flower_backend_refuses_a_grid_factory(tmp_path: Path) -> None:
    overrides = ["backend=flower", "num_rounds=1"]
    with pytest.raises(ValueError, match="no grid_factory"):
        run_simulation(
            compose_config(overrides),
            overrides,
            tmp_path,
            grid_factory=functools.partial(InProcessGrid, workers=1),
        )
