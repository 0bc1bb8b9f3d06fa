"""``fedcurate evaluate`` on a real finished run: numbers consistent with the run's own."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from fedcurate.config import compose_config, to_config
from fedcurate.data import build_federation, write_site_file
from fedcurate.evaluation import classification_report, expected_calibration_error
from simulations.owner_tools import evaluate_main
from simulations.runner import run_simulation

TINY = ["num_clients=3", "num_rounds=2", "train.local_epochs=1"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("evaluate") / "run"
    run_simulation(compose_config(TINY), TINY, run_dir)
    return run_dir


def summary_of(run_dir: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary


def evaluate(*argv: str | Path) -> dict[str, Any]:
    out = Path(str(argv[-1]))
    assert evaluate_main([str(a) for a in argv]) == 0
    record: dict[str, Any] = json.loads(out.read_text())
    return record


def test_final_checkpoint_reproduces_the_runs_final_test_accuracy(
    finished_run: Path, tmp_path: Path
) -> None:
    record = evaluate(finished_run, "--checkpoint", "final", "--out", tmp_path / "eval.json")
    summary = summary_of(finished_run)
    assert record["model"]["round"] == summary["rounds_completed"] == 2
    assert record["accuracy"] == summary["final"]["accuracy"]
    assert record["loss"] == pytest.approx(summary["final"]["loss"], rel=1e-6)
    assert record["num_examples"] == 360


def test_metrics_agree_with_each_other(finished_run: Path, tmp_path: Path) -> None:
    record = evaluate(finished_run, "--checkpoint", "final", "--out", tmp_path / "eval.json")
    confusion = np.array(record["confusion_matrix"])
    assert confusion.sum() == record["num_examples"]
    assert np.trace(confusion) / confusion.sum() == pytest.approx(record["accuracy"])
    for label, metrics in enumerate(record["per_class"]):
        assert metrics["support"] == confusion[label].sum()
        assert metrics["recall"] == pytest.approx(confusion[label, label] / confusion[label].sum())
        if confusion[:, label].sum():
            assert metrics["precision"] == pytest.approx(
                confusion[label, label] / confusion[:, label].sum()
            )
        else:
            assert metrics["precision"] is None
    bins = record["calibration"]["bins"]
    assert len(bins) == 15
    assert sum(b["count"] for b in bins) == record["num_examples"]
    gaps = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])
    assert record["calibration"]["ece"] == pytest.approx(gaps / record["num_examples"])
    pixels = matplotlib.image.imread(record["reliability_diagram"])
    assert pixels.std() > 0.01
    assert record["reliability_diagram"] == str(tmp_path / "eval-reliability.png")


def test_fairness_matches_the_owners_own_evaluations(finished_run: Path, tmp_path: Path) -> None:
    record = evaluate(finished_run, "--checkpoint", "final", "--out", tmp_path / "eval.json")
    lines = (finished_run / "metrics.jsonl").read_text().splitlines()
    owners = json.loads(lines[-1])["federated"]["per_owner"]
    fairness = record["fairness"]
    assert fairness["per_owner"] == {name: m["accuracy"] for name, m in owners.items()}
    values = list(fairness["per_owner"].values())
    assert fairness["mean"] == pytest.approx(np.mean(values))
    assert fairness["min"] == fairness["worst_decile_mean"] == min(values)


def test_best_checkpoint_is_the_model_selected_on_validation(
    finished_run: Path, tmp_path: Path
) -> None:
    record = evaluate(finished_run, "--out", tmp_path / "eval.json")
    best = summary_of(finished_run)["best"]
    assert record["model"]["kind"] == "best"
    assert record["model"]["round"] == best["round"]
    assert record["accuracy"] == best["accuracy"]


def test_a_user_file_is_evaluated_like_the_same_rows(finished_run: Path, tmp_path: Path) -> None:
    test = build_federation(to_config(summary_of(finished_run)["config"])).test
    data = write_site_file(tmp_path / "held_out.csv", test)
    record = evaluate(
        finished_run, "--checkpoint", "final", "--data", data, "--out", tmp_path / "e.json"
    )
    assert record["data"] == str(data)
    assert record["accuracy"] == summary_of(finished_run)["final"]["accuracy"]


def test_without_out_json_goes_to_stdout_and_the_table_to_stderr(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run, run_dir)
    assert evaluate_main([str(run_dir)]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert f"| accuracy | {record['accuracy']:.4f} |" in captured.err
    assert "worst 10 % owners" in captured.err
    assert (run_dir / "evaluation" / "reliability-best-test.png").is_file()


def test_missing_run_directory_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert evaluate_main([str(missing)]) == 2
    assert f"{missing}: no such run directory" in capsys.readouterr().err


def test_corrupt_checkpoint_is_named(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run, run_dir)
    best = run_dir / "checkpoints" / "best.pkl"
    best.write_bytes(best.read_bytes()[:100])
    assert evaluate_main([str(run_dir)]) == 2
    assert f"{best}: " in capsys.readouterr().err


def test_a_checkpoint_that_would_run_code_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run, run_dir)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    best = run_dir / "checkpoints" / "best.pkl"
    best.write_bytes(pickle.dumps({"round": 1, "arrays": Exploit()}))
    assert evaluate_main([str(run_dir)]) == 2
    assert "refusing to load 'pathlib.Path.touch'" in capsys.readouterr().err
    assert not marker.exists()


def test_missing_summary_and_bad_data_are_named(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "summary.json").unlink()
    assert evaluate_main([str(run_dir)]) == 2
    assert f"{run_dir / 'summary.json'}: missing" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("f0,f1,label\n0.1,0.2,3\n")
    assert evaluate_main([str(finished_run), "--data", str(bad)]) == 2
    assert f"{bad}: 2 features per example, the model expects 64" in capsys.readouterr().err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(["--help"])
    assert exit_info.value.code == 0
    assert "example:\n  fedcurate evaluate " in capsys.readouterr().out


def test_expected_calibration_error_by_hand() -> None:
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # Bins of width 1/15: {0.9, 0.9} half right (gap 0.4), {0.6} right (0.4), {0.7} right (0.3).
    assert expected_calibration_error(probabilities, labels) == pytest.approx(
        (2 * 0.4 + 0.4 + 0.3) / 4
    )
    report = classification_report(probabilities, labels)
    assert report.accuracy == 0.75
    assert [m.precision for m in report.per_class] == pytest.approx([2 / 3, 1.0])
    assert [m.recall for m in report.per_class] == pytest.approx([1.0, 0.5])
    assert report.confusion_matrix == ((2, 0), (1, 1))
    absent = classification_report(np.array([[0.8, 0.2, 0.0]]), np.array([0]))
    assert (absent.per_class[2].precision, absent.per_class[2].f1) == (None, None)
