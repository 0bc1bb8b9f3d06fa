"""How the server reaches the curator.

With plaintext updates the curator runs inside the ServerApp process on the
validation split (:class:`InProcessCurator`, DESIGN.md). With encrypted updates
it is a separate node holding the secret key, reached by Flower messages
(:class:`CuratorNode`); the server then never sees a secret key, an
individual update in the clear, or the validation data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedcurate.config import Config
from fedcurate.crypto import CkksContext, EncryptedVector, load_context, to_wire
from fedcurate.curation import Curator
from fedcurate.data import Federation
from fedcurate.protocol import (
    ARRAYS,
    CONFIG,
    CURATOR_ASSESS,
    CURATOR_DECRYPT,
    CURATOR_GRADIENT,
    CURATOR_PUBLIC_CONTEXT,
    CURATOR_VALIDATE,
    DIRECTIONS,
    ENCRYPTED_UPDATE,
    GRADIENT,
    MASKED_FIELDS,
    METRICS,
    SERVER_ROUND,
    CuratorVerdict,
)
from server.grids import content_bytes


class CuratorError(RuntimeError):
    """The curator node failed or did not answer."""


class InProcessCurator:
    """The curator on plaintext updates, in the server process (``crypto=none``)."""

    def __init__(self, config: Config, federation: Federation) -> None:
        self.curator = Curator.from_config(config, federation.validation, federation.spec)

    def assess(
        self,
        server_round: int,
        updates: Mapping[str, np.ndarray],
        weights: Mapping[str, float],
        global_weights: np.ndarray,
    ) -> CuratorVerdict:
        """Value plaintext updates and decide the round."""
        decision = self.curator.assess(server_round, updates, weights, global_weights)
        return CuratorVerdict(decision, self.curator.ledger.rounds[-1])

    def state_dict(self) -> dict[str, Any]:
        """The curator's state, for the server's checkpoint."""
        return self.curator.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.curator.load_state_dict(state)


class CuratorNode:
    """The curator node, asked one question at a time.

    Parameters
    ----------
    grid : Grid
        The run's grid.
    node_id : int
        The curator's node id.
    timeout : float
        Seconds to wait for each answer.
    """

    def __init__(self, grid: Grid, node_id: int, timeout: float) -> None:
        self.grid = grid
        self.node_id = node_id
        self.timeout = timeout
        self._bytes_since_taken = 0

    def ask(self, action: str, content: RecordDict) -> RecordDict:
        """Send one request and return the answer's content."""
        message = Message(content, dst_node_id=self.node_id, message_type=action)
        replies = list(self.grid.send_and_receive([message], timeout=self.timeout))
        if not replies:
            raise CuratorError(f"{action}: no answer from the curator within {self.timeout:.0f}s")
        reply = replies[0]
        if reply.has_error():
            raise CuratorError(f"{action}: the curator failed: {reply.error.reason}")
        self._bytes_since_taken += content_bytes(content) + content_bytes(reply.content)
        return reply.content

    def take_bytes(self) -> int:
        """Bytes of requests and answers exchanged since the last call (the round's traffic)."""
        taken, self._bytes_since_taken = self._bytes_since_taken, 0
        return taken

    def public_context(self) -> CkksContext:
        """The public half of the curator's CKKS key."""
        answer = self.ask(CURATOR_PUBLIC_CONTEXT, RecordDict())
        return load_context(bytes(answer.config_records["context"]["public"]))  # type: ignore[arg-type]

    def scoring_directions(self, server_round: int, arrays: ArrayRecord) -> dict[str, np.ndarray]:
        """``gradient`` (``∇L_val(w_t)``) and, when nonzero, ``sharpening``; starts the round."""
        answer = self.ask(CURATOR_GRADIENT, _round_content(server_round, arrays))
        directions = answer.array_records[DIRECTIONS]
        return {name: directions[name].numpy() for name in directions}

    def assess_scores(
        self,
        server_round: int,
        masked: Mapping[str, Mapping[str, bytes]],
        weights: Mapping[str, float],
    ) -> CuratorVerdict:
        """Have the curator decrypt masked scores and decide the round.

        ``masked``: direction name (GRADIENT, optionally SHARPENING) ->
        owner -> its masked inner product with that direction.
        """
        owners = sorted(masked[GRADIENT])
        scores = ConfigRecord({"owners": owners, "weights": [float(weights[o]) for o in owners]})
        for direction, field in MASKED_FIELDS.items():
            if direction in masked:
                scores[field] = [masked[direction][o] for o in owners]
        content = RecordDict({CONFIG: _round_config(server_round), "scores": scores})
        return CuratorVerdict.from_content(self.ask(CURATOR_ASSESS, content))

    def decrypt_aggregate(self, aggregate: EncryptedVector) -> np.ndarray:
        """The plaintext of a sum of several owners' encrypted updates."""
        content = RecordDict({ENCRYPTED_UPDATE: ConfigRecord(to_wire(aggregate))})  # type: ignore[arg-type]
        answer = self.ask(CURATOR_DECRYPT, content)
        return answer.array_records["aggregate"]["sum"].numpy()

    def validate(self, server_round: int, arrays: ArrayRecord) -> dict[str, float]:
        """Loss and accuracy of a global model on the curator's validation split."""
        answer = self.ask(CURATOR_VALIDATE, _round_content(server_round, arrays))
        metrics = answer.metric_records[METRICS]
        return {"loss": float(metrics["loss"]), "accuracy": float(metrics["accuracy"])}  # type: ignore[arg-type]


def _round_config(server_round: int) -> ConfigRecord:
    return ConfigRecord({SERVER_ROUND: server_round})


def _round_content(server_round: int, arrays: ArrayRecord) -> RecordDict:
    return RecordDict({ARRAYS: arrays, CONFIG: _round_config(server_round)})
