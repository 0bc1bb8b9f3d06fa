"""FLTrust trust scores, a robust-aggregation baseline.

X. Cao, M. Fang, J. Liu, N. Z. Gong, "FLTrust: Byzantine-robust Federated
Learning via Trust Bootstrapping", NDSS 2021.

The server trains its own update ``Δ_0`` from ``w_t`` on a small clean root set
(here the curator's validation set, with the owners' local-training settings)
and trusts each owner by ``TS_i = ReLU(cos(Δ_i, Δ_0))``. FLTrust then also
rescales every update to ``||Δ_0||`` before a trust-weighted mean; that rescaling
is an aggregation rule, not a value, so only the trust scores are reported here
and the policies turn them into weights like any other value.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from fedcurate.config import TrainConfig
from fedcurate.curation.evaluator import ValidationEvaluator
from fedcurate.curation.rounds import cosine
from fedcurate.data.arrays import ArrayDataset
from fedcurate.training import train_local


def root_update(
    evaluator: ValidationEvaluator,
    root: ArrayDataset,
    global_weights: np.ndarray,
    train: TrainConfig,
    generator: torch.Generator,
) -> np.ndarray:
    """``Δ_0``: the update of local training on the root set, starting from ``w_t``."""
    model = evaluator.model_with(global_weights)
    train_local(model, root, train, generator=generator)
    return evaluator.flatten(model) - global_weights


def trust_scores(updates: Mapping[str, np.ndarray], reference: np.ndarray) -> dict[str, float]:
    """``ReLU(cos(Δ_i, Δ_0))`` per owner; a zero update (or zero reference) earns 0."""
    return {name: max(cosine(update, reference), 0.0) for name, update in updates.items()}
