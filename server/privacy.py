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
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, Strategy

from fedcurate.config import Config
from fedcurate.privacy.central import (
    ClientLevelAccountant,
    central_delta,
    central_noise_multiplier,
)
from server.errors import RunStoppedError

_FIELDS = {
    "dp_epsilon": "epsilon",
    "dp_epsilon_budget": "budget",
    "dp_delta": "delta",
    "dp_noise_multiplier": "noise_multiplier",
    "dp_rounds_trained": "rounds_trained",
}


class PrivacyMonitor:
    """What the server knows of the run's privacy spending.

    Under ``dp_sgd`` it collects each owner's ledger summary (the owners' own
    ledgers enforce their budgets). Under ``central_dp`` the server itself is
    the mechanism: it holds the client-level accountant and stops the run
    before a round would exceed the budget.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.owners: dict[str, dict[str, Any]] = {}
        self.central = _central_accountant(config)

    @property
    def owner_level(self) -> bool:
        """Whether owners train with sample-level DP-SGD."""
        return self.config.privacy.name == "dp_sgd"

    @property
    def withholds_data_metrics(self) -> bool:
        """Whether owners keep metrics of their private data to themselves (any DP)."""
        return self.config.privacy.name != "none"

    def observe(self, owner: str, record: ConfigRecord, server_round: int, declined: bool) -> None:
        """Take an owner's ledger summary from its reply of ``server_round``."""
        entry = self.owners.setdefault(owner, {"stopped_on_budget": None})
        for wire, name in _FIELDS.items():
            value = record.get(wire)
            if isinstance(value, int | float) and math.isfinite(value):
                entry[name] = value
        if declined and entry["stopped_on_budget"] is None:
            entry["stopped_on_budget"] = server_round

    def check_budget(self, server_round: int) -> None:
        """Stop before a client-level release that would exceed the budget."""
        if self.central is not None and self.central.would_exceed():
            raise RunStoppedError(
                f"round {server_round}: client-level ε would exceed the budget "
                f"{self.central.budget:g} (spent {self.central.epsilon():.3f})"
            )

    def release(self, strategy: Strategy, averaged: int) -> None:
        """Scale the DP wrapper's noise to the ``averaged`` updates, and account the round."""
        if self.central is None:
            return
        assert isinstance(strategy, DifferentialPrivacyServerSideFixedClipping)
        strategy.num_sampled_clients = averaged
        self.central.record()

    def round_record(self) -> dict[str, Any] | None:
        """ε after this round, for ``metrics.jsonl``."""
        if self.central is not None:
            return {"budget": self.central.budget, "client_level_epsilon": self.central.epsilon()}
        if not self.owner_level:
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
        if self.central is not None:
            return self._central_summary(self.central)
        if not self.owner_level:
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

    def _central_summary(self, central: ClientLevelAccountant) -> dict[str, Any]:
        epsilon = central.epsilon()
        return {
            "mechanism": "central_dp",
            "description": (
                "Client-level (ε, δ)-DP at a trusted server (DP-FedAvg with Flower's "
                "server-side fixed clipping): updates clipped to "
                f"{self.config.privacy.max_grad_norm:g}, averaged with equal weights, "
                "Gaussian noise added; one release per round, no sampling amplification. "
                "Owners release no loss or accuracy measured on their private data."
            ),
            "budget": central.budget,
            "epsilon": epsilon,
            "max_epsilon": epsilon,
            "delta": central.delta,
            "noise_multiplier": central.noise_multiplier,
            "rounds": len(central.history),
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-data copy for checkpoints."""
        return {
            "owners": {o: dict(e) for o, e in self.owners.items()},
            "central": None if self.central is None else self.central.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.owners = {o: dict(e) for o, e in state["owners"].items()}
        if self.central is not None:
            self.central.load_state_dict(state["central"])


def _central_accountant(config: Config) -> ClientLevelAccountant | None:
    cfg = config.privacy
    if cfg.name != "central_dp":
        return None
    delta = central_delta(cfg, config.num_clients)
    rounds = cfg.planned_rounds or config.num_rounds
    return ClientLevelAccountant(central_noise_multiplier(cfg, delta, rounds), delta, cfg.epsilon)
