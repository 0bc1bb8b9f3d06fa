"""Typed configuration: one dataclass schema per Hydra group.

Every entry point (``fedcurate simulate``, ``flwr run``, tuning, tests) turns Hydra
overrides into a :class:`Config` through :func:`compose_config` or
:func:`to_config`; library code receives these plain dataclasses, never Hydra
objects. Each schema is registered in Hydra's ConfigStore, so an unknown key or a
value of the wrong type fails before anything runs, with a message naming it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

#: The Hydra config tree. It sits beside the package in a source checkout (the
#: supported install is editable) and can be pointed elsewhere with FEDCURATE_CONF.
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class ConfigError(ValueError):
    """A configuration value or override is invalid; the message names it."""


@dataclass
class DatasetConfig:
    """Which data, and how it is split before partitioning.

    ``test_fraction`` is held out for the server's central evaluation,
    ``validation_fraction`` for the curator; neither reaches any owner. Each owner
    keeps ``owner_test_fraction`` of its share for federated evaluation.
    """

    name: str = "digits"
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    owner_test_fraction: float = 0.2
    # FedProx Synthetic(alpha, beta); ``iid`` selects its IID variant.
    alpha: float = 1.0
    beta: float = 1.0
    iid: bool = False
    num_features: int = 60
    num_classes: int = 10
    # Site data (``name=site``): a CSV or NPZ file, see fedcurate.data.sites.
    path: str | None = None
    label_column: str = "label"


@dataclass
class PartitionConfig:
    """How the owners' pool is divided among ``num_clients`` data owners."""

    name: str = "dirichlet"
    alpha: float = 0.5
    classes_per_owner: int = 2
    min_examples: int = 10


@dataclass
class ModelConfig:
    """Model architecture; input and output sizes come from the dataset."""

    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [64])
    channels: list[int] = field(default_factory=lambda: [16, 32])
    norm_groups: int = 4


@dataclass
class StrategyConfig:
    """A Flower strategy from ``flwr.serverapp.strategy`` and its server-side knobs."""

    name: str = "fedavg"
    proximal_mu: float = 0.0
    server_lr: float = 1.0
    server_momentum: float = 0.0
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3
    trim_beta: float = 0.2
    num_malicious: int = 0
    num_to_select: int = 1


@dataclass
class PrivacyConfig:
    """Differential privacy.

    ``dp_sgd``: sample-level DP-SGD at every owner (Opacus), each owner spending
    at most ``epsilon`` over the run. ``central_dp``: client-level DP added by the
    server (Flower's DP wrappers). ``none``: no DP.

    ``delta`` defaults to ``min(1e-5, 1 / (10 n))`` for an owner holding ``n``
    examples. The noise multiplier is calibrated once per owner so that training
    in every one of ``planned_rounds`` rounds (default ``num_rounds``) stays
    within ``epsilon``; set ``noise_multiplier`` to fix it instead.
    """

    name: str = "none"
    epsilon: float = 8.0
    delta: float | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    grad_sample_mode: str = "hooks"
    planned_rounds: int | None = None


@dataclass
class CryptoConfig:
    """Encryption of updates: ``none`` or ``ckks`` (TenSEAL, key held by the curator).

    ``preset`` names a CKKS parameter set of :mod:`fedcurate.crypto`; ``key_dir``
    points at provisioned keys (``fedcurate keys init``), otherwise a simulation
    provisions fresh keys in its run directory.
    """

    name: str = "none"
    preset: str = "auto"
    key_dir: str | None = None


@dataclass
class CuratorConfig:
    """Contribution valuation and participant selection (``name=none``: off).

    ``name`` is the valuation method, ``utility`` what a coalition is worth
    (validation ``accuracy`` or negative ``loss``), ``policy`` what the values
    decide (``none``, ``weight``, ``exclude``, ``reputation``). The other knobs
    are documented where they act, in :mod:`fedcurate.curation`; their ranges are
    checked when the curator is built.
    """

    name: str = "none"
    utility: str = "accuracy"
    policy: str = "none"
    # GTG-Shapley (Liu et al. 2022); tolerances in accuracy units as in the paper.
    gtg_round_tolerance: float = 0.01
    gtg_prefix_tolerance: float = 0.001
    gtg_loss_fallback: bool = True
    gtg_loss_prefix_fraction: float = 0.01
    gtg_min_permutations: int = 30
    gtg_max_permutations: int = 40
    gtg_convergence_window: int = 10
    gtg_convergence_tolerance: float = 0.05
    gtg_estimator: str = "stratified"
    # Data Banzhaf, maximum-sample-reuse estimator (Wang & Jia 2023).
    banzhaf_samples: int = 200
    # Shapley value of the first-order utility beyond exact enumeration.
    first_order_permutations: int = 2000
    # Updates made of public information only (zero, replays) earn no positive credit.
    free_rider_memory: int = 5
    free_rider_tolerance: float = 1e-3
    # Optional data-quality signal: the first layer's update outside the inputs' span.
    input_span_signal: bool = False
    # Policies.
    warmup_rounds: int = 3
    exclusion_confidence: float = 0.99
    exclusion_outlier_threshold: float = 3.0
    weight_floor: float = 0.1
    weight_cap: float = 1.0
    # ``weight`` policy: a newcomer's multiplier floor (its credit takes at most half).
    warmup_floor: float = 0.5
    reputation_decay: float = 0.9
    quarantine_below: float = 0.2
    readmit_above: float = 0.4


