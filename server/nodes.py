"""Who is in the federation: node ids mapped to owner names and the curator.

Flower node ids are random per run, so everything the server decides (sampling,
ledgers, checkpoints) is keyed by the stable names nodes report for themselves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from fedcurate.protocol import DESCRIBE, ROLE_CURATOR, NodeDescription, ProtocolError
from server.grids import DelegatingGrid

log = logging.getLogger(__name__)

#: Seconds between pulls for replies. Flower's deployment grid waits 3 s between
#: pulls, adding 1.5 s on average to every exchange (a round has two or more);
#: its simulation grid waits 0.1 s.
REPLY_POLL_INTERVAL = 0.1


class FederationError(RuntimeError):
    """The federation cannot run as configured (missing nodes, duplicate names)."""


@dataclass
class NodeDirectory:
    """Owner name -> node id, and the curator's node id if there is one."""

    owners: dict[str, int] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    curator: int | None = None

    @property
    def owner_names(self) -> list[str]:
        """Owner names in a stable (sorted) order."""
        return sorted(self.owners)

    def name_of(self, node_id: int) -> str:
        """The owner name of ``node_id``."""
        for name, known in self.owners.items():
            if known == node_id:
                return name
        raise KeyError(f"node {node_id} is not a known owner")


def discover_nodes(
    grid: Grid, expected_owners: int, need_curator: bool, timeout: float
) -> NodeDirectory:
    """Wait for the nodes, ask each who it is, and build the directory.

    Parameters
    ----------
    grid : Grid
        The run's grid.
    expected_owners : int
        Owners the run needs before it starts.
    need_curator : bool
        Whether a curator node must be present.
    timeout : float
        Seconds to wait for nodes to connect and answer.

    Raises
    ------
    FederationError
        Too few owners, a missing curator, or two nodes claiming one name.
    """
    expected = expected_owners + int(need_curator)
    deadline = time.monotonic() + timeout
    while len(node_ids := sorted(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline:
            raise FederationError(
                f"only {len(node_ids)} of {expected} nodes connected within {timeout:.0f}s"
            )
        time.sleep(1.0)
    messages = [
        Message(RecordDict(), dst_node_id=node_id, message_type=DESCRIBE) for node_id in node_ids
    ]
    directory = NodeDirectory()
    # Why a node is missing from the directory: named in the error if too few remain.
    problems = dict.fromkeys(node_ids, f"no answer within {timeout:.0f}s")
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node_id = reply.metadata.src_node_id
        if reply.has_error():
            problems[node_id] = f"could not describe itself: {reply.error.reason}"
            log.warning("node %s %s", node_id, problems[node_id])
            continue
        try:
            description = NodeDescription.from_content(reply.content)
        except ProtocolError as error:
            problems[node_id] = f"sent an invalid description: {error}"
            log.warning("node %s %s", node_id, problems[node_id])
            continue
        problems.pop(node_id, None)
        _register(directory, node_id, description)
    _check_complete(directory, expected_owners, need_curator, problems)
    return directory


class AttributedGrid(DelegatingGrid):
    """``grid`` whose ``send_and_receive`` attributes every reply to the node asked.

    Two things a deployment needs from the round loop's exchanges:

    * when a SuperNode is gone, the SuperLink answers for it with an error reply
      whose source is the SuperLink itself; that reply is re-issued as an error
      from the node that was asked, so the loop records that owner as failed
      instead of meeting an unknown node id;
    * replies are pulled every ``poll_interval`` seconds, not every 3 s as the
      deployment grid does.

    Parameters
    ----------
    grid : Grid
        The run's grid.
    poll_interval : float
        Seconds between pulls for replies.
    """

    def __init__(self, grid: Grid, poll_interval: float = REPLY_POLL_INTERVAL) -> None:
        super().__init__(grid)
        self.poll_interval = poll_interval

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages``; pull replies until all arrived or ``timeout`` passed."""
        sent = list(messages)
        pending = dict(zip(self._grid.push_messages(sent), sent, strict=True))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending:
            for reply in self._grid.pull_messages(list(pending)):
                asked = pending.pop(reply.metadata.reply_to_message_id, None)
                if asked is not None:
                    replies.append(_from_node_asked(reply, asked))
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(self.poll_interval)
        return replies


def _from_node_asked(reply: Message, asked: Message) -> Message:
    if reply.metadata.src_node_id == asked.metadata.dst_node_id or not reply.has_error():
        return reply
    return Message(reply.error, reply_to=asked)


def _register(directory: NodeDirectory, node_id: int, description: NodeDescription) -> None:
    if description.role == ROLE_CURATOR:
        if directory.curator is not None:
            raise FederationError(f"two curator nodes ({directory.curator} and {node_id})")
        directory.curator = node_id
        return
    if description.name in directory.owners:
        raise FederationError(
            f"owner name '{description.name}' claimed by nodes "
            f"{directory.owners[description.name]} and {node_id}"
        )
    directory.owners[description.name] = node_id
    directory.examples[description.name] = description.num_examples


def _check_complete(
    directory: NodeDirectory,
    expected_owners: int,
    need_curator: bool,
    problems: dict[int, str],
) -> None:
    details = "".join(f"; node {node_id} {problem}" for node_id, problem in problems.items())
    if len(directory.owners) < expected_owners:
        raise FederationError(
            f"{len(directory.owners)} owners answered, the run needs {expected_owners}{details}"
        )
    if need_curator and directory.curator is None:
        raise FederationError(f"no curator node answered; start one with role=curator{details}")
