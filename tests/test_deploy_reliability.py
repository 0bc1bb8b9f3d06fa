"""The round loop's exchanges as a deployment behaves: lost nodes and silent nodes."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import pytest
from flwr.app import ConfigRecord, Error, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fedcurate.protocol import DESCRIBE, ROLE_OWNER, NodeDescription
from server.nodes import AttributedGrid, FederationError, discover_nodes

ALIVE, GONE, SILENT = 11, 22, 33


@pytest.fixture(autouse=True)
def server_identity() -> Iterator[None]:
    """Messages are stamped with the identity of the process's task, the ServerApp here."""
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, SUPERLINK_NODE_ID, 7
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


class ScriptedGrid(Grid):
    """A SuperLink stand-in: ALIVE answers, GONE is answered for, SILENT never answers."""

    def __init__(self) -> None:
        self.sent: dict[str, Message] = {}
        self.pulls = 0

    def set_run(self, run: Run) -> None:
        raise NotImplementedError

    @property
    def run(self) -> Run:
        raise NotImplementedError

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return [ALIVE, GONE, SILENT]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for index, message in enumerate(messages):
            message_id = f"m{len(self.sent) + index}"
            message.metadata.__dict__["_message_id"] = message_id
            self.sent[message_id] = message
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self.pulls += 1
        replies = []
        for message_id in message_ids:
            asked = self.sent[message_id]
            node = asked.metadata.dst_node_id
            if node == ALIVE:
                replies.append(Message(_content_for(asked), reply_to=asked))
            elif node == GONE:
                replies.append(_answered_by_superlink(asked))
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        raise NotImplementedError  # the wrapper must not fall back to the 3 s poll


def _content_for(asked: Message) -> RecordDict:
    if asked.metadata.message_type == DESCRIBE:
        return NodeDescription(ROLE_OWNER, "owner-000", num_examples=100).to_content()
    return RecordDict({"ok": ConfigRecord()})


def _answered_by_superlink(asked: Message) -> Message:
    """What the SuperLink returns for a node whose heartbeat stopped."""
    reply = Message(Error(ErrorCode.NODE_UNAVAILABLE, "Node Unavailable"), reply_to=asked)
    reply.metadata.__dict__["_src_node_id"] = SUPERLINK_NODE_ID
    return reply


def _ask(node_id: int) -> Message:
    return Message(RecordDict(), dst_node_id=node_id, message_type="train")


def test_a_reply_the_superlink_gives_for_a_lost_node_is_attributed_to_that_node() -> None:
    assert _answered_by_superlink(_ask(GONE)).metadata.src_node_id == SUPERLINK_NODE_ID
    grid = AttributedGrid(ScriptedGrid())
    replies = list(grid.send_and_receive([_ask(ALIVE), _ask(GONE)], timeout=5))
    by_node = {reply.metadata.src_node_id: reply for reply in replies}
    assert set(by_node) == {ALIVE, GONE}
    assert not by_node[ALIVE].has_error()
    assert by_node[GONE].error.code == ErrorCode.NODE_UNAVAILABLE


def test_a_silent_node_costs_the_timeout_and_no_reply() -> None:
    scripted = ScriptedGrid()
    grid = AttributedGrid(scripted, poll_interval=0.05)
    started = time.monotonic()
    replies = list(grid.send_and_receive([_ask(ALIVE), _ask(SILENT)], timeout=0.5))
    elapsed = time.monotonic() - started
    assert [reply.metadata.src_node_id for reply in replies] == [ALIVE]
    assert 0.5 <= elapsed < 1.5
    assert scripted.pulls >= 5  # pulled every poll_interval, not every 3 s


def test_replies_that_all_arrived_return_at_once() -> None:
    scripted = ScriptedGrid()
    replies = list(AttributedGrid(scripted).send_and_receive([_ask(ALIVE)], timeout=60))
    assert len(replies) == 1
    assert scripted.pulls == 1


def test_discovery_names_why_each_missing_node_is_missing() -> None:
    grid = AttributedGrid(ScriptedGrid(), poll_interval=0.05)
    with pytest.raises(FederationError) as failure:
        discover_nodes(grid, expected_owners=3, need_curator=False, timeout=0.5)
    message = str(failure.value)
    assert message.startswith("1 owners answered, the run needs 3")
    assert f"node {GONE} could not describe itself: Node Unavailable" in message
    assert f"node {SILENT} no answer within 0s" in message