@dataclass
class CorruptionConfig:
    """Simulated low-quality or malicious owners, recorded as ground truth.

    ``kind`` is one of :data:`fedcurate.data.corruption.CORRUPTION_KINDS`. The
    affected owners are ``owners`` when given, otherwise a seeded
    ``round(fraction * num_clients)`` of them.
    """

    kind: str = "none"
    fraction: float = 0.2
    owners: list[int] | None = None
    rate: float = 0.5
    scale: float = 1.0


@dataclass
class TrainConfig:
    """Local training at each data owner."""

    local_epochs: int = 2
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0


@dataclass
class HpoParam:
    """One dimension of a tuning search space (an Optuna distribution).

    ``type`` is ``float`` or ``int`` (with ``low``, ``high`` and optionally
    ``log``) or ``categorical`` (with ``choices``).
    """

    type: str = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None


@dataclass
class HpoConfig:
    """A tuning study for ``fedcurate tune`` (``hpo=NAME`` selects one in ``conf/hpo``).

    Trials maximise the selected model's accuracy on the curator's validation
    split (averaged over experiment ``seeds`` when given, so the choice does not
    ride on one draw); a trial whose owners may spend more than ``max_epsilon``
    is refused. ``params`` maps override keys (``train.lr``) to search
    dimensions; ``seed`` seeds the sampler.
    """

    name: str = "none"
    trials: int = 6
    max_epsilon: float | None = None
    seed: int = 0
    seeds: list[int] = field(default_factory=list)
    params: dict[str, HpoParam] = field(default_factory=dict)


@dataclass
class Config:
    """A whole experiment."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    curator: CuratorConfig = field(default_factory=CuratorConfig)
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hpo: HpoConfig = field(default_factory=HpoConfig)
    num_clients: int = 10
    num_rounds: int = 20
    fraction_train: float = 1.0
    fraction_evaluate: float = 1.0
    evaluate_every: int = 1
    min_train_replies: int = 1
    round_retries: int = 2
    round_timeout: float = 600.0
    seed: int = 0
    backend: str = "inprocess"
    workers: int = 1
    resume: str | None = None
    report: bool = True


SCHEMA_NAME = "fedcurate_schema"


def register_schemas() -> None:
    """Register the schema that ``conf/config.yaml`` composes first.

    Every group option then merges into a typed node, so Hydra itself rejects an
    unknown key or a wrong type in a YAML file or an override.
    """
    ConfigStore.instance().store(name=SCHEMA_NAME, node=Config)


def conf_dir() -> Path:
    """Directory of the Hydra config tree."""
    import os

    return Path(os.environ.get("FEDCURATE_CONF", CONF_DIR))


def parse_overrides(overrides: str | list[str] | tuple[str, ...]) -> list[str]:
    """Split an override string the way a shell would (lists pass through)."""
    if isinstance(overrides, str):
        return shlex.split(overrides)
    return list(overrides)


def compose_config(overrides: str | list[str] | tuple[str, ...] = ()) -> Config:
    """Compose ``conf/`` with Hydra overrides into a validated :class:`Config`.

    Parameters
    ----------
    overrides : str or list of str
        Hydra overrides such as ``["num_rounds=5", "strategy=fedprox"]`` or the
        same as one shell-quoted string.

    Raises
    ------
    ConfigError
        Unknown group option, unknown key, wrong type or an out-of-range value.
    """
    register_schemas()
    override_list = [o for o in parse_overrides(overrides) if not o.startswith("hydra.")]
    try:
        with (
            _fresh_global_hydra(),
            initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"),
        ):
            cfg = compose(config_name="config", overrides=override_list)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"invalid configuration: {error}") from error
    return to_config(cfg)


@contextlib.contextmanager
def _fresh_global_hydra() -> Iterator[None]:
    """Compose even inside a running Hydra application, then restore its state."""
    global_hydra = GlobalHydra.instance()
    running = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        yield
    finally:
        global_hydra.clear()
        if running is not None:
            global_hydra.initialize(running)


def to_config(cfg: DictConfig | dict[str, Any]) -> Config:
    """Turn a composed Hydra config into a validated :class:`Config`."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), cfg)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(f"invalid configuration: {error}") from error
    assert isinstance(config, Config)
    validate(config)
    return config


#: Keys of Flower's run_config (declared in pyproject.toml [tool.flwr.app.config]).
RUN_CONFIG_OVERRIDES = "overrides"
RUN_CONFIG_RUN_DIR = "run-dir"


