"""Temperature scaling and label proposals: calibrated on labelled rows, written for review."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from fedcurate.config import DatasetConfig, ModelConfig, TrainConfig
from fedcurate.data.bundled import load_pooled
from fedcurate.data.federation import DatasetSpec
from fedcurate.data.sites import UNLABELLED
from fedcurate.evaluation import expected_calibration_error, predict_logits, softmax
from fedcurate.models import build_model
from fedcurate.quality import annotate, calibrate_temperature, write_proposals_csv
from fedcurate.quality.calibration import fit_temperature
from fedcurate.training import train_local


def test_fit_temperature_recovers_the_temperature_of_the_labels() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 5))
    probabilities = softmax(logits, temperature=2.0)
    labels = np.array([rng.choice(5, p=p) for p in probabilities])
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.1)


def test_no_temperature_is_fitted_to_rows_that_are_all_right_by_a_wide_margin() -> None:
    # Typical of rows the model trained on: the likelihood only grows as T -> 0.
    logits = np.array([[9.0, 0.0], [0.0, 8.0], [7.0, 1.0], [0.5, 9.0]])
    assert fit_temperature(logits, np.array([0, 1, 0, 1])) == 1.0


def test_too_few_labelled_rows_leave_confidences_uncalibrated() -> None:
    calibration = calibrate_temperature(np.array([[2.0, 0.0]]), np.array([0]))
    assert calibration.temperature == 1.0
    assert calibration.ece_after is None
    assert calibrate_temperature(np.zeros((0, 2)), np.zeros(0, dtype=np.int64)).num_rows == 0


@pytest.fixture(scope="module")
def overconfident() -> tuple[np.ndarray, np.ndarray]:
    """Logits of a briefly trained digits MLP, last layer scaled by 8 (overconfident), labels."""
    digits = load_pooled(DatasetConfig(name="digits"))
    order = np.random.default_rng(0).permutation(len(digits))
    spec = DatasetSpec("digits", digits.input_shape, digits.num_classes)
    model = build_model(ModelConfig(name="mlp", hidden=[64]), spec, seed=0)
    train = TrainConfig(local_epochs=3, batch_size=32, lr=0.05, momentum=0.9)
    train_local(
        model, digits.subset(order[:800]), train, generator=torch.Generator().manual_seed(0)
    )
    assert isinstance(model, torch.nn.Sequential)
    head = model[-1]
    assert isinstance(head, torch.nn.Linear)
    with torch.no_grad():
        head.weight.mul_(8.0)
        head.bias.mul_(8.0)
    site = digits.subset(order[800:1400])
    return predict_logits(model, site.x), site.y


def test_annotation_calibrates_an_overconfident_model(
    overconfident: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    logits, truth = overconfident
    hidden = np.arange(len(truth)) % 2 == 1
    annotation = annotate(logits, np.where(hidden, UNLABELLED, truth), num_folds=5, seed=0)
    calibration = annotation.calibration
    assert calibration.temperature > 2.0
    assert calibration.num_rows == 300
    assert calibration.ece_before is not None
    assert calibration.ece_after is not None
    assert calibration.ece_after < 0.6 * calibration.ece_before
    # On the hidden rows themselves: same labels as the model, honest confidences.
    proposed = np.array([p.label for p in annotation.proposals])
    confidence = np.array([p.confidence for p in annotation.proposals])
    assert [p.row for p in annotation.proposals] == np.flatnonzero(hidden).tolist()
    assert (proposed == logits[hidden].argmax(axis=1)).all()
    raw_ece = expected_calibration_error(softmax(logits[hidden]), truth[hidden])
    calibrated_ece = expected_calibration_error(
        softmax(logits[hidden], calibration.temperature), truth[hidden]
    )
    assert calibrated_ece < 0.6 * raw_ece
    assert annotation.expected_accuracy == pytest.approx(confidence.mean())
    assert abs(confidence.mean() - (proposed == truth[hidden]).mean()) < 0.05

    path = write_proposals_csv(tmp_path / "proposals.csv", annotation.proposals)
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "row",
        "proposed_label",
        "confidence",
        "alternative_1",
        "confidence_1",
        "alternative_2",
        "confidence_2",
        "alternative_3",
        "confidence_3",
    ]
    assert len(rows) == hidden.sum()
    for row, proposal in zip(rows, annotation.proposals, strict=True):
        assert int(row["row"]) == proposal.row
        assert int(row["proposed_label"]) == proposal.label
        ranked = [float(row[c]) for c in ("confidence", "confidence_1", "confidence_2")]
        assert ranked == sorted(ranked, reverse=True)
        assert 0.0 <= ranked[0] <= 1.0
        assert len({row["proposed_label"], row["alternative_1"], row["alternative_2"]}) == 3


def test_binary_tasks_list_one_alternative(tmp_path: Path) -> None:
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    annotation = annotate(logits, np.array([0, 1, UNLABELLED, UNLABELLED]), num_folds=2)
    assert [len(p.alternatives) for p in annotation.proposals] == [1, 1]
    path = write_proposals_csv(tmp_path / "p.csv", annotation.proposals)
    assert path.read_text().splitlines()[1].endswith(",,,,")
