"""How good is the global model: on the test set, the curator's validation set, the owners.

* central: the server's held-out test set (what the user is told);
* validation: the curator's split, used for model selection; with encryption
  the curator node evaluates, since only it holds that data;
* federated: each sampled owner on its own test split, unless the run is
  differentially private (a metric of private data would be a release no
  budget covers).
"""

from __future__ import annotations

import logging
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from torch import nn

from fedcurate.config import Config
from fedcurate.data import ArrayDataset, Federation
from fedcurate.models import load_record
from fedcurate.protocol import METRICS, EvalMetrics, ProtocolError, declined_reason
from fedcurate.training import evaluate
from server.curator_link import CuratorNode
from server.grids import SubsetGrid
from server.nodes import NodeDirectory
from server.train_phase import sample_owners

log = logging.getLogger(__name__)

Metrics = dict[str, float]


class Evaluations:
    """Every evaluation of a round's global model.

    Parameters
    ----------
    config : Config
        The experiment.
    model : nn.Module
        A model of the federation's architecture (weights are overwritten).
    federation : Federation
        Supplies the test split, and the validation split when the curator
        runs in the server process.
    curator : CuratorNode or None
        The curator node, which evaluates on its own validation split.
    """

    def __init__(
        self,
        config: Config,
        model: nn.Module,
        federation: Federation,
        curator: CuratorNode | None,
    ) -> None:
        self.config = config
        self.model = model
        self.federation = federation
        self.curator = curator

    @property
    def has_validation(self) -> bool:
        """Whether a validation split exists (model selection uses it)."""
        return self.curator is not None or len(self.federation.validation) > 0

    def central(self, arrays: ArrayRecord) -> Metrics | None:
        """Loss and accuracy on the held-out test set."""
        return self._local(arrays, self.federation.test)

    def validation(self, server_round: int, arrays: ArrayRecord) -> Metrics | None:
        """Loss and accuracy on the curator's validation split."""
        if self.curator is not None:
            return self.curator.validate(server_round, arrays)
        return self._local(arrays, self.federation.validation)

    def _local(self, arrays: ArrayRecord, data: ArrayDataset) -> Metrics | None:
        if len(data) == 0:
            return None
        load_record(self.model, arrays)
        result = evaluate(self.model, data)
        return {"loss": result.loss, "accuracy": result.accuracy}

    def federated(
        self,
        server_round: int,
        arrays: ArrayRecord,
        grid: Grid,
        nodes: NodeDirectory,
        strategy: Strategy,
    ) -> dict[str, Any] | None:
        """The owners' own evaluations, when due and allowed (see module docstring)."""
        config = self.config
        due = server_round % config.evaluate_every == 0 or server_round == config.num_rounds
        if config.fraction_evaluate == 0.0 or not due or config.privacy.name != "none":
            return None
        sampled = sample_owners(config, nodes.owner_names, server_round, "sample-eval")
        view = SubsetGrid(grid, [nodes.owners[name] for name in sampled])
        messages = list(strategy.configure_evaluate(server_round, arrays, ConfigRecord(), view))
        per_owner: dict[str, Metrics] = {}
        valid: list[Message] = []
        for reply in grid.send_and_receive(messages, timeout=config.round_timeout):
            metrics = _owner_metrics(server_round, nodes.name_of(reply.metadata.src_node_id), reply)
            if metrics is not None:
                per_owner[nodes.name_of(reply.metadata.src_node_id)] = metrics
                valid.append(reply)
        aggregate = strategy.aggregate_evaluate(server_round, valid) if valid else None
        if aggregate is None:
            return None
        return {
            "loss": _scalar(aggregate, "loss"),
            "accuracy": _scalar(aggregate, "accuracy"),
            "per_owner": dict(sorted(per_owner.items())),
        }


def _owner_metrics(server_round: int, name: str, reply: Message) -> Metrics | None:
    if reply.has_error() or declined_reason(reply.content) is not None:
        return None
    try:
        metrics = EvalMetrics.from_record(reply.content.metric_records[METRICS])
    except (KeyError, ProtocolError) as error:
        log.warning("round %d: ignored the evaluation of %s: %s", server_round, name, error)
        return None
    return {"loss": metrics.loss, "accuracy": metrics.accuracy}


def _scalar(record: MetricRecord, key: str) -> float:
    value = record[key]
    if isinstance(value, list):
        raise ProtocolError(f"aggregated metric '{key}' is a list")
    return float(value)
