"""``fedcurate tune``: finds a better config, resumes, and respects the ε constraint."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import optuna
import pytest

import simulations.tune
from fedcurate.config import compose_config
from simulations.tune import tune

# A deliberately poor base learning rate: the study must find better.
BASE = [
    "num_clients=3",
    "num_rounds=2",
    "train.local_epochs=1",
    "train.lr=0.01",
    "hpo=local_training",
    "hpo.trials=4",
]


def test_tune_beats_the_baseline_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = simulations.tune.run_simulation
    calls: list[int] = []

    def interrupted_third_trial(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed by the test")
        return real(*args, **kwargs)

    monkeypatch.setattr(simulations.tune, "run_simulation", interrupted_third_trial)
    with pytest.raises(KeyboardInterrupt):
        tune(BASE, tmp_path)
    monkeypatch.setattr(simulations.tune, "run_simulation", real)
    study = tune(BASE, tmp_path)

    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(complete) == 4
    assert len(failed) == 1
    assert failed[0].params in [t.params for t in complete]  # the interrupted trial re-ran
    baseline = next(t for t in complete if t.user_attrs.get("baseline"))
    assert baseline.params["train.lr"] == 0.01
    assert baseline.value is not None
    assert study.best_value > baseline.value

    leaderboard = json.loads((tmp_path / "leaderboard.json").read_text())
    assert leaderboard["trials"][0]["validation_accuracy"] == study.best_value
    best = shlex.split((tmp_path / "best_overrides.txt").read_text())
    assert compose_config(best).train.lr == study.best_params["train.lr"]


def test_trials_over_the_privacy_budget_are_refused(tmp_path: Path) -> None:
    overrides = [
        "num_clients=2",
        "num_rounds=1",
        "train.local_epochs=1",
        "privacy=dp_sgd",
        "hpo=dp_sgd",
        "hpo.trials=2",
        "hpo.max_epsilon=4.0",
        "privacy.epsilon=6.0",
    ]
    study = tune(overrides, tmp_path)
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    assert len(pruned) == 2
    assert not (tmp_path / "trials").exists()  # refused before touching owner data
