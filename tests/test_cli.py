"""The ``fedcurate`` command line, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SMALL = ["num_clients=3", "num_rounds=1", "train.local_epochs=1"]


def fedcurate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulations.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
    )


def test_simulate_writes_the_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = fedcurate("simulate", *SMALL, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert f"report: {run_dir / 'report.html'}" in result.stdout
    assert "[round 1/1]" in result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["rounds_completed"] == 1


def test_multirun_sweeps(tmp_path: Path) -> None:
    result = fedcurate("simulate", "-m", *SMALL, "seed=0,1", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    summaries = sorted(tmp_path.glob("*/summary.json"))
    assert len(summaries) == 2
    seeds = {json.loads(p.read_text())["config"]["seed"] for p in summaries}
    assert seeds == {0, 1}


def test_unknown_key_fails_before_running(tmp_path: Path) -> None:
    result = fedcurate("simulate", "num_rnds=3", f"hydra.run.dir={tmp_path / 'x'}")
    assert result.returncode != 0
    assert "num_rnds" in result.stderr + result.stdout
    assert not (tmp_path / "x" / "summary.json").exists()


def test_help_shows_examples() -> None:
    top = fedcurate("--help")
    assert top.returncode == 0
    assert "simulate" in top.stdout
    assert "example" in top.stdout
    simulate = fedcurate("simulate", "--help")
    assert simulate.returncode == 0
    assert "fedcurate simulate -m seed=0,1,2" in simulate.stdout


def test_unknown_command_is_an_error() -> None:
    result = fedcurate("simulat")
    assert result.returncode == 2
    assert "unknown command 'simulat'" in result.stderr
