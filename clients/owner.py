"""What a data owner does when asked to train or evaluate."""

from __future__ import annotations

import time

import numpy as np
from flwr.app import ArrayRecord, Context, RecordDict

from clients.site import Site
from clients.state import SiteState
from fedcurate.data.corruption import FREE_RIDER_KINDS, UPDATE_KINDS, corrupt_update
from fedcurate.data.federation import build_federation, dataset_spec
from fedcurate.models import ParamLayout, build_model, load_record, model_to_record
from fedcurate.protocol import (
    ARRAYS,
    CONFIG,
    METRICS,
    PROXIMAL_MU,
    SERVER_ROUND,
    EvalMetrics,
    TrainMetrics,
)
from fedcurate.seeding import numpy_rng, torch_generator
from fedcurate.training import evaluate, train_local

_LAST_GLOBAL = "last-global.npy"
_LAST_GLOBAL_CHANGE = "last-global-change.npy"


def _corruption_kind(site: Site) -> str | None:
    """The simulated corruption of this owner (never any in deployment)."""
    if site.owner_index is None:
        return None
    return build_federation(site.config).corruption.get(site.owner_index)


def train(site: Site, content: RecordDict, context: Context) -> RecordDict:
    """Train on the owner's data from the received global model.

    Returns Flower's conventional reply: the local model as ``arrays`` and
    :class:`TrainMetrics` (with ``num-examples``) as ``metrics``.
    """
    config = site.config
    instruction = content.config_records[CONFIG]
    server_round = int(instruction[SERVER_ROUND])  # type: ignore[arg-type]
    global_arrays = content.array_records[ARRAYS]
    model = load_record(build_model(config.model, dataset_spec(config)), global_arrays)
    train_data, _ = site.owner_data()
    kind = _corruption_kind(site)
    state = SiteState(context, site.state_dir)
    last_change = _remember_global(state, global_arrays) if kind in UPDATE_KINDS else None
    if kind in FREE_RIDER_KINDS:
        start = time.perf_counter()
        probe = evaluate(model, train_data)
        metrics = TrainMetrics(len(train_data), probe.loss, probe.accuracy, 0.0)
        honest_arrays = global_arrays
        seconds = time.perf_counter() - start
    else:
        result = train_local(
            model,
            train_data,
            config.train,
            generator=torch_generator(config.seed, "train", site.name, server_round),
            proximal_mu=float(instruction.get(PROXIMAL_MU, 0.0)),  # type: ignore[arg-type]
        )
        honest_arrays = model_to_record(model)
        seconds = result.seconds
        metrics = TrainMetrics(result.num_examples, result.loss, result.accuracy, seconds)
    arrays = honest_arrays
    if kind in UPDATE_KINDS:
        arrays = _corrupted(
            site,
            kind,
            global_arrays=global_arrays,
            honest_arrays=honest_arrays,
            last_change=last_change,
            server_round=server_round,
        )
    return RecordDict({ARRAYS: arrays, METRICS: metrics.to_record()})


def _remember_global(state: SiteState, global_arrays: ArrayRecord) -> np.ndarray | None:
    """Store ``w_t`` and return the last global change ``w_t - w_{t-1}`` if known."""
    current = ParamLayout.of(global_arrays).flatten(global_arrays)
    previous = state.get_array(_LAST_GLOBAL)
    if previous is not None and previous.shape == current.shape:
        state.set_array(_LAST_GLOBAL_CHANGE, current - previous)
    state.set_array(_LAST_GLOBAL, current)
    return state.get_array(_LAST_GLOBAL_CHANGE)


def _corrupted(
    site: Site,
    kind: str,
    *,
    global_arrays: ArrayRecord,
    honest_arrays: ArrayRecord,
    last_change: np.ndarray | None,
    server_round: int,
) -> ArrayRecord:
    layout = ParamLayout.of(global_arrays)
    global_flat = layout.flatten(global_arrays)
    honest = None if kind in FREE_RIDER_KINDS else layout.flatten(honest_arrays) - global_flat
    update = corrupt_update(
        honest,
        site.config.corruption,
        last_global_change=last_change,
        global_weights=global_flat,
        rng=numpy_rng(site.config.seed, "corrupt-update", site.name, server_round),
    )
    return layout.unflatten(global_flat + update)


def evaluate_global(site: Site, content: RecordDict) -> RecordDict:
    """Evaluate the received global model on the owner's local test split."""
    model = load_record(
        build_model(site.config.model, dataset_spec(site.config)), content.array_records[ARRAYS]
    )
    _, test_data = site.owner_data()
    result = evaluate(model, test_data)
    metrics = EvalMetrics(result.num_examples, result.loss, result.accuracy)
    return RecordDict({METRICS: metrics.to_record()})
