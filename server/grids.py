"""Grid helpers for the round loop."""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run


class DelegatingGrid(Grid):
    """A grid that hands every call to ``grid``: the base of grids changing one behaviour.

    Parameters
    ----------
    grid : Grid
        The wrapped grid.
    """

    def __init__(self, grid: Grid) -> None:
        self._grid = grid

    def set_run(self, run: Run) -> None:
        """Delegate to the wrapped grid."""
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        """The wrapped grid's run."""
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Delegate to the wrapped grid."""
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        """Delegate to the wrapped grid."""
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Delegate to the wrapped grid."""
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Delegate to the wrapped grid."""
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Delegate to the wrapped grid."""
        return self._grid.send_and_receive(messages, timeout=timeout)


class SubsetGrid(DelegatingGrid):
    """A view of ``grid`` that exposes only ``node_ids``.

    The round loop samples owners itself (seeded, by owner name) and hands a
    strategy this view, so Flower's own sampling, which draws from the global
    ``random`` over per-run random node ids, selects exactly the chosen nodes.
    """

    def __init__(self, grid: Grid, node_ids: Iterable[int]) -> None:
        super().__init__(grid)
        self._node_ids = list(node_ids)

    def get_node_ids(self) -> Iterable[int]:
        """Only the selected nodes."""
        return list(self._node_ids)


def content_bytes(content: RecordDict) -> int:
    """Bytes of a message's records as Flower counts them."""
    return int(sum(record.count_bytes() for record in content.values()))
