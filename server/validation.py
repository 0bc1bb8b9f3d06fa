"""Validation of what owners send: every reply is checked before it can count.

A reply that fails a check is dropped with a reason that ends up in
``metrics.jsonl``; the round goes on with the others.
"""

from __future__ import annotations

import numpy as np
from flwr.app import RecordDict

from fedcurate.models import ParamLayout
from fedcurate.protocol import ARRAYS, METRICS, ProtocolError, TrainMetrics


def check_train_metrics(content: RecordDict, with_data_metrics: bool) -> str | None:
    """Why a reply's metrics are unusable, or ``None``.

    ``with_data_metrics``: whether owners of this run report loss and accuracy
    (they do not under DP-SGD); every reply of a round must carry the same keys.
    """
    if set(content.metric_records) != {METRICS}:
        return f"expected one '{METRICS}' MetricRecord, got {sorted(content.metric_records)}"
    metrics = content.metric_records[METRICS]
    try:
        TrainMetrics.from_record(metrics)
    except ProtocolError as error:
        return f"invalid metrics: {error}"
    expected = TrainMetrics.wire_keys(with_data_metrics)
    if set(metrics) != expected:
        return f"metric keys {sorted(metrics)} differ from this run's {sorted(expected)}"
    return None


def check_plain_update(content: RecordDict, layout: ParamLayout) -> str | None:
    """Why a plaintext model update cannot be aggregated, or ``None``."""
    if set(content.array_records) != {ARRAYS}:
        return f"expected one '{ARRAYS}' ArrayRecord, got {sorted(content.array_records)}"
    arrays = content.array_records[ARRAYS]
    if not layout.matches(arrays):
        return "arrays do not match the global model's keys and shapes"
    if not all(np.isfinite(array.numpy()).all() for array in arrays.values()):
        return "arrays contain NaN or infinite values"
    return None
