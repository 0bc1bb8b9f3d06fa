"""State a site keeps between rounds and across restarts of its process.

Values live in Flower's ``context.state`` (fast, per run) and are mirrored to
an atomically written file in the site's state directory, so a restarted
SuperNode or a resumed simulation continues where it stopped.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context

from fedcurate.io import atomic_write_bytes

_RECORD = "fedcurate-site-state"


class SiteState:
    """Named byte blobs kept in ``context.state`` and on disk.

    Parameters
    ----------
    context : Context
        The node's Flower context.
    directory : Path
        The site's state directory.
    """

    def __init__(self, context: Context, directory: Path) -> None:
        self.directory = directory
        if _RECORD not in context.state.config_records:
            context.state[_RECORD] = ConfigRecord()
        self._record: ConfigRecord = context.state.config_records[_RECORD]

    def get_bytes(self, key: str) -> bytes | None:
        """The stored value, from memory or else from disk; ``None`` if never set."""
        if key in self._record:
            value = self._record[key]
            assert isinstance(value, bytes)
            return value
        path = self.directory / key
        if path.exists():
            value = path.read_bytes()
            self._record[key] = value
            return value
        return None

    def set_bytes(self, key: str, value: bytes, mode: int = 0o600) -> None:
        """Store ``value`` in memory and atomically on disk."""
        atomic_write_bytes(self.directory / key, value, mode)
        self._record[key] = value

    def get_array(self, key: str) -> np.ndarray | None:
        """A stored NumPy array."""
        raw = self.get_bytes(key)
        return None if raw is None else np.load(io.BytesIO(raw), allow_pickle=False)

    def set_array(self, key: str, value: np.ndarray) -> None:
        """Store a NumPy array."""
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        self.set_bytes(key, buffer.getvalue())
