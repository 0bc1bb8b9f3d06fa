"""Who is in the federation: node ids mapped to owner names and the curator.

Flower node ids are random per run, so everything the server decides (sampling,
ledgers, checkpoints) is keyed by the stable names nodes report for themselves.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from fedcurate.protocol import DESCRIBE, ROLE_CURATOR, NodeDescription, ProtocolError

log = logging.getLogger(__name__)

#: Seconds between pulls for replies. Flower's deployment grid waits 3 s between
#: pulls, adding 1.5 s on average to every exchange (a round has two or more).
REPLY_POLL_INTERVAL = 0.2


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
    for reply in exchange(grid, messages, timeout):
        node_id = reply.metadata.src_node_id
        if reply.has_error():
            log.warning("node %s could not describe itself: %s", node_id, reply.error.reason)
            continue
        try:
            description = NodeDescription.from_content(reply.content)
        except ProtocolError as error:
            log.warning("node %s sent an invalid description: %s", node_id, error)
            continue
        _register(directory, node_id, description)
    _check_complete(directory, expected_owners, need_curator)
    return directory


def exchange(
    grid: Grid,
    messages: list[Message],
    timeout: float,
    poll_interval: float = REPLY_POLL_INTERVAL,
) -> list[Message]:
    """Send ``messages``; collect replies until all arrived or ``timeout`` passed.

    What ``grid.send_and_receive`` does, with a pull interval of ``poll_interval``
    instead of the deployment grid's fixed 3 s.
    """
    pending = set(grid.push_messages(messages))
    deadline = time.monotonic() + timeout
    replies: list[Message] = []
    while pending:
        for reply in grid.pull_messages(list(pending)):
            replies.append(reply)
            pending.discard(reply.metadata.reply_to_message_id)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(poll_interval)
    return replies


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


def _check_complete(directory: NodeDirectory, expected_owners: int, need_curator: bool) -> None:
    if len(directory.owners) < expected_owners:
        raise FederationError(
            f"{len(directory.owners)} owners answered, the run needs {expected_owners}"
        )
    if need_curator and directory.curator is None:
        raise FederationError("no curator node answered; start one with role=curator")
