"""``fedcurate evaluate``, ``fedcurate inspect-data`` and ``fedcurate annotate``.

* ``evaluate``: how good a run's model is on held-out data (the run's own test
  split, rebuilt from its config, or a site file): accuracy, per-class metrics,
  calibration with a reliability diagram, confusion matrix, fairness across owners.
* ``inspect-data``: a data owner checks its own file for likely label errors,
  duplicates, outliers and class imbalance.
* ``annotate``: a data owner gets calibrated label proposals for its unlabelled rows.

The two owner commands run at the site and send nothing anywhere. All three load
a run's model through :func:`load_global_model`, which names the file at fault
when a run directory or checkpoint is missing or unreadable. Checkpoints are
pickles, and a site may receive one from elsewhere, so they are read with an
unpickler that only builds the few types a checkpoint holds.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from flwr.app import Array, ArrayRecord
from torch import nn

from fedcurate.config import Config, ConfigError, to_config
from fedcurate.data import ArrayDataset, SiteDataError, build_federation, load_site_file, owner_name
from fedcurate.data.federation import DatasetSpec, dataset_spec
from fedcurate.data.sites import UNLABELLED
from fedcurate.evaluation import (
    OwnerFairness,
    draw_reliability_diagram,
    evaluate_model,
    evaluation_markdown,
    owner_fairness,
    predict_logits,
)
from fedcurate.io import atomic_write_json, read_json
from fedcurate.models import build_model, load_record
from fedcurate.quality import (
    InspectionSettings,
    TemperatureCalibration,
    annotate,
    fine_tune_config,
    inspect_site,
    write_inspection,
    write_proposals_csv,
)
from fedcurate.quality.inspection import FINE_TUNE_EPOCHS, FINE_TUNE_LR
from server.checkpoint import ServerState

CHECKPOINT_KINDS = ("best", "final")
BEST_FILE = "best.pkl"


class CheckpointError(ValueError):
    """A run directory or checkpoint is missing, unreadable or does not fit the run."""


@dataclass(frozen=True)
class GlobalModel:
    """A run's model with the weights of one checkpoint, and where they came from."""

    model: nn.Module
    config: Config
    spec: DatasetSpec
    run_dir: Path
    checkpoint: Path
    kind: str
    round: int


