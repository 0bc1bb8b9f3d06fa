"""``fedcurate tune``: Optuna over Hydra overrides, resumable, under a privacy budget.

Optuna drives the search directly (the Hydra Optuna sweeper pins ``optuna<3``,
which does not install with our stack): each trial turns its suggested values
into overrides, composes the config with the same function as every other entry
point, and runs an ordinary simulation in its own run directory. Trials maximise
the accuracy of the selected model on the curator's validation split (never the
test set). The study lives in SQLite, so an interrupted study resumes, and an
interrupted trial re-runs from its own checkpoint: run directories are named by
the trial's overrides.

Every trial trains on the owners' data: a study of k trials can cost each owner
up to k times the per-trial budget (basic composition). The leaderboard reports
that total next to the per-trial ε.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shlex
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState
from tqdm import tqdm

from fedcurate.config import Config, ConfigError, HpoConfig, HpoParam, compose_config
from fedcurate.io import atomic_write_json, atomic_write_text
from simulations.runner import run_simulation

#: Trials that count toward the budget; a FAIL is an interruption or an error that
#: stopped the study, and its parameters are queued again on resume.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class TrialOutcome:
    """What one trial achieved, as stored in the study's user attributes."""

    validation_accuracy: float
    test_accuracy: float | None
    max_epsilon: float | None
    run_dir: str


def suggest(trial: Trial, key: str, space: HpoParam) -> Any:
    """Draw one override value from its search dimension."""
    if space.type == "categorical":
        if not space.choices:
            raise ConfigError(f"hpo.params.{key}: categorical needs choices")
        return trial.suggest_categorical(key, space.choices)
    if space.low is None or space.high is None:
        raise ConfigError(f"hpo.params.{key}: {space.type} needs low and high")
    if space.type == "int":
        return trial.suggest_int(key, int(space.low), int(space.high), log=space.log)
    if space.type == "float":
        return trial.suggest_float(key, space.low, space.high, log=space.log)
    raise ConfigError(f"hpo.params.{key}: type '{space.type}' is not float, int or categorical")


def trial_overrides(base: list[str], params: dict[str, Any]) -> list[str]:
    """The base overrides with the trial's values appended (later ones win)."""
    return [*base, *(f"{key}={json.dumps(value)}" for key, value in sorted(params.items()))]


def _run_dir(out: Path, overrides: list[str]) -> Path:
    digest = hashlib.sha256(shlex.join(overrides).encode()).hexdigest()[:12]
    return out / "trials" / f"trial-{digest}"


def _baseline_params(config: Config, hpo: HpoConfig) -> dict[str, Any]:
    """The base config's own values of the searched keys (the reference trial)."""
    from omegaconf import OmegaConf

    structured = OmegaConf.structured(config)
    return {key: OmegaConf.select(structured, key) for key in hpo.params}


def run_trial(trial: Trial, base: list[str], hpo: HpoConfig, out: Path) -> float:
    """One trial: suggest, check the budget, simulate once per seed, record the outcome."""
    params = {key: suggest(trial, key, space) for key, space in hpo.params.items()}
    overrides = trial_overrides(base, params)
    config = compose_config(overrides)
    private = config.privacy.name != "none"
    if private and hpo.max_epsilon is not None and config.privacy.epsilon > hpo.max_epsilon:
        raise optuna.TrialPruned(
            f"privacy.epsilon={config.privacy.epsilon} exceeds hpo.max_epsilon={hpo.max_epsilon}"
        )
    seeds: list[int | None] = list(hpo.seeds) if hpo.seeds else [None]
    outcomes = [_simulate(overrides, seed, out) for seed in seeds]
    outcome = TrialOutcome(
        validation_accuracy=statistics.mean(o.validation_accuracy for o in outcomes),
        test_accuracy=_mean_or_none([o.test_accuracy for o in outcomes]),
        max_epsilon=max(
            (o.max_epsilon for o in outcomes if o.max_epsilon is not None), default=None
        ),
        run_dir=outcomes[0].run_dir,
    )
    if hpo.max_epsilon is not None and (outcome.max_epsilon or 0.0) > hpo.max_epsilon:
        raise optuna.TrialPruned(f"owners spent ε={outcome.max_epsilon} > {hpo.max_epsilon}")
    for name, value in vars(outcome).items():
        trial.set_user_attr(name, value)
    trial.set_user_attr("overrides", overrides)
    return outcome.validation_accuracy


def _simulate(overrides: list[str], seed: int | None, out: Path) -> TrialOutcome:
    """One run of a trial (``seed`` appended when the study averages over seeds)."""
    args = overrides if seed is None else [*overrides, f"seed={seed}"]
    run_dir = _run_dir(out, args)
    with contextlib.redirect_stderr(io.StringIO()):
        summary = run_simulation(compose_config(args), args, run_dir)
    return _outcome(summary, run_dir)


