"""Range checks of the curator's knobs (types are already checked by the schema)."""

from __future__ import annotations

from fedcurate.config import ConfigError, CuratorConfig
from fedcurate.curation.evaluator import UTILITIES
from fedcurate.curation.gtg import GTG_ESTIMATORS
from fedcurate.curation.methods import VALUATION_METHODS
from fedcurate.curation.policies import POLICIES


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"curator.{key}: {message}")


def check_curator_config(config: CuratorConfig) -> None:
    """Raise :class:`ConfigError` naming the first ``curator.*`` value out of range."""
    _require(
        config.name in VALUATION_METHODS,
        "name",
        f"'{config.name}' is not a valuation method; choose one of {sorted(VALUATION_METHODS)} "
        "(curator=none turns the curator off)",
    )
    _require(config.utility in UTILITIES, "utility", f"use one of {list(UTILITIES)}")
    _require(config.policy in POLICIES, "policy", f"use one of {sorted(POLICIES)}")
    for key in ("gtg_round_tolerance", "gtg_prefix_tolerance", "gtg_loss_prefix_fraction"):
        _require(getattr(config, key) >= 0.0, key, "must be >= 0")
    _require(config.gtg_min_permutations >= 1, "gtg_min_permutations", "must be >= 1")
    _require(
        config.gtg_max_permutations >= config.gtg_min_permutations,
        "gtg_max_permutations",
        "must be >= gtg_min_permutations",
    )
    _require(config.gtg_convergence_window >= 1, "gtg_convergence_window", "must be >= 1")
    _require(config.gtg_convergence_tolerance > 0.0, "gtg_convergence_tolerance", "must be > 0")
    _require(
        config.gtg_estimator in GTG_ESTIMATORS, "gtg_estimator", f"use one of {GTG_ESTIMATORS}"
    )
    _require(config.banzhaf_samples >= 2, "banzhaf_samples", "must be >= 2")
    _require(config.first_order_permutations >= 1, "first_order_permutations", "must be >= 1")
    _require(config.free_rider_memory >= 0, "free_rider_memory", "must be >= 0")
    _require(config.free_rider_tolerance >= 0.0, "free_rider_tolerance", "must be >= 0")
    _require(config.warmup_rounds >= 1, "warmup_rounds", "must be >= 1")
    _require(0.0 < config.exclusion_confidence < 1.0, "exclusion_confidence", "must be in (0, 1)")
    _require(config.exclusion_outlier_threshold >= 0.0, "exclusion_outlier_threshold", ">= 0")
    _require(config.weight_floor >= 0.0, "weight_floor", "must be >= 0")
    _require(config.weight_cap >= config.weight_floor, "weight_cap", "must be >= weight_floor")
    _require(
        config.weight_floor <= config.warmup_floor <= config.weight_cap,
        "warmup_floor",
        "need weight_floor <= warmup_floor <= weight_cap",
    )
    _require(0.0 <= config.reputation_decay <= 1.0, "reputation_decay", "must be in [0, 1]")
    _require(
        0.0 <= config.quarantine_below <= config.readmit_above <= 1.0,
        "quarantine_below",
        "need 0 <= quarantine_below <= readmit_above <= 1",
    )
