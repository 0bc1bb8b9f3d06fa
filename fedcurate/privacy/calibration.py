"""Per-owner DP-SGD settings: validation, delta and the noise multiplier.

The noise multiplier is fixed once per owner from the planned total number of
steps (``planned_rounds`` x steps per round at sample rate ``q = batch_size / n``),
so an owner that trains in every planned round ends exactly within its epsilon
budget. Calibrating again each round would restart the budget; changing sigma or
q between rounds would also make PRV accounting slow (one history entry each).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from opacus.accountants.utils import get_noise_multiplier

from fedcurate.config import ConfigError, PrivacyConfig, TrainConfig
from fedcurate.privacy.accountants import ACCOUNTANTS
from fedcurate.privacy.mechanisms import GRAD_SAMPLE_MODES
from fedcurate.privacy.rdp import rdp_noise_multiplier

#: Largest default delta; smaller owners get ``1 / (10 n)``.
MAX_DEFAULT_DELTA = 1e-5


def default_delta(num_examples: int) -> float:
    """``min(1e-5, 1 / (10 n))``: well below the 1/n at which DP stops meaning much."""
    if num_examples < 1:
        raise ValueError(f"an owner needs at least one example, got {num_examples}")
    return min(MAX_DEFAULT_DELTA, 1.0 / (10 * num_examples))


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def validate_privacy_config(cfg: PrivacyConfig) -> None:
    """Check the DP-SGD fields of ``cfg``; raise :class:`ConfigError` naming the key."""
    _require(_positive(cfg.epsilon), "privacy.epsilon", f"must be positive, got {cfg.epsilon}")
    if cfg.delta is not None:
        _require(0 < cfg.delta < 1, "privacy.delta", f"must be in (0, 1), got {cfg.delta}")
    if cfg.noise_multiplier is not None:
        _require(
            _positive(cfg.noise_multiplier),
            "privacy.noise_multiplier",
            f"must be positive (or null to calibrate), got {cfg.noise_multiplier}",
        )
    _require(
        _positive(cfg.max_grad_norm),
        "privacy.max_grad_norm",
        f"must be positive, got {cfg.max_grad_norm}",
    )
    _require(
        cfg.accountant in ACCOUNTANTS,
        "privacy.accountant",
        f"'{cfg.accountant}' is not one of {sorted(ACCOUNTANTS)}",
    )
    _require(
        cfg.grad_sample_mode in GRAD_SAMPLE_MODES,
        "privacy.grad_sample_mode",
        f"'{cfg.grad_sample_mode}' is not one of {list(GRAD_SAMPLE_MODES)}",
    )
    if cfg.planned_rounds is not None:
        _require(
            cfg.planned_rounds >= 1,
            "privacy.planned_rounds",
            f"must be at least 1, got {cfg.planned_rounds}",
        )


@dataclass(frozen=True)
class DPPlan:
    """Everything that determines an owner's DP-SGD settings, before calibration.

    ``noise_multiplier`` is set only when the configuration fixes it.
    """

    epsilon: float
    delta: float
    max_grad_norm: float
    batch_size: int
    local_epochs: int
    num_examples: int
    planned_rounds: int
    accountant: str
    grad_sample_mode: str
    noise_multiplier: float | None = None

    @property
    def sample_rate(self) -> float:
        """Poisson sampling rate ``q = batch_size / n`` (at most 1)."""
        return min(1.0, self.batch_size / self.num_examples)

    @property
    def expected_batch_size(self) -> int:
        """``q n``: the denominator of the averaged noisy gradient."""
        return min(self.batch_size, self.num_examples)

    @property
    def steps_per_epoch(self) -> int:
        """``ceil(n / batch_size)``, the number of steps of non-private local SGD."""
        return math.ceil(self.num_examples / self.batch_size)

    @property
    def steps_per_round(self) -> int:
        """DP-SGD steps in one round of local training."""
        return self.local_epochs * self.steps_per_epoch

    @property
    def planned_steps(self) -> int:
        """Steps if the owner trains in every planned round."""
        return self.planned_rounds * self.steps_per_round


@dataclass(frozen=True)
class DPSettings:
    """A plan with its noise multiplier: what DP-SGD and the ledger run with."""

    plan: DPPlan
    noise_multiplier: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier >= 0):
            raise ValueError(f"noise multiplier must be >= 0, got {self.noise_multiplier}")


def plan_privacy(
    privacy: PrivacyConfig, train: TrainConfig, num_examples: int, *, num_rounds: int
) -> DPPlan:
    """Validate the configuration and fix one owner's plan.

    Parameters
    ----------
    privacy, train : PrivacyConfig, TrainConfig
        The experiment's privacy and local-training settings.
    num_examples : int
        Size ``n`` of the owner's training set.
    num_rounds : int
        The experiment's ``num_rounds``; used when ``privacy.planned_rounds`` is unset.
    """
    validate_privacy_config(privacy)
    _require(num_examples >= 1, "num_examples", f"an owner needs examples, got {num_examples}")
    _require(train.batch_size >= 1, "train.batch_size", "must be at least 1")
    _require(train.local_epochs >= 1, "train.local_epochs", "must be at least 1")
    planned = privacy.planned_rounds if privacy.planned_rounds is not None else num_rounds
    _require(planned >= 1, "num_rounds", f"must be at least 1, got {planned}")
    return DPPlan(
        epsilon=float(privacy.epsilon),
        delta=float(privacy.delta) if privacy.delta is not None else default_delta(num_examples),
        max_grad_norm=float(privacy.max_grad_norm),
        batch_size=train.batch_size,
        local_epochs=train.local_epochs,
        num_examples=num_examples,
        planned_rounds=planned,
        accountant=privacy.accountant,
        grad_sample_mode=privacy.grad_sample_mode,
        noise_multiplier=privacy.noise_multiplier,
    )


@functools.lru_cache(maxsize=256)
def calibrate(plan: DPPlan) -> DPSettings:
    """The plan's settings: its fixed noise multiplier, or the smallest one found
    by Opacus' binary search for which ``planned_steps`` stay within ``epsilon``.

    RDP plans run :func:`~fedcurate.privacy.rdp.rdp_noise_multiplier`: Opacus'
    search and sigma in about 0.1 s of CPU, where Opacus' own took 1.5-6 s on
    these CPUs. PRV plans still run Opacus' own, hence the cache per plan.

    Raises
    ------
    ConfigError
        The budget cannot be met with any reasonable noise.
    """
    if plan.noise_multiplier is not None:
        return DPSettings(plan, plan.noise_multiplier)
    try:
        sigma = _noise_multiplier(plan)
    except ValueError as error:
        raise ConfigError(f"privacy.epsilon: {plan.epsilon} is unreachable ({error})") from error
    return DPSettings(plan, float(sigma))


def _noise_multiplier(plan: DPPlan) -> float:
    """Opacus' ``get_noise_multiplier`` for the plan's budget, sampling and steps."""
    if plan.accountant == "rdp":
        return rdp_noise_multiplier(
            target_epsilon=plan.epsilon,
            target_delta=plan.delta,
            sample_rate=plan.sample_rate,
            steps=plan.planned_steps,
        )
    return float(
        get_noise_multiplier(
            target_epsilon=plan.epsilon,
            target_delta=plan.delta,
            sample_rate=plan.sample_rate,
            steps=plan.planned_steps,
            accountant=plan.accountant,
        )
    )
