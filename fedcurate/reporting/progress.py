"""Progress of a run, one line per round, readable in a terminal and in CI logs."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class RoundProgress:
    """Prints ``[round r/R]`` lines with accuracy, loss, replies and timing.

    Parameters
    ----------
    total_rounds : int
        Rounds the run is configured for.
    stream : TextIO
        Where to print (stderr by default so stdout stays parseable).
    """

    def __init__(self, total_rounds: int, stream: TextIO | None = None) -> None:
        self.total_rounds = total_rounds
        self.stream = stream or sys.stderr
        self._width = len(str(total_rounds))

    def round_done(self, record: dict[str, Any]) -> None:
        """Print the line for one finished round record."""
        central = record.get("central") or {}
        federated = record.get("federated") or {}
        parts = [f"[round {record['round']:>{self._width}}/{self.total_rounds}]"]
        if central:
            parts.append(f"acc {central['accuracy']:.4f} loss {central['loss']:.4f}")
        if federated:
            parts.append(f"owners' acc {federated['accuracy']:.4f}")
        parts.append(f"{len(record['replied'])}/{len(record['sampled'])} replied")
        if record.get("rejected"):
            parts.append(f"{len(record['rejected'])} rejected")
        parts.append(f"{record['round_seconds']:.2f}s")
        print(" | ".join(parts), file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """Print a free-form status line."""
        print(text, file=self.stream, flush=True)
