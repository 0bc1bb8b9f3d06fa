"""In-process simulation backend: the same ServerApp and ClientApp, no engine.

:class:`InProcessGrid` implements Flower's ``Grid`` by calling the ClientApp on
each message directly, with one persistent ``Context`` per virtual node, as
Flower's simulation engine does, but without its polling loop and actor start-up.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import traceback
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import torch
from flwr.app import Context, Error, Message, RecordDict, UserConfig
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

log = logging.getLogger(__name__)


class InProcessGrid(Grid):
    """A Grid whose nodes are ClientApp calls in this process.

    With ``workers > 1`` the calls of one ``send_and_receive`` run in that many
    worker processes (spawned, so torch's thread pools are not forked); each
    node's context travels with its message and comes back updated.

    Parameters
    ----------
    client_app : str
        ``module:attribute`` of the ClientApp every virtual node runs.
    node_configs : sequence of UserConfig
        One ``node_config`` per node (``partition-id`` / ``num-partitions`` in
        simulation); node ids follow the SuperLink's own id.
    run_config : UserConfig
        The run's config, shared by every node.
    run_id : int
        Id of the run.
    workers : int
        Worker processes (1: every call in this process).
    """

    def __init__(
        self,
        client_app: str,
        node_configs: Sequence[UserConfig],
        run_config: UserConfig,
        run_id: int = 1,
        workers: int = 1,
    ) -> None:
        self._client_app = load_client_app(client_app)
        self._pool = (
            ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(client_app,),
            )
            if workers > 1
            else None
        )
        self._run = Run.create_empty(run_id)
        self._run.override_config = dict(run_config)
        self._contexts = {
            node_id: Context(
                run_id=run_id,
                node_id=node_id,
                node_config=dict(node_config),
                state=RecordDict(),
                run_config=dict(run_config),
            )
            for node_id, node_config in enumerate(node_configs, start=SUPERLINK_NODE_ID + 1)
        }
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        TaskIdentity.task_id = run_id
        self._pending: dict[str, Message] = {}

    def set_run(self, run: Run) -> None:
        """Replace the run (kept for interface compatibility)."""
        self._run = run

    @property
    def run(self) -> Run:
        """The run this grid serves."""
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """A new instruction message."""
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        """Ids of every virtual node."""
        return list(self._contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Run each message's ClientApp call and keep the reply for pulling."""
        batch = [(self._stamp(message), message) for message in messages]
        if self._pool is None:
            for message_id, message in batch:
                self._pending[message_id] = self._execute(message)
        else:
            jobs = [(m, self._contexts.get(m.metadata.dst_node_id)) for _, m in batch]
            for (message_id, _), (reply, context) in zip(
                batch, self._pool.map(_execute_in_worker, jobs), strict=True
            ):
                self._pending[message_id] = reply
                if context is not None:
                    self._contexts[context.node_id] = context
        return [message_id for message_id, _ in batch]

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Replies to the given message ids (each handed out once)."""
        return [self._pending.pop(i) for i in message_ids if i in self._pending]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Execute every message and return every reply (no waiting involved)."""
        return self.pull_messages(list(self.push_messages(messages)))

    def context_of(self, node_id: int) -> Context:
        """The persistent context of a virtual node."""
        return self._contexts[node_id]

    @staticmethod
    def _stamp(message: Message) -> str:
        message_id = uuid.uuid4().hex
        message.metadata.__dict__["_message_id"] = message_id
        return message_id

    def _execute(self, message: Message) -> Message:
        return _call(self._client_app, message, self._contexts.get(message.metadata.dst_node_id))


def _call(client_app: ClientApp, message: Message, context: Context | None) -> Message:
    """One ClientApp call; a missing node or a raising app becomes an error reply."""
    node_id = message.metadata.dst_node_id
    if context is None:
        return Message(Error(ErrorCode.NODE_UNAVAILABLE, f"no node {node_id}"), reply_to=message)
    try:
        return client_app(message, context)
    except Exception as error:  # a crashing ClientApp is a failed node, not a crashed run
        log.debug("ClientApp raised on node %s:\n%s", node_id, traceback.format_exc())
        reason = f"{type(error).__name__}: {error}"
        return Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason), reply_to=message)


_WORKER_APP: ClientApp | None = None


def _start_worker(app_ref: str) -> None:
    """Worker process set-up: one torch thread, the ClientApp imported by reference."""
    global _WORKER_APP  # noqa: PLW0603 -- one app per worker process, set once
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    torch.set_num_threads(1)
    _WORKER_APP = load_client_app(app_ref)


def _execute_in_worker(job: tuple[Message, Context | None]) -> tuple[Message, Context | None]:
    message, context = job
    assert _WORKER_APP is not None
    return _call(_WORKER_APP, message, context), context


def load_client_app(app_ref: str) -> ClientApp:
    """The ClientApp named ``module:attribute``."""
    module, _, attribute = app_ref.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    if not isinstance(app, ClientApp):
        raise TypeError(f"{app_ref} is not a flwr ClientApp")
    return app


def simulation_node_configs(num_nodes: int) -> list[UserConfig]:
    """``node_config`` of each virtual node, as Flower's simulation engine sets it."""
    return [{"partition-id": i, "num-partitions": num_nodes} for i in range(num_nodes)]
