"""Where a node runs: its role, its name, its data and its state directory.

In simulation a node knows only its ``partition-id``: owners are partitions
``0 .. num_clients-1`` and the curator, when the run has one, is the extra node
after them. In deployment everything comes from the SuperNode's
``--node-config``:

``role``
    ``owner`` (default) or ``curator``.
``name``
    The site's stable name (owners are identified by it in every output).
``data-path``
    The owner's CSV / NPZ file (see :mod:`fedcurate.data.sites`).
``state-dir``
    Where the site keeps its own state between rounds and restarts.
``public-context``
    With ``crypto=ckks``: the CKKS public context the owner encrypts with,
    provisioned by the curator (``fedcurate keys init``), never taken from the server.
``secret-context``, ``validation-path``
    The curator's CKKS secret context (mode 0600) and its validation data file.

A simulation keeps keys in ``crypto.key_dir`` or ``RUN_DIR/keys``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flwr.app import Context

from fedcurate.config import RUN_CONFIG_RUN_DIR, Config, ConfigError, config_from_run_config
from fedcurate.crypto import PUBLIC_KEY_FILE, SECRET_KEY_FILE
from fedcurate.data import ArrayDataset, build_federation, load_site_file, owner_name
from fedcurate.data.federation import dataset_spec, split_owner_data
from fedcurate.protocol import ROLE_CURATOR, ROLE_OWNER, ROLES

PARTITION_ID = "partition-id"


@dataclass(frozen=True)
class Site:
    """The resolved identity and resources of one node."""

    role: str
    name: str
    config: Config
    state_dir: Path
    owner_index: int | None
    data_path: Path | None
    key_dir: Path | None = None
    node_config: dict[str, str] | None = None

    @property
    def simulated(self) -> bool:
        """Whether this node is a simulated owner or curator."""
        return self.data_path is None

    def owner_data(self) -> tuple[ArrayDataset, ArrayDataset]:
        """This owner's ``(train, test)`` data."""
        if self.data_path is not None:
            spec = dataset_spec(self.config)
            data = _load_cached(self.data_path, spec.num_classes, spec.input_shape, self.config)
            return split_owner_data(data, self.name, self.config)
        assert self.owner_index is not None
        owner = build_federation(self.config).owners[self.owner_index]
        return owner.train, owner.test

    def validation_data(self) -> ArrayDataset:
        """The curator's validation split (never seen by an owner)."""
        path = self._deployed("validation-path")
        if path is None:
            return build_federation(self.config).validation
        spec = dataset_spec(self.config)
        return _load_cached(path, spec.num_classes, spec.input_shape, self.config)

    def public_context_path(self) -> Path:
        """The CKKS public context this node encrypts or computes with."""
        return self._deployed("public-context") or self._key_dir() / PUBLIC_KEY_FILE

    def secret_context_path(self) -> Path:
        """The curator's CKKS secret context."""
        return self._deployed("secret-context") or self._key_dir() / SECRET_KEY_FILE

    def _deployed(self, key: str) -> Path | None:
        if self.node_config is None:
            return None
        if key not in self.node_config:
            raise ConfigError(f"node-config of '{self.name}' lacks '{key}'")
        return Path(self.node_config[key])

    def _key_dir(self) -> Path:
        assert self.key_dir is not None
        return self.key_dir


def simulation_key_dir(config: Config, run_dir: Path) -> Path:
    """Where a simulation keeps its CKKS keys."""
    return Path(config.crypto.key_dir) if config.crypto.key_dir else run_dir / "keys"


_DATA_CACHE: dict[tuple[Path, int, tuple[int, ...], str], ArrayDataset] = {}


def _load_cached(
    path: Path, num_classes: int, input_shape: tuple[int, ...], config: Config
) -> ArrayDataset:
    key = (path, num_classes, input_shape, config.dataset.label_column)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_site_file(
            path,
            num_classes=num_classes,
            input_shape=input_shape,
            label_column=config.dataset.label_column,
        )
    return _DATA_CACHE[key]


def resolve_site(context: Context) -> Site:
    """The :class:`Site` of the node running ``context``."""
    config = config_from_run_config(dict(context.run_config))
    node = context.node_config
    if PARTITION_ID in node:
        return _simulated_site(config, int(node[PARTITION_ID]), context)
    role = str(node.get("role", ROLE_OWNER))
    if role not in ROLES:
        raise ConfigError(f"node-config role: '{role}' is not one of {ROLES}")
    if "name" not in node or "state-dir" not in node:
        raise ConfigError("node-config must name the site ('name') and its 'state-dir'")
    data_path = node.get("data-path")
    if role == ROLE_OWNER and not data_path:
        raise ConfigError(f"node-config of owner '{node['name']}' lacks 'data-path'")
    return Site(
        role=role,
        name=str(node["name"]),
        config=config,
        state_dir=Path(str(node["state-dir"])),
        owner_index=None,
        data_path=Path(str(data_path)) if data_path else None,
        node_config={str(k): str(v) for k, v in node.items()},
    )


def _simulated_site(config: Config, partition: int, context: Context) -> Site:
    run_dir = Path(str(context.run_config.get(RUN_CONFIG_RUN_DIR) or "."))
    if partition < config.num_clients:
        name, role, index = owner_name(partition), ROLE_OWNER, partition
    else:
        name, role, index = ROLE_CURATOR, ROLE_CURATOR, None
    key_dir = simulation_key_dir(config, run_dir)
    return Site(role, name, config, run_dir / "sites" / name, index, None, key_dir)