def _outcome(summary: dict[str, Any], run_dir: Path) -> TrialOutcome:
    best = summary["best"]
    if best.get("validation_accuracy") is None:
        raise ConfigError(
            "tuning needs a curator validation split: set dataset.validation_fraction > 0"
        )
    privacy = summary.get("privacy") or {}
    return TrialOutcome(
        validation_accuracy=float(best["validation_accuracy"]),
        test_accuracy=best.get("accuracy"),
        max_epsilon=privacy.get("max_epsilon"),
        run_dir=str(run_dir),
    )


def _mean_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.mean(known) if known else None


def open_study(out: Path, hpo: HpoConfig, base_config: Config) -> optuna.Study:
    """Create or resume the study; interrupted trials are failed and queued again."""
    out.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=f"fedcurate-{hpo.name}",
        storage=f"sqlite:///{out / 'study.db'}",
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=hpo.seed),
    )
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(stale.number, state=TrialState.FAIL)
        study.enqueue_trial(stale.params)
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(_baseline_params(base_config, hpo), user_attrs={"baseline": True})
    return study


def tune(base: list[str], out: Path) -> optuna.Study:
    """Run (or resume) the study configured by ``hpo=...`` in ``base``."""
    config = compose_config(base)
    hpo = config.hpo
    if not hpo.params:
        raise ConfigError("hpo: no search space; choose one, e.g. hpo=local_training")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(out, hpo, config)
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    with tqdm(total=hpo.trials, initial=min(done, hpo.trials), desc="trials", unit="trial") as bar:
        while len(study.get_trials(deepcopy=False, states=FINISHED)) < hpo.trials:
            study.optimize(lambda t: run_trial(t, base, hpo, out), n_trials=1)
            bar.update(1)
    write_leaderboard(study, hpo, out)
    return study


def write_leaderboard(study: optuna.Study, hpo: HpoConfig, out: Path) -> None:
    """``leaderboard.md``/``.json`` and ``best_overrides.txt`` (ready to run)."""
    complete = sorted(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
        key=lambda t: -float(t.value or 0.0),
    )
    rows = [_row(t) for t in complete]
    spent = [r["max_epsilon"] for r in rows if r["max_epsilon"] is not None]
    report = {
        "study": study.study_name,
        "trials": rows,
        "pruned": len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))),
        "privacy_note": _privacy_note(spent),
    }
    atomic_write_json(out / "leaderboard.json", report)
    lines = [f"# Tuning leaderboard ({study.study_name})", "", _privacy_note(spent), ""]
    lines += ["| rank | validation acc | test acc | max ε | params |", "|---|---|---|---|---|"]
    for rank, row in enumerate(rows, start=1):
        marker = " (baseline)" if row["baseline"] else ""
        lines.append(
            f"| {rank} | {row['validation_accuracy']:.4f} | {row['test_accuracy']} | "
            f"{row['max_epsilon']} | `{row['params']}`{marker} |"
        )
    atomic_write_text(out / "leaderboard.md", "\n".join(lines) + "\n")
    if rows:
        atomic_write_text(out / "best_overrides.txt", shlex.join(rows[0]["overrides"]) + "\n")


def _row(trial: FrozenTrial) -> dict[str, Any]:
    attrs = trial.user_attrs
    return {
        "number": trial.number,
        "validation_accuracy": trial.value,
        "test_accuracy": attrs.get("test_accuracy"),
        "max_epsilon": attrs.get("max_epsilon"),
        "params": trial.params,
        "overrides": attrs.get("overrides", []),
        "run_dir": attrs.get("run_dir"),
        "baseline": bool(attrs.get("baseline")),
    }


def _privacy_note(spent: list[float]) -> str:
    if not spent:
        return "No differential privacy in these trials."
    return (
        f"Each trial spent at most ε={max(spent):.3f} per owner; the {len(spent)} trials "
        f"together may cost an owner up to ε={sum(spent):.3f} (basic composition)."
    )


def main(argv: list[str] | None = None) -> int:
    """``fedcurate tune [OVERRIDES...] hpo=NAME [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="fedcurate tune",
        description="Tune hyperparameters with Optuna over Hydra overrides (resumable).",
        epilog="example: fedcurate tune hpo=local_training num_rounds=10 --out tuning/lt",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, including hpo=NAME")
    parser.add_argument("--out", type=Path, default=Path("tuning"), help="study directory")
    args = parser.parse_args(argv)
    study = tune(list(args.overrides), args.out)
    best = study.best_trial
    print(f"best validation accuracy {best.value:.4f} with {best.params}")
    print(f"leaderboard: {args.out / 'leaderboard.md'}")
    print(
        f"run it:      fedcurate simulate {(args.out / 'best_overrides.txt').read_text().strip()}"
    )
    return 0
