"""``fedcurate inspect-data`` and ``annotate`` on a real finished run, as a site runs them."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedcurate.config import compose_config, to_config
from fedcurate.data import ArrayDataset, build_federation, write_site_file
from fedcurate.data.sites import UNLABELLED
from simulations.owner_tools import annotate_main, inspect_data_main
from simulations.runner import run_simulation

TINY = ["num_clients=3", "num_rounds=2", "train.local_epochs=1"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("quality") / "run"
    run_simulation(compose_config(TINY), TINY, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def site_rows(finished_run: Path) -> ArrayDataset:
    """The run's test split: rows the model never trained on."""
    summary = json.loads((finished_run / "summary.json").read_text())
    return build_federation(to_config(summary["config"])).test


def test_inspect_data_writes_a_reviewable_report(
    finished_run: Path, site_rows: ArrayDataset, tmp_path: Path
) -> None:
    first = site_rows.subset(np.arange(120))
    x = np.concatenate([first.x, first.x[:1]])
    y = np.concatenate([first.y, [(first.y[0] + 1) % 10]])
    data = write_site_file(tmp_path / "site.csv", ArrayDataset(x, y, 10))
    out = tmp_path / "review"
    assert (
        inspect_data_main(["--data", str(data), "--model", str(finished_run), "--out", str(out)])
        == 0
    )
    record = json.loads((out / "inspection.json").read_text())
    assert record["num_rows"] == 121
    assert record["class_balance"]["counts"] == np.bincount(y, minlength=10).tolist()
    assert record["exact_duplicates"] == [
        {"rows": [0, 120], "labels": [int(y[0]), int(y[120])], "conflicting_labels": True}
    ]
    assert record["settings"]["num_folds"] == 5
    assert record["label_issues"]["num_flagged"] == len(record["label_issues"]["issues"])
    with (out / "flagged_rows.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "row",
        "issue",
        "given_label",
        "suggested_label",
        "confidence",
        "detail",
    ]
    label_rows = [r for r in rows if r["issue"] == "label"]
    assert len(label_rows) == record["label_issues"]["num_flagged"]
    for row in label_rows:
        assert int(row["given_label"]) == y[int(row["row"])]
        assert int(row["suggested_label"]) != int(row["given_label"])
        assert 0.0 <= float(row["confidence"]) <= 1.0
    assert {(r["row"], r["issue"]) for r in rows} >= {("0", "duplicate"), ("120", "duplicate")}
    markdown = (out / "inspection.md").read_text()
    assert "nothing was sent anywhere" in markdown
    assert "| exact duplicate groups | 1 |" in markdown


def test_inspect_data_skips_label_checks_on_too_few_labelled_rows(
    finished_run: Path, site_rows: ArrayDataset, tmp_path: Path
) -> None:
    few = site_rows.subset(np.arange(30))
    labels = np.where(np.arange(30) < 6, few.y, UNLABELLED)
    data = write_site_file(tmp_path / "few.npz", few.with_labels(labels))
    assert inspect_data_main(["--data", str(data), "--model", str(finished_run)]) == 0
    record = json.loads((tmp_path / "few-inspection" / "inspection.json").read_text())
    assert "6 labelled rows are too few" in record["label_issues"]["skipped"]
    assert record["class_balance"]["unlabelled"] == 24


def test_annotate_proposes_labels_for_the_unlabelled_rows(
    finished_run: Path, site_rows: ArrayDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hidden = np.arange(len(site_rows)) % 3 == 0
    data = write_site_file(
        tmp_path / "todo.csv", site_rows.with_labels(np.where(hidden, UNLABELLED, site_rows.y))
    )
    checkpoint = finished_run / "checkpoints" / "best.pkl"
    assert annotate_main(["--data", str(data), "--model", str(checkpoint)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["model"]["checkpoint"] == str(checkpoint)
    assert summary["unlabelled_rows"] == hidden.sum()
    calibration = summary["calibration"]
    assert calibration["num_rows"] == (~hidden).sum()
    assert calibration["ece_after"] is not None
    assert f"ECE {calibration['ece_before']:.4f} -> {calibration['ece_after']:.4f}" in captured.err
    with (tmp_path / "todo-proposals.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["row"]) for r in rows] == np.flatnonzero(hidden).tolist()
    assert all(0.0 <= float(r["confidence"]) <= 1.0 for r in rows)


def test_annotate_needs_unlabelled_rows(
    finished_run: Path, site_rows: ArrayDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_site_file(tmp_path / "done.csv", site_rows.subset(np.arange(20)))
    assert annotate_main(["--data", str(data), "--model", str(finished_run)]) == 2
    assert f"{data}: no unlabelled rows" in capsys.readouterr().err


def test_bad_inputs_are_named(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("f0,label\nx,1\n")
    assert inspect_data_main(["--data", str(bad), "--model", str(finished_run)]) == 2
    assert f"{bad}: " in capsys.readouterr().err
    checkpoint = finished_run / "checkpoints" / "best.pkl"
    argv = ["--data", str(bad), "--model", str(checkpoint), "--checkpoint", "final"]
    assert annotate_main(argv) == 2
    assert "--checkpoint chooses within a run directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert annotate_main(["--data", str(bad), "--model", str(empty)]) == 2
    assert f"{empty / 'summary.json'}: missing; not a fedcurate run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "name"), [(inspect_data_main, "inspect-data"), (annotate_main, "annotate")]
)
def test_help_has_an_example(
    command: Callable[[list[str]], int], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        command(["--help"])
    assert exit_info.value.code == 0
    assert f"example:\n  fedcurate {name} --data " in capsys.readouterr().out
