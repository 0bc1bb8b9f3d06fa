"""What the server learns about the owners' privacy spending, for the run's outputs.

Owners under DP-SGD attach a public summary of their own ledger to every reply
(ε spent, δ, noise multiplier, rounds trained, whether they stopped on budget).
The server only collects it: the owner's ledger, not this monitor, is what
enforces the budget.
"""

from __future__ import annotations

import math
from typing import Any

from flwr.app import ConfigRecord

from fedcurate.config import Config

_FIELDS = {
    "dp_epsilon": "epsilon",
    "dp_epsilon_budget": "budget",
    "dp_delta": "delta",
    "dp_noise_multiplier": "noise_multiplier",
    "dp_rounds_trained": "rounds_trained",
}


class PrivacyMonitor:
    """Latest privacy summary of each owner, and the rounds in which owners stopped."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.owners: dict[str, dict[str, Any]] = {}

    @property
    def enabled(self) -> bool:
        """Whether owners train with sample-level DP."""
        return self.config.privacy.name == "dp_sgd"

    def observe(self, owner: str, record: ConfigRecord, server_round: int, declined: bool) -> None:
        """Take an owner's ledger summary from its reply of ``server_round``."""
        entry = self.owners.setdefault(owner, {"stopped_on_budget": None})
        for wire, name in _FIELDS.items():
            value = record.get(wire)
            if isinstance(value, int | float) and math.isfinite(value):
                entry[name] = value
        if declined and entry["stopped_on_budget"] is None:
            entry["stopped_on_budget"] = server_round

    def rounds_trained(self, owner: str) -> int:
        """Rounds the owner reported having trained (0 if never heard from)."""
        return int(self.owners.get(owner, {}).get("rounds_trained", 0))

    def round_record(self) -> dict[str, Any] | None:
        """ε of every owner after this round, for ``metrics.jsonl``."""
        if not self.enabled:
            return None
        return {
            "budget": self.config.privacy.epsilon,
            "epsilon": {o: e["epsilon"] for o, e in sorted(self.owners.items()) if "epsilon" in e},
            "stopped": {
                o: e["stopped_on_budget"]
                for o, e in sorted(self.owners.items())
                if e["stopped_on_budget"] is not None
            },
        }

    def summary(self) -> dict[str, Any] | None:
        """``summary.json``'s ``privacy`` entry."""
        if not self.enabled:
            return None
        spent = [e["epsilon"] for e in self.owners.values() if "epsilon" in e]
        return {
            "mechanism": "dp_sgd",
            "description": (
                "Sample-level (ε, δ)-DP for each owner's own examples: Opacus DP-SGD with "
                f"{self.config.privacy.accountant} accounting over the rounds the owner "
                "trained; no amplification from the server's client sampling is claimed. "
                "Owners release no loss or accuracy measured on their private data."
            ),
            "budget": self.config.privacy.epsilon,
            "max_epsilon": max(spent) if spent else None,
            "owners": dict(sorted(self.owners.items())),
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-data copy for checkpoints."""
        return {"owners": {o: dict(e) for o, e in self.owners.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.owners = {o: dict(e) for o, e in state["owners"].items()}