# ------------------------------------------------------------- checkpoints
class _CheckpointUnpickler(pickle.Unpickler):
    """Builds only what ``best.pkl`` and ``round-*.pkl`` contain; anything else is refused.

    A plain ``pickle.load`` runs whatever callable a file names, so a
    checkpoint from an untrusted source could execute code at the site.
    """

    ALLOWED = frozenset(
        {
            (ArrayRecord.__module__, "ArrayRecord"),
            # ArrayRecord's pickled state re-validates its items with these.
            (ArrayRecord.__module__, "_check_key"),
            (ArrayRecord.__module__, "_check_value"),
            (Array.__module__, "Array"),
            (ServerState.__module__, ServerState.__qualname__),
            # Strategy states (FedAdam moments, ...) hold numpy arrays.
            ("numpy", "dtype"),
            ("numpy", "ndarray"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load '{module}.{name}'")
        return super().find_class(module, name)


def _unpickle(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            return _CheckpointUnpickler(handle).load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({error})") from error
    except (IndexError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: corrupt checkpoint ({error})") from error


def checkpoint_file(run_dir: Path, kind: str) -> Path:
    """``checkpoints/best.pkl`` or the last ``checkpoints/round-*.pkl`` of a run."""
    directory = run_dir / "checkpoints"
    if kind == "best":
        path = directory / BEST_FILE
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint (the run kept no best model)")
        return path
    rounds = sorted(directory.glob("round-*.pkl")) if directory.is_dir() else []
    if not rounds:
        raise CheckpointError(f"{directory}: no round-*.pkl checkpoint (no round completed)")
    return rounds[-1]


def read_checkpoint(path: Path) -> tuple[int, ArrayRecord]:
    """``(round, weights)`` from a best-model or a per-round checkpoint."""
    payload = _unpickle(path)
    if isinstance(payload, dict) and isinstance(payload.get("state"), ServerState):
        state: ServerState = payload["state"]
        return state.round, state.arrays
    if isinstance(payload, dict) and isinstance(payload.get("arrays"), ArrayRecord):
        return int(payload.get("round", 0)), payload["arrays"]
    raise CheckpointError(f"{path}: not a fedcurate checkpoint (no model weights inside)")


def read_run_config(run_dir: Path) -> Config:
    """The resolved config a run recorded in its ``summary.json``."""
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    path = run_dir / "summary.json"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: missing; not a fedcurate run directory (or no round has completed)"
        )
    try:
        summary = read_json(path)
    except (OSError, ValueError) as error:
        raise CheckpointError(str(error)) from error
    if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
        raise CheckpointError(f"{path}: has no 'config' (not a fedcurate run summary)")
    return to_config(summary["config"])


def load_global_model(path: Path, kind: str | None = None) -> GlobalModel:
    """A run's model with checkpointed weights.

    Parameters
    ----------
    path : Path
        A run directory, or a checkpoint file inside its ``checkpoints/``.
    kind : {"best", "final"}, optional
        Which checkpoint of a run directory: the model selected on the
        validation split (default) or the last round's. Not allowed with a file.

    Raises
    ------
    CheckpointError
        Missing or unreadable run directory, summary or checkpoint, or weights
        that do not fit the run's model; the message names the file.
    """
    if path.is_file():
        if kind is not None:
            raise CheckpointError(
                f"{path}: --checkpoint chooses within a run directory, not a file"
            )
        run_dir, kind = path.parent.parent, _kind_of(path)
    else:
        run_dir, kind = path, kind or "best"
    config = read_run_config(run_dir)
    checkpoint = path if path.is_file() else checkpoint_file(run_dir, kind)
    spec = dataset_spec(config)
    model = build_model(config.model, spec, config.seed)
    round_number, arrays = read_checkpoint(checkpoint)
    try:
        load_record(model, arrays)
    except (RuntimeError, KeyError) as error:
        raise CheckpointError(
            f"{checkpoint}: weights do not fit the run's {config.model.name} model ({error})"
        ) from error
    return GlobalModel(model, config, spec, run_dir, checkpoint, kind, round_number)


def _kind_of(checkpoint: Path) -> str:
    return "best" if checkpoint.name == BEST_FILE else "round"


def _model_record(loaded: GlobalModel) -> dict[str, Any]:
    return {
        "run_dir": str(loaded.run_dir),
        "checkpoint": str(loaded.checkpoint),
        "kind": loaded.kind,
        "round": loaded.round,
    }


def load_site(path: Path, loaded: GlobalModel, label_column: str, unlabelled: bool) -> ArrayDataset:
    """A site file checked against the run's task (classes and input shape)."""
    return load_site_file(
        path,
        num_classes=loaded.spec.num_classes,
        input_shape=loaded.spec.input_shape,
        label_column=label_column,
        allow_unlabelled=unlabelled,
    )


# ---------------------------------------------------------------- commands
Command = Callable[[list[str]], int]


def _fails_cleanly(command: Command) -> Command:
    """Report a missing or bad input in one line naming it, with exit status 2."""

    @wraps(command)
    def run(argv: list[str]) -> int:
        try:
            return command(argv)
        except (CheckpointError, SiteDataError, ConfigError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return run


def _parser(prog: str, description: str, example: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        choices=CHECKPOINT_KINDS,
        default=None,
        help="for a run directory: the model selected on validation (best, default) "
        "or the last round's (final)",
    )
    parser.add_argument(
        "--label-column", default="label", help="label column of a CSV file (default: label)"
    )


@_fails_cleanly
def evaluate_main(argv: list[str]) -> int:
    """``fedcurate evaluate RUN_DIR``: metrics of a run's model on held-out data."""
    parser = _parser(
        "fedcurate evaluate",
        "Evaluate a run's best or final model on held-out data: the run's own test "
        "split (default) or a CSV/NPZ site file. Prints JSON and a readable table.",
        "fedcurate evaluate outputs/2026-11-28/12-00-00 --checkpoint final --out eval.json",
    )
    parser.add_argument("run_dir", type=Path, help="a run directory (or a checkpoint file in one)")
    parser.add_argument("--data", type=Path, help="held-out CSV/NPZ file (site schema)")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    parser.add_argument(
        "--plot",
        type=Path,
        help="reliability diagram PNG (default: beside --out, else RUN_DIR/evaluation/)",
    )
    _add_model_arguments(parser)
    args = parser.parse_args(argv)
    loaded = load_global_model(args.run_dir, args.checkpoint)
    data, source = _held_out(loaded, args.data, args.label_column)
    report = evaluate_model(loaded.model, data)
    fairness = _fairness(loaded)
    plot = args.plot or _default_plot(loaded, args.out, args.data)
    title = f"{loaded.kind} model (round {loaded.round}) on {source}"
    draw_reliability_diagram(report.calibration, plot, title)
    record = {
        "model": _model_record(loaded),
        "data": source,
        **asdict(report),
        "reliability_diagram": str(plot),
        "fairness": asdict(fairness) if fairness else None,
    }
    table = evaluation_markdown(report, fairness, title=f"Evaluation of the {title}")
    if args.out:
        atomic_write_json(args.out, record)
        print(f"{table}\nJSON: {args.out}\nreliability diagram: {plot}")
    else:
        print(json.dumps(record, indent=2))
        print(f"{table}\nreliability diagram: {plot}", file=sys.stderr)
    return 0


def _held_out(
    loaded: GlobalModel, data: Path | None, label_column: str
) -> tuple[ArrayDataset, str]:
    """The user's file, or the run's central test split rebuilt from its config."""
    if data is not None:
        return load_site(data, loaded, label_column, unlabelled=False), str(data)
    if loaded.config.dataset.name == "site":
        raise ConfigError(
            f"{loaded.run_dir}: the run trained on site files and has no central test split; "
            "pass --data FILE"
        )
    return build_federation(loaded.config).test, "the run's central test split"


def _fairness(loaded: GlobalModel) -> OwnerFairness | None:
    """Accuracy on every simulated owner's test split (``None`` for site-file runs or none held)."""
    if loaded.config.dataset.name == "site":
        return None
    owners = build_federation(loaded.config).owners
    if not any(len(owner.test) for owner in owners):
        return None
    return owner_fairness(loaded.model, {owner_name(o.index): o.test for o in owners})


def _default_plot(loaded: GlobalModel, out: Path | None, data: Path | None) -> Path:
    if out is not None:
        return out.with_name(f"{out.stem}-reliability.png")
    return (
        loaded.run_dir
        / "evaluation"
        / f"reliability-{loaded.kind}-{data.stem if data else 'test'}.png"
    )


@_fails_cleanly
def inspect_data_main(argv: list[str]) -> int:
    """``fedcurate inspect-data``: label errors, duplicates, outliers, balance of a site file."""
    parser = _parser(
        "fedcurate inspect-data",
        "Check a site's own data with the global model, locally (nothing is sent): likely "
        "label errors by confident learning on out-of-sample predictions, exact and near "
        "duplicates, outliers and class balance. Writes inspection.json, inspection.md and "
        "flagged_rows.csv.",
        "fedcurate inspect-data --data site.csv --model outputs/2026-11-28/12-00-00 --out review/",
    )
    parser.add_argument("--data", type=Path, required=True, help="the site's CSV/NPZ file")
    parser.add_argument(
        "--model", type=Path, required=True, help="a run directory or a checkpoint file in one"
    )
    parser.add_argument("--out", type=Path, help="report directory (default: DATA-inspection/)")
    parser.add_argument("--folds", type=int, default=5, help="K of the K-fold fine-tuning")
    parser.add_argument(
        "--epochs",
        type=int,
        default=FINE_TUNE_EPOCHS,
        help="fine-tuning epochs per fold (0: the global model's own predictions)",
    )
    parser.add_argument("--lr", type=float, default=FINE_TUNE_LR, help="fine-tuning learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and shuffling")
    _add_model_arguments(parser)
    args = parser.parse_args(argv)
    loaded = load_global_model(args.model, args.checkpoint)
    data = load_site(args.data, loaded, args.label_column, unlabelled=True)
    settings = InspectionSettings(
        fine_tune=fine_tune_config(loaded.config.train, epochs=args.epochs, lr=args.lr),
        num_folds=args.folds,
        seed=args.seed,
    )
    inspection = inspect_site(loaded.model, data, settings)
    out_dir = args.out or args.data.with_name(f"{args.data.stem}-inspection")
    written = write_inspection(inspection, out_dir, str(args.data))
    found = inspection.label_issues
    print(
        f"{len(data)} rows: "
        + (f"{len(found.issues)} likely label errors" if found else "label errors not checked")
        + f", {len(inspection.duplicates)} exact duplicate groups, "
        f"{len(inspection.near_duplicates)} near-duplicate pairs, "
        f"{len(inspection.outliers)} outliers\n"
        f"report: {written['markdown']}\nflagged rows: {written['csv']}\nJSON: {written['json']}"
    )
    return 0


@_fails_cleanly
def annotate_main(argv: list[str]) -> int:
    """``fedcurate annotate``: calibrated label proposals for a site's unlabelled rows."""
    parser = _parser(
        "fedcurate annotate",
        "Propose labels for the unlabelled rows of a site file (empty label cell in CSV, "
        "-1 in NPZ) with the global model, locally. Confidences are temperature-scaled on "
        "the file's labelled rows; ECE before/after is cross-fitted on them.",
        "fedcurate annotate --data site.csv --model outputs/2026-11-28/12-00-00 --out todo.csv",
    )
    parser.add_argument("--data", type=Path, required=True, help="the site's CSV/NPZ file")
    parser.add_argument(
        "--model", type=Path, required=True, help="a run directory or a checkpoint file in one"
    )
    parser.add_argument("--out", type=Path, help="proposals CSV (default: DATA-proposals.csv)")
    parser.add_argument("--folds", type=int, default=5, help="folds of the calibration check")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    _add_model_arguments(parser)
    args = parser.parse_args(argv)
    loaded = load_global_model(args.model, args.checkpoint)
    data = load_site(args.data, loaded, args.label_column, unlabelled=True)
    if not (data.y == UNLABELLED).any():
        raise SiteDataError(
            f"{args.data}: no unlabelled rows (leave the label cell empty in CSV, -1 in NPZ)"
        )
    annotation = annotate(predict_logits(loaded.model, data.x), data.y, args.folds, args.seed)
    out = args.out or args.data.with_name(f"{args.data.stem}-proposals.csv")
    write_proposals_csv(out, annotation.proposals)
    calibration = annotation.calibration
    print(
        json.dumps(
            {
                "model": _model_record(loaded),
                "data": str(args.data),
                "unlabelled_rows": len(annotation.proposals),
                "expected_accuracy": annotation.expected_accuracy,
                "calibration": asdict(calibration),
                "proposals": str(out),
            },
            indent=2,
        )
    )
    print(_calibration_sentence(calibration), file=sys.stderr)
    return 0


def _calibration_sentence(calibration: TemperatureCalibration) -> str:
    if calibration.ece_after is None:
        return (
            f"confidences are NOT calibrated: {calibration.num_rows} labelled row(s) are too few "
            "to fit a temperature"
        )
    return (
        f"temperature {calibration.temperature:.3f} fitted on {calibration.num_rows} labelled "
        f"rows; ECE {calibration.ece_before:.4f} -> {calibration.ece_after:.4f} "
        f"({calibration.num_folds}-fold cross-fitted)"
    )
