"""Client-level DP at the server (``privacy=central_dp``): DP-FedAvg accounting.

The server clips every owner's update to ``max_grad_norm`` (the per-update L2
norm here), averages them with *equal* weights and adds Gaussian noise of
standard deviation ``z C / m`` (Flower's ``DifferentialPrivacyServerSideFixedClipping``,
McMahan et al., ICLR 2018). Neighbouring federations differ by one whole owner,
so the guarantee protects owners, not examples, and needs a trusted server: it
sees individual updates. Use it when owners are individuals (phones, patients)
and the server is trusted; use ``dp_sgd`` when each owner protects its own
examples from everyone, the server included.

Each aggregated round is one Gaussian mechanism; no amplification from the
server's client sampling is claimed (``q = 1``). The noise is scaled to the
number of updates actually averaged (owners that failed or were excluded do not
shrink the denominator of the sensitivity), so every round releases with the
same multiplier ``z`` and the budget holds whatever happens to the owners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedcurate.config import PrivacyConfig
from fedcurate.privacy.rdp import HistoryEntry, rdp_epsilon, rdp_noise_multiplier

#: Releases under central DP are whole rounds: no subsampling amplification.
NO_AMPLIFICATION = 1.0


def central_noise_multiplier(cfg: PrivacyConfig, delta: float, rounds: int) -> float:
    """``z``: the configured one, or the smallest keeping ``rounds`` releases within ``epsilon``."""
    if cfg.noise_multiplier is not None:
        return cfg.noise_multiplier
    return rdp_noise_multiplier(
        target_epsilon=cfg.epsilon, target_delta=delta, sample_rate=NO_AMPLIFICATION, steps=rounds
    )


def central_delta(cfg: PrivacyConfig, num_owners: int) -> float:
    """δ for client-level DP: the configured one or ``1 / (10 n)`` over the owners."""
    return cfg.delta if cfg.delta is not None else 1.0 / (10 * num_owners)


@dataclass
class ClientLevelAccountant:
    """The server's RDP account of client-level releases (Opacus-style state).

    Parameters
    ----------
    noise_multiplier : float
        ``z`` of the Gaussian noise relative to the clipping norm.
    delta : float
        δ at which ε is reported.
    budget : float
        ε the run may not exceed.
    """

    noise_multiplier: float
    delta: float
    budget: float
    history: list[HistoryEntry] = field(default_factory=list)

    def _release(self) -> HistoryEntry:
        return (self.noise_multiplier, NO_AMPLIFICATION, 1)

    def epsilon(self) -> float:
        """ε spent so far."""
        return rdp_epsilon(self.history, self.delta)

    def would_exceed(self) -> bool:
        """Whether one more round would push ε over the budget."""
        return rdp_epsilon([*self.history, self._release()], self.delta) > self.budget

    def record(self) -> None:
        """Compose one aggregated round."""
        self.history.append(self._release())

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state."""
        return {"history": [list(entry) for entry in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.history = [(float(z), float(q), int(s)) for z, q, s in state["history"]]
