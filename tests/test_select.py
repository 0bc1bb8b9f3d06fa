"""``fedcurate select``: rank finished runs by validation accuracy, never by test accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fedcurate.config import compose_config
from simulations.runner import run_simulation
from simulations.select_runs import find_runs, rank, read_choice, select_main


def fake_run(
    run_dir: Path,
    *,
    validation: float | None,
    test: float,
    epsilon: float | None = None,
    status: str = "completed",
    overrides: tuple[str, ...] = (),
) -> Path:
    """A run directory with just the files ``select`` reads."""
    run_dir.mkdir(parents=True)
    summary: dict[str, Any] = {
        "status": status,
        "best": {
            "round": 3,
            "accuracy": test,
            "selected_by": "validation" if validation is not None else "test",
            "validation_accuracy": validation,
        },
        "privacy": None if epsilon is None else {"max_epsilon": epsilon},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "overrides.txt").write_text("\n".join(overrides) + "\n")
    return run_dir


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A sweep directory of four runs; the best by test accuracy is not the best by validation."""
    root = tmp_path / "sweep"
    fake_run(root / "0", validation=0.90, test=0.99, epsilon=3.0, overrides=("lr=0.1", "seed=0"))
    fake_run(root / "1", validation=0.95, test=0.91, epsilon=8.0, overrides=("lr=0.3", "seed=0"))
    fake_run(root / "2", validation=0.93, test=0.92, epsilon=2.0, overrides=("lr=0.5", "seed=0"))
    fake_run(root / "3", validation=0.99, test=0.99, status="running", overrides=("lr=1", "seed=0"))
    (root / "multirun.yaml").write_text("not a run\n")
    return root


def test_ranks_by_validation_accuracy_not_test(sweep: Path, capsys: pytest.CaptureFixture) -> None:
    assert select_main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert f"best: {sweep / '1'}" in out
    rows = [
        line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| rank")
    ]
    assert [row.split(" | ")[1] for row in rows] == [str(sweep / n) for n in ("1", "2", "0")]
    # What the sweep varied is shown; what every run shares is not.
    assert "lr=0.3" in rows[0]
    assert "seed=0" not in rows[0]
    assert f"not ranked: {sweep / '3'}: not completed (running)" in out


def test_a_privacy_budget_leaves_out_costlier_runs(sweep: Path) -> None:
    choices = [read_choice(run) for run in find_runs([sweep])]
    assert [c.run_dir.name for c in rank(choices, max_epsilon=5.0)] == ["2", "0"]
    assert rank(choices, max_epsilon=1.0) == []


def test_runs_without_validation_are_not_ranked(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", validation=None, test=0.99)
    assert rank([read_choice(run)], max_epsilon=None) == []
    assert select_main([str(run)]) == 1


def test_json_output_and_single_run_dirs(sweep: Path, capsys: pytest.CaptureFixture) -> None:
    assert select_main([str(sweep / "0"), str(sweep / "2"), "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert [Path(r["run_dir"]).name for r in ranked] == ["2", "0"]
    assert ranked[0]["max_epsilon"] == 2.0


def test_a_path_without_runs_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        select_main([str(tmp_path)])
    assert stopped.value.code == 2


def test_selects_among_real_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for lr in ("0.01", "0.1"):
        args = ["num_clients=3", "num_rounds=2", "train.local_epochs=1", f"train.lr={lr}"]
        run_simulation(compose_config(args), args, tmp_path / f"lr{lr}")
    assert select_main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    named = Path(out.split("best: ")[1].split(" (")[0])
    choices = [read_choice(run) for run in find_runs([tmp_path])]
    top = max(c.validation_accuracy or 0.0 for c in choices)
    assert read_choice(named).validation_accuracy == top
    assert "train.lr=" in out
