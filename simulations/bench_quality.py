"""Does the data owner toolkit find wrong labels, and are its label proposals calibrated?

A global model is trained by a real simulation on digits (10 owners, FedAvg,
no DP, no encryption, no curator, clean data) and loaded from its run
directory exactly as ``fedcurate inspect-data`` / ``annotate`` load it (best
checkpoint, selected on the validation split). Then:

* ``label_errors``: a site file (written and re-read in the site schema) gets
  exactly 10 % of its labels moved to a uniformly drawn other class (seeded);
  :func:`fedcurate.quality.inspect_site` with the command's default settings
  flags rows; precision and recall against the injected rows. Sites: the central
  test split (360 rows, never trained on) and small sites of 150 rows drawn from
  it. ``--full`` adds owners whose *training* data carried ~10 % label noise
  during the federation (``corruption=label_noise``): the model has seen those
  wrong labels, as it would at a real site.
* ``fine_tune_sweep`` (full only): the sweep on the curator's validation split
  that chose the fine-tuning defaults, kept apart from the data reported above.
* ``duplicates_outliers``: copies, near copies and uniform-noise rows added to
  the test split; how many are found and how many clean rows are flagged.
* ``annotate``: labels hidden on half the test split (the other half labelled)
  and, in the realistic setting, each owner's own training rows labelled and its
  test rows hidden: accuracy of the proposals against the global model's, and
  ECE on the hidden rows before and after temperature scaling.

Printed as JSON lines, one per measurement, then one ``summary`` line per
scenario (means over seeds, and whether precision and recall reach 0.8).

    python -m simulations.bench_quality            # 20- and 50-round models, every scenario
    python -m simulations.bench_quality --quick    # 20-round model, fewer seeds
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from fedcurate.config import compose_config
from fedcurate.data import ArrayDataset, build_federation, load_site_file, write_site_file
from fedcurate.data.sites import UNLABELLED
from fedcurate.evaluation import expected_calibration_error, predict_logits, softmax
from fedcurate.quality import (
    Annotation,
    InspectionSettings,
    annotate,
    find_label_issues,
    fine_tune_config,
    inspect_site,
    out_of_fold_probabilities,
)
from fedcurate.seeding import numpy_rng
from simulations.owner_tools import GlobalModel, load_global_model
from simulations.runner import run_simulation

BASE = ["privacy=none", "crypto=none", "curator=none"]
CLEAN = [*BASE, "corruption=none"]
#: Three owners train on labels with ~10 % noise (the in-federation scenario).
NOISY_OWNERS = [0, 1, 2]
NOISY = [
    *BASE,
    "corruption=label_noise",
    f"corruption.owners={NOISY_OWNERS}",
    "corruption.rate=0.1",
]
ERROR_FRACTION = 0.1
SMALL_SITE_ROWS = 150
TARGET = 0.8
SWEEP = [(e, lr, m) for e in (1, 3, 10) for lr in (0.01, 0.05, 0.1) for m in (0.0, 0.9)]


def emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed (long runs show progress)."""
    print(json.dumps(record), flush=True)


