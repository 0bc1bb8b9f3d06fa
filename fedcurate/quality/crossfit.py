"""Out-of-sample predictions at a site: K-fold fine-tuning from the global model.

Confident learning needs, for every row, class probabilities from a model that
never trained on that row's label; otherwise a wrong label is memorised and
looks right. The site splits its rows into K folds (stratified by the given
label), fine-tunes K copies of the global model, each on K-1 folds with the
owners' local SGD routine, and predicts the fold it left out. Starting from the
global model keeps what the federation learned; the schedule should be gentle
(:data:`fedcurate.quality.inspection.FINE_TUNE_LR`): on digits, stronger
fine-tuning on labels that are 10 % wrong lost precision.

The predictions are out of sample with respect to the fine-tuning only: when
the site's rows also trained the global model, it may have learnt some wrong
labels already (DP-SGD bounds how much any one row can be learnt).
"""

from __future__ import annotations

import copy

import numpy as np
from torch import nn

from fedcurate.config import TrainConfig
from fedcurate.data.arrays import ArrayDataset
from fedcurate.evaluation import predict_logits, softmax
from fedcurate.seeding import numpy_rng, torch_generator
from fedcurate.training import train_local


def stratified_folds(labels: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
    """A fold index per row, each class spread evenly over the folds.

    Rows are shuffled, sorted (stably) by label and dealt round-robin, so every
    fold gets its share of each class and fold sizes differ by at most one.

    Raises
    ------
    ValueError
        Fewer than two folds, or fewer rows than folds.
    """
    if num_folds < 2:
        raise ValueError(f"need at least 2 folds, got {num_folds}")
    if len(labels) < num_folds:
        raise ValueError(f"{len(labels)} labelled rows cannot be split into {num_folds} folds")
    order = numpy_rng(seed, "quality-folds").permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    folds = np.empty(len(labels), dtype=np.int64)
    folds[order] = np.arange(len(labels)) % num_folds
    return folds


def out_of_fold_probabilities(
    model: nn.Module, data: ArrayDataset, train: TrainConfig, num_folds: int, seed: int
) -> np.ndarray:
    """Fine-tune ``num_folds`` copies of ``model`` and predict each held-out fold.

    Parameters
    ----------
    model : nn.Module
        The global model (left unchanged).
    data : ArrayDataset
        The site's labelled rows.
    train : TrainConfig
        Local fine-tuning: epochs, batch size and optimiser settings.
    num_folds : int
        K; each copy trains on ``(K-1)/K`` of the rows.
    seed : int
        Seeds the folds and the shuffling order.

    Returns
    -------
    np.ndarray
        ``(n, num_classes)`` class probabilities, each row predicted by the copy
        that did not train on it.
    """
    folds = stratified_folds(data.y, num_folds, seed)
    probabilities = np.zeros((len(data), data.num_classes), dtype=np.float64)
    for fold in range(num_folds):
        held_out = folds == fold
        local = copy.deepcopy(model)
        train_local(
            local,
            data.subset(np.flatnonzero(~held_out)),
            train,
            generator=torch_generator(seed, "quality-fine-tune", fold),
        )
        probabilities[held_out] = softmax(predict_logits(local, data.x[held_out]))
    return probabilities
