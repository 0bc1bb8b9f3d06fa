"""The same apps on Flower's own simulation engine (Ray) give the same results."""

from __future__ import annotations

from pathlib import Path

from fedcurate.config import compose_config
from simulations.runner import run_simulation

ARGS = ["num_clients=4", "num_rounds=2", "train.local_epochs=1", "workers=2"]


def test_flower_engine_matches_inprocess_backend(tmp_path: Path) -> None:
    inprocess = run_simulation(compose_config(ARGS), ARGS, tmp_path / "inprocess")
    flower_args = [*ARGS, "backend=flower"]
    flower = run_simulation(compose_config(flower_args), flower_args, tmp_path / "flower")
    assert flower["rounds_completed"] == inprocess["rounds_completed"] == 2
    assert flower["final"] == inprocess["final"]
    assert flower["communication"]["bytes_up"] == inprocess["communication"]["bytes_up"]
