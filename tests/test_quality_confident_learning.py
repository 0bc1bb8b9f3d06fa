"""Confident learning: the paper's counts by hand, and injected errors found on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedcurate.config import DatasetConfig, ModelConfig, TrainConfig
from fedcurate.data import ArrayDataset
from fedcurate.data.bundled import load_pooled
from fedcurate.data.federation import DatasetSpec
from fedcurate.models import build_model
from fedcurate.quality import find_label_issues, fine_tune_config, out_of_fold_probabilities
from fedcurate.quality.confident_learning import (
    ABSENT_CLASS_THRESHOLD,
    confident_classes,
    confident_joint,
    per_class_thresholds,
)
from fedcurate.quality.crossfit import stratified_folds
from fedcurate.training import train_local
from simulations.bench_quality import inject_label_errors, precision_recall

#: Rows 0-2 labelled 0, rows 3-5 labelled 1; row 2 looks like class 1, row 5 like class 2.
LABELS = np.array([0, 0, 0, 1, 1, 1])
PROBABILITIES = np.array(
    [
        [0.9, 0.05, 0.05],
        [0.8, 0.1, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.8, 0.1],
        [0.05, 0.9, 0.05],
        [0.1, 0.2, 0.7],
    ]
)


def test_thresholds_are_the_average_self_confidence() -> None:
    thresholds = per_class_thresholds(LABELS, PROBABILITIES)
    assert thresholds[0] == pytest.approx((0.9 + 0.8 + 0.1) / 3)
    assert thresholds[1] == pytest.approx((0.8 + 0.9 + 0.2) / 3)
    assert thresholds[2] == ABSENT_CLASS_THRESHOLD  # nobody labelled 2: never suggested


def test_confident_joint_counts_rows_under_their_confident_class() -> None:
    thresholds = per_class_thresholds(LABELS, PROBABILITIES)
    confident = confident_classes(PROBABILITIES, thresholds)
    # Row 1: p0 = 0.8 >= t0 = 0.6 -> 0. Row 2: p1 = 0.8 >= t1 = 0.63 -> 1.
    # Row 5: only class 2 is high, but class 2 has no threshold: not counted.
    assert confident.tolist() == [0, 0, 1, 1, 1, -1]
    joint = confident_joint(LABELS, confident, 3)
    assert joint.tolist() == [[2, 1, 0], [0, 2, 0], [0, 0, 0]]


def test_off_diagonal_rows_are_flagged_with_the_suggested_label() -> None:
    found = find_label_issues(LABELS, PROBABILITIES)
    assert [(i.row, i.given_label, i.suggested_label) for i in found.issues] == [(2, 0, 1)]
    issue = found.issues[0]
    assert issue.confidence == pytest.approx(0.8)
    assert issue.self_confidence == pytest.approx(0.1)
    assert issue.normalized_margin == pytest.approx((0.1 - 0.8 + 1) / 2)
    # Calibrated joint: class 0 rows split 2:1, class 1 rows all on the diagonal.
    assert found.estimated_noise_rate == pytest.approx(1 / 6)


def test_issues_are_ranked_by_self_confidence() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    probabilities = np.array(
        [
            [0.9, 0.1],
            [0.9, 0.1],
            [0.2, 0.8],  # wrong, self-confidence 0.2
            [0.05, 0.95],  # wrong, self-confidence 0.05: first
            [0.1, 0.9],
            [0.1, 0.9],
            [0.2, 0.8],
            [0.4, 0.6],  # p1 = 0.6 < t1 = 0.8 and p0 = 0.4 < t0: no confident class
        ]
    )
    found = find_label_issues(labels, probabilities)
    assert found.thresholds.tolist() == pytest.approx([0.5125, 0.8])
    assert [i.row for i in found.issues] == [3, 2]


def test_a_row_whose_label_is_the_top_prediction_is_not_flagged() -> None:
    # Row 3 is labelled 1 and the model's top class is 1 (0.5), but p1 is below the
    # class-1 threshold while p0 = 0.45 reaches the low class-0 threshold.
    labels = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([[0.3, 0.7], [0.4, 0.6], [0.0, 1.0], [0.45, 0.55], [0.1, 0.9]])
    thresholds = per_class_thresholds(labels, probabilities)
    assert confident_classes(probabilities, thresholds)[3] == 0
    assert find_label_issues(labels, probabilities).issues == ()


def test_folds_spread_every_class_evenly() -> None:
    labels = np.repeat(np.arange(3), [10, 7, 3])
    folds = stratified_folds(labels, 5, seed=0)
    for label in range(3):
        counts = np.bincount(folds[labels == label], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert np.bincount(folds).tolist() == [4, 4, 4, 4, 4]
    with pytest.raises(ValueError, match="cannot be split"):
        stratified_folds(labels[:3], 5, seed=0)


@pytest.fixture(scope="module")
def digits_model() -> tuple[torch.nn.Module, ArrayDataset, TrainConfig]:
    """An MLP trained centrally on 1200 digits; the remaining rows are a held-out site."""
    digits = load_pooled(DatasetConfig(name="digits"))
    order = np.random.default_rng(0).permutation(len(digits))
    spec = DatasetSpec("digits", digits.input_shape, digits.num_classes)
    model = build_model(ModelConfig(name="mlp", hidden=[64]), spec, seed=0)
    train = TrainConfig(local_epochs=15, batch_size=32, lr=0.1, momentum=0.9)
    train_local(
        model, digits.subset(order[:1200]), train, generator=torch.Generator().manual_seed(0)
    )
    return model, digits.subset(order[1200:1500]), train


def test_injected_label_errors_are_found(
    digits_model: tuple[torch.nn.Module, ArrayDataset, TrainConfig],
) -> None:
    model, site, train = digits_model
    noisy, changed = inject_label_errors(site.y, 0.1, 10, np.random.default_rng(1))
    assert len(changed) == 30
    assert (noisy[changed] != site.y[changed]).all()
    probabilities = out_of_fold_probabilities(
        model, site.with_labels(noisy), fine_tune_config(train), num_folds=5, seed=0
    )
    found = find_label_issues(noisy, probabilities)
    precision, recall = precision_recall({i.row for i in found.issues}, set(changed.tolist()))
    assert precision >= 0.8
    assert recall >= 0.8
    assert all(i.suggested_label == site.y[i.row] for i in found.issues if i.row in changed)
    assert found.estimated_noise_rate == pytest.approx(0.1, abs=0.05)