def inject_label_errors(
    labels: np.ndarray, fraction: float, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``round(fraction n)`` labels moved to a uniformly drawn other class.

    Returns the noisy labels and the sorted rows that were changed.
    """
    rows = np.sort(rng.choice(len(labels), size=round(fraction * len(labels)), replace=False))
    noisy = labels.copy()
    noisy[rows] = (labels[rows] + rng.integers(1, num_classes, size=len(rows))) % num_classes
    return noisy, rows


def precision_recall(flagged: set[int], truth: set[int]) -> tuple[float, float]:
    """Precision (1.0 when nothing is flagged) and recall of ``flagged`` against ``truth``."""
    hits = len(flagged & truth)
    return hits / len(flagged) if flagged else 1.0, hits / len(truth) if truth else 1.0


def train_global_model(run_dir: Path, overrides: list[str]) -> GlobalModel:
    """Run (or continue, when ``run_dir`` holds a checkpoint) a simulation; load its best model."""
    summary = run_simulation(compose_config(overrides), overrides, run_dir)
    loaded = load_global_model(run_dir, "best")
    emit(
        {
            "stage": "global_model",
            "overrides": overrides,
            "final_test_accuracy": summary["final"]["accuracy"],
            "best_round": summary["best"]["round"],
            "best_test_accuracy": summary["best"]["accuracy"],
        }
    )
    return loaded


def as_site_file(data: ArrayDataset, path: Path, input_shape: tuple[int, ...]) -> ArrayDataset:
    """Write ``data`` in the site schema and read it back as the commands would."""
    write_site_file(path, data)
    return load_site_file(
        path, num_classes=data.num_classes, input_shape=input_shape, allow_unlabelled=True
    )


def label_error_trial(
    loaded: GlobalModel, site: ArrayDataset, truth: set[int], work: Path
) -> dict[str, Any]:
    """Inspect one site file; precision and recall of the flagged label errors."""
    site = as_site_file(site, work / "site.csv", loaded.spec.input_shape)
    settings = InspectionSettings(fine_tune=fine_tune_config(loaded.config.train))
    found = inspect_site(loaded.model, site, settings).label_issues
    assert found is not None
    flagged = {issue.row for issue in found.issues}
    precision, recall = precision_recall(flagged, truth)
    return {
        "rows": len(site),
        "wrong_labels": len(truth),
        "flagged": len(flagged),
        "precision": precision,
        "recall": recall,
        "estimated_noise_rate": found.estimated_noise_rate,
    }


def injected_sites(
    loaded: GlobalModel, seeds: range, rows: int | None
) -> Iterator[tuple[int, ArrayDataset, set[int]]]:
    """Test-split sites (all rows, or ``rows`` drawn per seed) with injected label errors."""
    test = build_federation(loaded.config).test
    for seed in seeds:
        rng = numpy_rng(seed, "bench-quality-site")
        site = test if rows is None else test.subset(np.sort(rng.choice(len(test), rows, False)))
        noisy, changed = inject_label_errors(site.y, ERROR_FRACTION, site.num_classes, rng)
        yield seed, site.with_labels(noisy), {int(r) for r in changed}


def label_error_scenario(
    loaded: GlobalModel, name: str, seeds: range, rows: int | None, work: Path
) -> None:
    """Every seed of one injected-error scenario, then its summary line."""
    trials = []
    for seed, site, truth in injected_sites(loaded, seeds, rows):
        trial = label_error_trial(loaded, site, truth, work)
        trials.append(trial)
        emit({"stage": "label_errors", "scenario": name, "seed": seed, **_model(loaded), **trial})
    summarise("label_errors", name, loaded, trials)


def in_federation_scenario(loaded: GlobalModel, work: Path) -> None:
    """Owners whose training labels were noisy during the federation inspect their own data."""
    federation = build_federation(loaded.config)
    trials = []
    for owner in NOISY_OWNERS:
        site = federation.owners[owner].train
        truth = set(np.flatnonzero(site.y != federation.clean_owners[owner].train.y).tolist())
        trial = label_error_trial(loaded, site, truth, work)
        trials.append(trial)
        emit({"stage": "label_errors", "scenario": "in_federation", "owner": owner, **trial})
    summarise("label_errors", "in_federation", loaded, trials)


def summarise(stage: str, name: str, loaded: GlobalModel, trials: list[dict[str, Any]]) -> None:
    """Means over trials and whether precision and recall both reach the target."""
    precision = float(np.mean([t["precision"] for t in trials]))
    recall = float(np.mean([t["recall"] for t in trials]))
    pooled_hits = sum(round(t["recall"] * t["wrong_labels"]) for t in trials)
    emit(
        {
            "stage": "summary",
            "of": stage,
            "scenario": name,
            **_model(loaded),
            "trials": len(trials),
            "mean_precision": precision,
            "mean_recall": recall,
            "min_precision": min(t["precision"] for t in trials),
            "min_recall": min(t["recall"] for t in trials),
            "pooled_recall": pooled_hits / max(sum(t["wrong_labels"] for t in trials), 1),
            "meets_target": precision >= TARGET and recall >= TARGET,
        }
    )


def _model(loaded: GlobalModel) -> dict[str, Any]:
    return {"model_round": loaded.round, "model_rounds_run": loaded.config.num_rounds}


def fine_tune_sweep(loaded: GlobalModel, seeds: range) -> None:
    """Precision and recall on the validation split for each fine-tuning schedule."""
    validation = build_federation(loaded.config).validation
    for epochs, lr, momentum in [(0, 0.0, 0.0), *SWEEP]:
        scores = []
        for seed in seeds:
            rng = numpy_rng(seed, "bench-quality-sweep")
            noisy, changed = inject_label_errors(
                validation.y, ERROR_FRACTION, validation.num_classes, rng
            )
            site = validation.with_labels(noisy)
            if epochs == 0:
                probabilities = softmax(predict_logits(loaded.model, site.x))
            else:
                train = replace(loaded.config.train, local_epochs=epochs, lr=lr, momentum=momentum)
                probabilities = out_of_fold_probabilities(loaded.model, site, train, 5, seed)
            flagged = {i.row for i in find_label_issues(site.y, probabilities).issues}
            scores.append(precision_recall(flagged, set(changed.tolist())))
        emit(
            {
                "stage": "fine_tune_sweep",
                **_model(loaded),
                "epochs": epochs,
                "lr": lr,
                "momentum": momentum,
                "mean_precision": float(np.mean([s[0] for s in scores])),
                "mean_recall": float(np.mean([s[1] for s in scores])),
            }
        )


def duplicates_and_outliers(loaded: GlobalModel, work: Path) -> None:
    """Plant 5 copies, 5 near copies and 5 noise rows in the test split; what is found."""
    test = build_federation(loaded.config).test
    rng = numpy_rng(0, "bench-quality-duplicates")
    flat = test.x.reshape(len(test), -1)
    sources = rng.choice(len(test), 10, replace=False)
    copies = flat[sources[:5]]
    near = np.clip(flat[sources[5:]] + rng.normal(0, 0.01, (5, flat.shape[1])), 0, 1)
    noise = rng.random((5, flat.shape[1]))
    x = np.concatenate([flat, copies, near, noise]).reshape(-1, *test.input_shape)
    y = np.concatenate([test.y, test.y[sources], rng.integers(0, 10, 5)])
    site = as_site_file(
        ArrayDataset(x, y, test.num_classes), work / "planted.csv", test.input_shape
    )
    inspection = inspect_site(loaded.model, site, InspectionSettings())
    n = len(test)
    exact = {(int(sources[k]), n + k) for k in range(5)}
    near_pairs = {(int(sources[5 + k]), n + 5 + k) for k in range(5)}
    noise_rows = set(range(n + 10, n + 15))
    found_exact = {g.rows for g in inspection.duplicates if len(g.rows) == 2}
    found_near = {(p.row, p.neighbour) for p in inspection.near_duplicates}
    found_outliers = {o.row for o in inspection.outliers}
    emit(
        {
            "stage": "duplicates_outliers",
            "exact_planted": 5,
            "exact_found": len(exact & found_exact),
            "exact_other_groups": len(inspection.duplicates) - len(exact & found_exact),
            "near_planted": 5,
            "near_found": len(near_pairs & found_near),
            "near_other_pairs": len(found_near - near_pairs),
            "noise_rows_planted": 5,
            "noise_rows_flagged": len(noise_rows & found_outliers),
            "clean_rows_flagged_as_outliers": len(found_outliers - noise_rows),
            "clean_rows": n,
        }
    )


def annotate_held_out(loaded: GlobalModel) -> None:
    """Half the test split labelled, half hidden: proposals against the truth."""
    test = build_federation(loaded.config).test
    hidden = np.zeros(len(test), dtype=bool)
    hidden[numpy_rng(0, "bench-quality-hide").permutation(len(test))[: len(test) // 2]] = True
    logits = predict_logits(loaded.model, test.x)
    annotation = annotate(logits, np.where(hidden, UNLABELLED, test.y))
    emit(
        {
            "stage": "annotate",
            "scenario": "held_out_test_split",
            **_model(loaded),
            **_annotation_scores(annotation, logits[hidden], test.y[hidden]),
        }
    )


def annotate_owner_sites(loaded: GlobalModel) -> None:
    """Each owner calibrates on its own (seen) training rows and labels its hidden test rows."""
    federation = build_federation(loaded.config)
    truths, hidden_logits, calibrated_parts, temperatures = [], [], [], []
    for owner in federation.owners:
        x = np.concatenate([owner.train.x, owner.test.x])
        labels = np.concatenate([owner.train.y, np.full(len(owner.test), UNLABELLED)])
        logits = predict_logits(loaded.model, x)
        annotation = annotate(logits, labels)
        truths.append(owner.test.y)
        hidden_logits.append(logits[len(owner.train) :])
        calibrated_parts.append(
            softmax(logits[len(owner.train) :], annotation.calibration.temperature)
        )
        temperatures.append(annotation.calibration.temperature)
    truth, raw = np.concatenate(truths), np.concatenate(hidden_logits)
    calibrated = np.concatenate(calibrated_parts)
    emit(
        {
            "stage": "annotate",
            "scenario": "owner_sites",
            **_model(loaded),
            "hidden_rows": len(truth),
            "accuracy": float((calibrated.argmax(1) == truth).mean()),
            "global_model_accuracy": float((raw.argmax(1) == truth).mean()),
            "hidden_ece_before": expected_calibration_error(softmax(raw), truth),
            "hidden_ece_after": expected_calibration_error(calibrated, truth),
            "temperatures": [round(t, 3) for t in temperatures],
        }
    )


def _annotation_scores(
    annotation: Annotation, logits: np.ndarray, truth: np.ndarray
) -> dict[str, Any]:
    proposed = np.array([p.label for p in annotation.proposals])
    calibration = annotation.calibration
    return {
        "hidden_rows": len(truth),
        "accuracy": float((proposed == truth).mean()),
        "global_model_accuracy": float((logits.argmax(1) == truth).mean()),
        "hidden_ece_before": expected_calibration_error(softmax(logits), truth),
        "hidden_ece_after": expected_calibration_error(
            softmax(logits, calibration.temperature), truth
        ),
        "temperature": calibration.temperature,
        "labelled_crossfit_ece_before": calibration.ece_before,
        "labelled_crossfit_ece_after": calibration.ece_after,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; JSON lines on stdout."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench quality",
        description="Label-error detection and calibrated annotation of the owner toolkit.",
        epilog="example: python -m simulations.bench_quality --quick",
    )
    parser.add_argument("--quick", action="store_true", help="20-round model, fewer seeds")
    parser.add_argument("--work", type=Path, help="keep run directories here (default: temporary)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        models = [train_global_model(work / "clean", [*CLEAN, "num_rounds=20"])]
        if not args.quick:
            models.append(train_global_model(work / "clean", [*CLEAN, "num_rounds=50"]))
        for loaded in models:
            run_scenarios(loaded, work, quick=args.quick)
        if not args.quick:
            noisy = train_global_model(work / "noisy", [*NOISY, "num_rounds=20"])
            in_federation_scenario(noisy, work)
    return 0


def run_scenarios(loaded: GlobalModel, work: Path, quick: bool) -> None:
    """Every scenario on one global model."""
    if not quick:
        fine_tune_sweep(loaded, range(100, 106))
    label_error_scenario(loaded, "test_split", range(3 if quick else 5), None, work)
    label_error_scenario(loaded, "small_site", range(5 if quick else 10), SMALL_SITE_ROWS, work)
    duplicates_and_outliers(loaded, work)
    annotate_held_out(loaded)
    annotate_owner_sites(loaded)


if __name__ == "__main__":
    raise SystemExit(main())
