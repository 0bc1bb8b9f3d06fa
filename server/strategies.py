"""Flower strategies by name, with checkpointable state.

The round loop (``server.loop``) samples owners itself and hands each strategy a
grid restricted to the sampled nodes, so strategies are built to take every node
they are offered. Their server-side optimiser state (FedAdam moments, FedAvgM
momentum, the arrays they remember) is captured by :func:`strategy_state_dict`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    Strategy,
)

from fedcurate.config import Config, ConfigError

#: Attributes of Flower's strategies that change from round to round.
STATEFUL_ATTRIBUTES = ("current_arrays", "m_t", "v_t", "momentum_vector")


def _sampling(config: Config) -> dict[str, Any]:
    return {
        "fraction_train": 1.0,
        "fraction_evaluate": 1.0,
        "min_train_nodes": 1,
        "min_evaluate_nodes": 1,
        "min_available_nodes": 1,
    }


def _fedopt_knobs(config: Config) -> dict[str, Any]:
    cfg = config.strategy
    return {
        "eta": cfg.server_lr,
        "eta_l": config.train.lr,
        "beta_1": cfg.beta_1,
        "beta_2": cfg.beta_2,
        "tau": cfg.tau,
    }


STRATEGIES: dict[str, Callable[[Config], Strategy]] = {
    "fedavg": lambda c: FedAvg(**_sampling(c)),
    "fedprox": lambda c: FedProx(**_sampling(c), proximal_mu=c.strategy.proximal_mu),
    "fedadam": lambda c: FedAdam(**_sampling(c), **_fedopt_knobs(c)),
    "fedyogi": lambda c: FedYogi(**_sampling(c), **_fedopt_knobs(c)),
    "fedavgm": lambda c: FedAvgM(
        **_sampling(c),
        server_learning_rate=c.strategy.server_lr,
        server_momentum=c.strategy.server_momentum,
    ),
    "fedmedian": lambda c: FedMedian(**_sampling(c)),
    "fedtrimmedavg": lambda c: FedTrimmedAvg(**_sampling(c), beta=c.strategy.trim_beta),
    "krum": lambda c: Krum(**_sampling(c), num_malicious_nodes=c.strategy.num_malicious),
    "multikrum": lambda c: MultiKrum(
        **_sampling(c),
        num_malicious_nodes=c.strategy.num_malicious,
        num_nodes_to_select=c.strategy.num_to_select,
    ),
}


def build_strategy(config: Config, noise_multiplier: float | None = None) -> Strategy:
    """The Flower strategy named by ``config.strategy.name``.

    With ``privacy=central_dp`` it is wrapped in Flower's
    ``DifferentialPrivacyServerSideFixedClipping`` with ``noise_multiplier``
    (see :mod:`fedcurate.privacy.central` for the accounting).
    """
    try:
        factory = STRATEGIES[config.strategy.name]
    except KeyError:
        raise ConfigError(
            f"strategy.name: '{config.strategy.name}' is not one of {sorted(STRATEGIES)}"
        ) from None
    strategy = factory(config)
    if config.privacy.name != "central_dp":
        return strategy
    assert noise_multiplier is not None, "central DP needs the accountant's noise multiplier"
    return DifferentialPrivacyServerSideFixedClipping(
        strategy,
        noise_multiplier=noise_multiplier,
        clipping_norm=config.privacy.max_grad_norm,
        num_sampled_clients=min(
            config.num_clients, max(1, round(config.fraction_train * config.num_clients))
        ),
    )


def strategy_state_dict(strategy: Strategy) -> dict[str, Any]:
    """A deep copy of the strategy's round-to-round state (wrapped strategies included)."""
    state: dict[str, Any] = {
        name: copy.deepcopy(getattr(strategy, name))
        for name in STATEFUL_ATTRIBUTES
        if hasattr(strategy, name)
    }
    inner = getattr(strategy, "strategy", None)
    if isinstance(inner, Strategy):
        state[WRAPPED] = strategy_state_dict(inner)
    return state


def load_strategy_state_dict(strategy: Strategy, state: dict[str, Any]) -> None:
    """Restore what :func:`strategy_state_dict` captured."""
    for name, value in state.items():
        if name == WRAPPED:
            load_strategy_state_dict(strategy.strategy, value)  # type: ignore[attr-defined]
            continue
        if not hasattr(strategy, name):
            raise ValueError(f"{type(strategy).__name__} has no state '{name}' to restore")
        setattr(strategy, name, copy.deepcopy(value))


#: Key of a wrapped strategy's own state (Flower's DP wrappers hold one).
WRAPPED = "wrapped-strategy"
