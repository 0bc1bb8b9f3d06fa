"""The run directory: ``metrics.jsonl``, ``summary.json``, ``config.yaml``.

Every file is written atomically; ``metrics.jsonl`` is rewritten whole on each
append (it is small), so a crash never leaves a torn line and a resumed run can
drop records of rounds that its checkpoint does not cover.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedcurate.curation.ledger import STATE_VERSION, ContributionLedger
from fedcurate.io import atomic_write_json, atomic_write_text

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"
OVERRIDES_FILE = "overrides.txt"


def excluded_at_end(ledger: Mapping[str, Any]) -> dict[str, str]:
    """Owner -> why it was left out of the last round it took part in, from ``ledger.json``.

    See :meth:`~fedcurate.curation.ledger.ContributionLedger.excluded_at_end`.
    """
    restored = ContributionLedger()
    restored.load_state_dict({"version": STATE_VERSION, "rounds": ledger.get("rounds") or []})
    return restored.excluded_at_end()


class RunOutputs:
    """Reader and writer of one run directory.

    Parameters
    ----------
    run_dir : str or Path
        The directory (created if missing).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def metrics_path(self) -> Path:
        """``metrics.jsonl``: one JSON object per completed round."""
        return self.run_dir / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        """``summary.json``: the run's outcome."""
        return self.run_dir / SUMMARY_FILE

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every round record written so far."""
        if not self.metrics_path.exists():
            return []
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Add one round record."""
        self._write_metrics([*self.read_metrics(), record])

    def truncate_metrics(self, last_round: int) -> None:
        """Drop records of rounds after ``last_round`` (used when resuming)."""
        kept = [r for r in self.read_metrics() if r["round"] <= last_round]
        self._write_metrics(kept)

    def _write_metrics(self, records: list[dict[str, Any]]) -> None:
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``."""
        atomic_write_json(self.summary_path, summary)

    def read_summary(self) -> dict[str, Any]:
        """The run's ``summary.json``."""
        result: dict[str, Any] = json.loads(self.summary_path.read_text(encoding="utf-8"))
        return result

    def write_config(self, config_yaml: str, overrides: list[str]) -> None:
        """The resolved config and the overrides that produced it."""
        atomic_write_text(self.run_dir / CONFIG_FILE, config_yaml)
        atomic_write_text(self.run_dir / OVERRIDES_FILE, "\n".join(overrides) + "\n")

    def read_overrides(self) -> list[str]:
        """The overrides this run was started with."""
        path = self.run_dir / OVERRIDES_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"{self.run_dir}: not a fedcurate run directory (no {path.name})"
            )
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line]