def config_from_run_config(run_config: dict[str, Any]) -> Config:
    """The experiment carried by a Flower ``run_config`` (cached per override string)."""
    overrides = str(run_config.get(RUN_CONFIG_OVERRIDES, ""))
    if overrides not in _RUN_CONFIG_CACHE:
        _RUN_CONFIG_CACHE[overrides] = compose_config(overrides)
    return _RUN_CONFIG_CACHE[overrides]


_RUN_CONFIG_CACHE: dict[str, Config] = {}


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain-data view of a config, for run outputs."""
    return dataclasses.asdict(config)


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def validate(config: Config) -> None:
    """Check value ranges and combinations that types alone cannot express."""
    data = config.dataset
    _require(config.num_clients >= 1, "num_clients", "must be at least 1")
    _require(config.num_rounds >= 1, "num_rounds", "must be at least 1")
    _require(0.0 < config.fraction_train <= 1.0, "fraction_train", "must be in (0, 1]")
    _require(0.0 <= config.fraction_evaluate <= 1.0, "fraction_evaluate", "must be in [0, 1]")
    _require(config.evaluate_every >= 1, "evaluate_every", "must be at least 1")
    _require(config.min_train_replies >= 1, "min_train_replies", "must be at least 1")
    _require(config.round_retries >= 0, "round_retries", "must be >= 0")
    _require(config.round_timeout > 0, "round_timeout", "must be positive")
    _require(config.workers >= 0, "workers", "must be >= 0 (0 = one per core)")
    _require(config.backend in {"inprocess", "flower"}, "backend", "use inprocess or flower")
    for key in ("test_fraction", "validation_fraction", "owner_test_fraction"):
        value = getattr(data, key)
        _require(0.0 <= value < 1.0, f"dataset.{key}", "must be in [0, 1)")
    _require(
        data.test_fraction + data.validation_fraction < 0.9,
        "dataset.test_fraction + dataset.validation_fraction",
        "must leave at least 10 % of the data to the owners",
    )
    _require(config.partition.alpha > 0, "partition.alpha", "must be positive")
    _require(config.partition.classes_per_owner >= 1, "partition.classes_per_owner", ">= 1")
    _require(config.partition.min_examples >= 1, "partition.min_examples", "must be >= 1")
    train = config.train
    _require(train.local_epochs >= 1, "train.local_epochs", "must be at least 1")
    _require(train.batch_size >= 1, "train.batch_size", "must be at least 1")
    _require(train.lr > 0, "train.lr", "must be positive")
    corruption = config.corruption
    _require(0.0 <= corruption.fraction <= 1.0, "corruption.fraction", "must be in [0, 1]")
    _require(0.0 <= corruption.rate <= 1.0, "corruption.rate", "must be in [0, 1]")
    if corruption.owners is not None:
        bad = [o for o in corruption.owners if not 0 <= o < config.num_clients]
        _require(not bad, "corruption.owners", f"{bad} outside 0..{config.num_clients - 1}")
    _validate_components(config)


#: Strategies that need every update in the clear (they compare updates).
PLAINTEXT_ONLY_STRATEGIES = ("fedmedian", "fedtrimmedavg", "krum", "multikrum")


def _validate_components(config: Config) -> None:
    """Each concern's own checks, and the combinations that cannot work."""
    _require(
        config.privacy.name in {"none", "dp_sgd", "central_dp"},
        "privacy",
        f"'{config.privacy.name}' is not one of none, dp_sgd, central_dp",
    )
    _require(config.crypto.name in {"none", "ckks"}, "crypto", "use none or ckks")
    if config.privacy.name != "none":
        from fedcurate.privacy import validate_privacy_config

        validate_privacy_config(config.privacy)
    if config.privacy.name == "central_dp":
        _require(
            config.crypto.name == "none",
            "privacy=central_dp",
            "the server clips every update, which crypto=ckks hides from it; "
            "use privacy=dp_sgd with encryption",
        )
    if config.crypto.name == "ckks":
        _require(
            config.strategy.name not in PLAINTEXT_ONLY_STRATEGIES,
            f"strategy={config.strategy.name}",
            "compares individual updates, which crypto=ckks hides from the server; "
            "use fedavg, fedprox, fedadam, fedyogi or fedavgm",
        )
        _require(
            config.curator.name in {"none", "first_order"},
            f"curator={config.curator.name}",
            "needs every update in plaintext; under crypto=ckks the curator only sees "
            "scalar scores: use curator=first_order (or crypto=none for coalition methods)",
        )
        _require(
            not config.curator.input_span_signal,
            "curator.input_span_signal",
            "reads each update's first layer, which crypto=ckks hides from the curator; "
            "under encryption its evidence is the first-order score and the sharpening "
            "projection (set it to false, or use crypto=none)",
        )
    if config.curator.name != "none":
        from fedcurate.curation.settings import check_curator_config

        check_curator_config(config.curator)
        _require(
            config.dataset.validation_fraction > 0 or config.dataset.name == "site",
            "dataset.validation_fraction",
            "the curator needs a validation split (> 0)",
        )
