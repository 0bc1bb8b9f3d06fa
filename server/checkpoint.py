"""Server checkpoints: everything needed to resume a run after a crash."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord

from fedcurate.config import Config, config_to_dict
from fedcurate.io import atomic_write_pickle

#: Settings that change how a run executes, not what it computes.
EXECUTION_KEYS = ("backend", "workers", "resume", "num_rounds", "round_timeout", "hpo", "report")

_FILE = re.compile(r"round-(\d+)\.pkl$")


def experiment_fingerprint(config: Config) -> str:
    """A hash of everything that determines the run's results."""
    settings = {k: v for k, v in config_to_dict(config).items() if k not in EXECUTION_KEYS}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ServerState:
    """The server's state after a completed round (round 0: before training).

    Attributes
    ----------
    round : int
        Last completed round.
    arrays : ArrayRecord
        Global model after that round.
    strategy : dict
        The strategy's ``strategy_state_dict``.
    components : dict
        ``state_dict`` of every other stateful piece (curator ledger, totals, ...),
        keyed by component name.
    wall_seconds : float
        Wall time spent on the run so far, over every resumption.
    """

    round: int
    arrays: ArrayRecord
    strategy: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0


class CheckpointStore:
    """Atomic per-round checkpoints in ``run_dir/checkpoints``.

    Parameters
    ----------
    directory : Path
        Where checkpoints live.
    fingerprint : str
        :func:`experiment_fingerprint` of the run; a checkpoint of another
        experiment is refused rather than silently resumed.
    keep : int
        How many most recent checkpoints to keep.
    """

    def __init__(self, directory: Path, fingerprint: str, keep: int = 2) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self.keep = keep

    def save(self, state: ServerState) -> Path:
        """Write ``state`` and prune older checkpoints."""
        payload = {"fingerprint": self.fingerprint, "state": state}
        path = atomic_write_pickle(self.directory / f"round-{state.round:05d}.pkl", payload)
        for old in self._files()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self) -> ServerState | None:
        """The most recent checkpoint, or ``None`` when there is none.

        Raises
        ------
        ValueError
            The checkpoint belongs to a different experiment or cannot be read.
        """
        files = self._files()
        if not files:
            return None
        path = files[-1]
        try:
            payload = pickle.loads(path.read_bytes())
        except (pickle.UnpicklingError, EOFError, AttributeError) as error:
            raise ValueError(f"{path}: unreadable checkpoint ({error})") from error
        if payload.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"{path}: checkpoint of a different experiment (fingerprint "
                f"{payload.get('fingerprint')} != {self.fingerprint}); use a new run directory"
            )
        state: ServerState = payload["state"]
        return state

    def _files(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(p for p in self.directory.iterdir() if _FILE.search(p.name))
