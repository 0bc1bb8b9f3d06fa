"""The curator node: it holds the CKKS secret key and the validation set.

It never receives an individual update. It hands the server the public
context and the validation-loss gradient, decrypts the masked per-owner scalar
scores and turns them into a verdict (values, weights, exclusions), decrypts
only aggregates of at least two owners, and evaluates global models on its
validation split for model selection. Its ledger lives in its state directory,
so it survives restarts of its process; a round the server repeats after a
crash is re-assessed from the state before that round, never counted twice.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict

from clients.site import Site
from clients.state import SiteState
from fedcurate.crypto import (
    CkksContext,
    decrypt_inner_product,
    decrypt_vector,
    from_wire,
    load_key_file,
)
from fedcurate.curation import Curator
from fedcurate.data.federation import dataset_spec
from fedcurate.models import ParamLayout, blank_model, load_record
from fedcurate.protocol import (
    ARRAYS,
    CONFIG,
    DIRECTIONS,
    ENCRYPTED_UPDATE,
    GRADIENT,
    MASKED_FIELDS,
    METRICS,
    SERVER_ROUND,
    SHARPENING,
    CuratorVerdict,
    ProtocolError,
)
from fedcurate.training import evaluate

#: An aggregate of fewer owners than this is refused: it would reveal an update.
MIN_SUMMANDS = 2
_STATE = "curator-state.pkl"


@functools.lru_cache(maxsize=4)
def _secret_context(path: Path) -> CkksContext:
    return load_key_file(path, expect="secret")


def public_context(site: Site) -> RecordDict:
    """The public half of the curator's key, for the server."""
    context = _secret_context(site.secret_context_path())
    return RecordDict({"context": ConfigRecord({"public": context.public_bytes()})})


def _curator(site: Site) -> Curator:
    spec = dataset_spec(site.config)
    return Curator.from_config(site.config, site.validation_data(), spec)


class CuratorMemory:
    """The curator's state at the start of the current round and now, on disk."""

    def __init__(self, site: Site, context: Context) -> None:
        self.site = site
        self.store = SiteState(context, site.state_dir)
        raw = self.store.get_bytes(_STATE)
        self.state: dict[str, Any] = (
            pickle.loads(raw) if raw else {"round": 0, "before": None, "current": None}
        )

    def start_round(self, server_round: int) -> Curator:
        """The curator for ``server_round``, rolled back if the round is being repeated."""
        if server_round < self.state["round"]:
            raise ProtocolError(
                f"round {server_round} comes before the curator's round {self.state['round']}"
            )
        if server_round > self.state["round"]:
            self.state = {"round": server_round, "before": self.state["current"], "current": None}
        return self._restore(self.state["before"])

    def continue_round(self, server_round: int) -> Curator:
        """The curator mid-round (after :meth:`start_round` for the same round)."""
        if server_round != self.state["round"] or self.state["current"] is None:
            raise ProtocolError(f"round {server_round} was not started at the curator")
        return self._restore(self.state["current"])

    def save(self, curator: Curator) -> None:
        """Persist the curator after a step of the current round."""
        self.state["current"] = curator.state_dict()
        self.store.set_bytes(_STATE, pickle.dumps(self.state))

    def _restore(self, state: dict[str, Any] | None) -> Curator:
        curator = _curator(self.site)
        if state is not None:
            curator.load_state_dict(state)
        return curator


def _round_of(content: RecordDict) -> int:
    return int(content.config_records[CONFIG][SERVER_ROUND])  # type: ignore[arg-type]


def _flat(content: RecordDict) -> np.ndarray:
    arrays = content.array_records[ARRAYS]
    return ParamLayout.of(arrays).flatten(arrays)


def validation_gradient(site: Site, content: RecordDict, context: Context) -> RecordDict:
    """The round's public scoring directions (starts the curator's round).

    ``gradient``: ``g_t = ∇L_val(w_t)`` at the received global model;
    ``sharpening``: ``w_t`` on the weight matrices, absent when all zero.
    """
    memory = CuratorMemory(site, context)
    curator = memory.start_round(_round_of(content))
    weights = _flat(content)
    directions = {GRADIENT: curator.validation_gradient(weights)}
    sharpening = curator.sharpening_direction(weights)
    if sharpening is not None:
        directions[SHARPENING] = sharpening
    memory.save(curator)
    return RecordDict({DIRECTIONS: ArrayRecord({k: Array(v) for k, v in directions.items()})})


def assess_scores(site: Site, content: RecordDict, context: Context) -> RecordDict:
    """Decrypt each owner's masked score and decide the round's weights."""
    record = content.config_records["scores"]
    owners = [str(o) for o in record["owners"]]  # type: ignore[union-attr]
    weights = [float(w) for w in record["weights"]]  # type: ignore[union-attr]
    if len(weights) != len(owners):
        raise ProtocolError("scores: owners and weights differ in length")
    secret = _secret_context(site.secret_context_path())
    products = _decrypted_scores(record, MASKED_FIELDS[GRADIENT], owners, secret)
    sharpening = (
        _decrypted_scores(record, MASKED_FIELDS[SHARPENING], owners, secret)
        if MASKED_FIELDS[SHARPENING] in record
        else None
    )
    memory = CuratorMemory(site, context)
    server_round = _round_of(content)
    curator = memory.continue_round(server_round)
    decision = curator.assess_from_scores(
        server_round,
        products,
        dict(zip(owners, weights, strict=True)),
        prescaled=True,
        sharpening=sharpening,
    )
    memory.save(curator)
    return CuratorVerdict(decision, curator.ledger.rounds[-1]).to_content()


def _decrypted_scores(
    record: ConfigRecord, key: str, owners: list[str], secret: CkksContext
) -> dict[str, float]:
    """Owner -> the scalar held by its masked ciphertext under ``key``."""
    masked = [bytes(m) for m in record[key]]  # type: ignore[union-attr, arg-type]
    if len(masked) != len(owners):
        raise ProtocolError(f"scores: {len(owners)} owners but {len(masked)} {key} scores")
    return {
        name: decrypt_inner_product(payload, secret)
        for name, payload in zip(owners, masked, strict=True)
    }


def decrypt_aggregate(site: Site, content: RecordDict) -> RecordDict:
    """Decrypt a sum of at least :data:`MIN_SUMMANDS` owners' encrypted updates."""
    secret = _secret_context(site.secret_context_path())
    aggregate = from_wire(content.config_records[ENCRYPTED_UPDATE], secret, fresh=False)
    vector = decrypt_vector(aggregate, secret, min_summands=MIN_SUMMANDS)
    return RecordDict({"aggregate": ArrayRecord({"sum": Array(vector)})})


def validate(site: Site, content: RecordDict) -> RecordDict:
    """Loss and accuracy of the received global model on the validation split."""
    model = blank_model(site.config.model, dataset_spec(site.config))
    load_record(model, content.array_records[ARRAYS])
    result = evaluate(model, site.validation_data())
    return RecordDict({METRICS: MetricRecord({"loss": result.loss, "accuracy": result.accuracy})})
