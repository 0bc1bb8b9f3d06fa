"""``fedcurate select RUN_DIR...``: pick the best of several finished runs.

Runs are ranked by the validation accuracy of the model each run selected
(``summary.json`` ``best.validation_accuracy``, measured on the curator's
validation split), never by test accuracy: choosing on the test set would leak
it into the choice and make the reported test accuracy optimistic. The table
also shows the selected model's test accuracy and the privacy cost
(``privacy.max_epsilon``, the largest ε any owner spent); ``--max-epsilon``
leaves out runs that spent more.

An argument is a run directory (it holds ``summary.json``) or a directory of
runs, such as a Hydra multirun sweep, whose sub-directories are runs.

    fedcurate select multirun/2026-11-28/12-00-00
    fedcurate select outputs/a outputs/b --max-epsilon 8
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcurate.reporting.outputs import OVERRIDES_FILE, SUMMARY_FILE, RunOutputs


@dataclass(frozen=True)
class RunChoice:
    """What matters about one finished run when choosing among runs.

    Attributes
    ----------
    run_dir : Path
        The run directory.
    status : str
        ``completed``, ``running`` or ``stopped: ...``.
    validation_accuracy : float or None
        Validation accuracy of the run's selected model (``None``: the run had
        no validation split and selected on the test set).
    test_accuracy : float or None
        Test accuracy of the selected model.
    selected_round : int or None
        Round of the selected model.
    max_epsilon : float or None
        Largest ε spent by any owner (``None``: no DP).
    overrides : tuple[str, ...]
        The overrides the run was started with.
    """

    run_dir: Path
    status: str
    validation_accuracy: float | None
    test_accuracy: float | None
    selected_round: int | None
    max_epsilon: float | None
    overrides: tuple[str, ...]


def read_choice(run_dir: Path) -> RunChoice:
    """The :class:`RunChoice` of a run directory holding ``summary.json``."""
    outputs = RunOutputs(run_dir)
    summary: dict[str, Any] = outputs.read_summary()
    best = summary.get("best") or {}
    privacy = summary.get("privacy") or {}
    has_overrides = (run_dir / OVERRIDES_FILE).is_file()
    overrides = tuple(outputs.read_overrides()) if has_overrides else ()
    return RunChoice(
        run_dir=run_dir,
        status=str(summary.get("status", "unknown")),
        validation_accuracy=best.get("validation_accuracy"),
        test_accuracy=best.get("accuracy"),
        selected_round=best.get("round"),
        max_epsilon=privacy.get("max_epsilon"),
        overrides=overrides,
    )


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Run directories named by ``paths``: each one itself, or its sub-directories that are runs.

    Raises
    ------
    ValueError
        A path that is neither a run nor holds any run.
    """
    runs: list[Path] = []
    for path in paths:
        if (path / SUMMARY_FILE).is_file():
            runs.append(path)
            continue
        children = sorted(p for p in path.glob("*") if (p / SUMMARY_FILE).is_file())
        if not children:
            raise ValueError(f"{path}: neither a finished run nor a directory of runs")
        runs.extend(children)
    return runs


def eligibility(choice: RunChoice, max_epsilon: float | None) -> str | None:
    """Why ``choice`` cannot be selected, or ``None`` when it can."""
    if choice.status != "completed":
        return f"not completed ({choice.status})"
    if choice.validation_accuracy is None:
        return "no validation accuracy (the run had no validation split)"
    if max_epsilon is not None and (choice.max_epsilon or 0.0) > max_epsilon:
        return f"spent ε = {choice.max_epsilon:.3g} > {max_epsilon:g}"
    return None


def rank(choices: Sequence[RunChoice], max_epsilon: float | None) -> list[RunChoice]:
    """Eligible runs, best validation accuracy first.

    Ties go to the smaller privacy cost, then to the earlier selected round (the
    cheaper run to reproduce), then to the directory name, so the order is total.
    """
    eligible = [c for c in choices if eligibility(c, max_epsilon) is None]
    return sorted(
        eligible,
        key=lambda c: (
            -(c.validation_accuracy or 0.0),
            c.max_epsilon if c.max_epsilon is not None else 0.0,
            c.selected_round or 0,
            str(c.run_dir),
        ),
    )


def distinguishing_overrides(choices: Sequence[RunChoice]) -> dict[Path, str]:
    """Per run, the overrides not shared by every run (what the sweep varied)."""
    shared = set.intersection(*(set(c.overrides) for c in choices)) if choices else set()
    return {
        c.run_dir: shlex.join([o for o in c.overrides if o not in shared]) or "—" for c in choices
    }


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render(choices: Sequence[RunChoice], max_epsilon: float | None) -> list[str]:
    """The ranking as a Markdown table, then the ineligible runs and the verdict."""
    ranked = rank(choices, max_epsilon)
    varied = distinguishing_overrides(choices)
    lines = [
        "| rank | run | overrides | validation acc | test acc | round | max ε |",
        "|---|---|---|---|---|---|---|",
    ]
    for position, choice in enumerate(ranked, start=1):
        lines.append(
            f"| {position} | {choice.run_dir} | {varied[choice.run_dir]} | "
            f"{_number(choice.validation_accuracy)} | {_number(choice.test_accuracy)} | "
            f"{choice.selected_round} | {_number(choice.max_epsilon, 2)} |"
        )
    for choice in choices:
        reason = eligibility(choice, max_epsilon)
        if reason is not None:
            lines.append(f"not ranked: {choice.run_dir}: {reason}")
    if ranked:
        best = ranked[0]
        lines.append(
            f"best: {best.run_dir} (validation accuracy {_number(best.validation_accuracy)}, "
            f"test accuracy {_number(best.test_accuracy)}, max ε {_number(best.max_epsilon, 2)})"
        )
    else:
        lines.append("best: none of the runs can be selected")
    return lines


def select_main(argv: Sequence[str] | None = None) -> int:
    """``fedcurate select``: rank runs, print the table, name the best.

    Returns 0 when a best run was named and 1 when no run is eligible; a path
    that holds no run is a usage error (exit status 2).
    """
    parser = argparse.ArgumentParser(
        prog="fedcurate select",
        description=(
            "Rank finished runs by the validation accuracy of their selected model; "
            "show test accuracy and privacy cost; name the best."
        ),
        epilog="example: fedcurate select multirun/2026-11-28/12-00-00 --max-epsilon 8",
    )
    parser.add_argument("paths", type=Path, nargs="+", help="run directories or sweep directories")
    parser.add_argument(
        "--max-epsilon", type=float, default=None, help="leave out runs that spent more ε"
    )
    parser.add_argument("--json", action="store_true", help="print the ranking as JSON instead")
    args = parser.parse_args(argv)
    try:
        runs = find_runs(args.paths)
    except ValueError as error:
        parser.error(str(error))
    choices = [read_choice(run) for run in runs]
    ranked = rank(choices, args.max_epsilon)
    if args.json:
        print(json.dumps([_as_json(choice) for choice in ranked], indent=2))
    else:
        print("\n".join(render(choices, args.max_epsilon)))
    return 0 if ranked else 1


def _as_json(choice: RunChoice) -> dict[str, Any]:
    return {
        "run_dir": str(choice.run_dir),
        "validation_accuracy": choice.validation_accuracy,
        "test_accuracy": choice.test_accuracy,
        "selected_round": choice.selected_round,
        "max_epsilon": choice.max_epsilon,
        "overrides": list(choice.overrides),
    }
