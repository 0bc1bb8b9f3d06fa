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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flwr.app import Context

from fedcurate.config import RUN_CONFIG_RUN_DIR, Config, ConfigError, config_from_run_config
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
    )


def _simulated_site(config: Config, partition: int, context: Context) -> Site:
    run_dir = Path(str(context.run_config.get(RUN_CONFIG_RUN_DIR) or "."))
    if partition < config.num_clients:
        name, role, index = owner_name(partition), ROLE_OWNER, partition
    else:
        name, role, index = ROLE_CURATOR, ROLE_CURATOR, None
    return Site(role, name, config, run_dir / "sites" / name, index, None)
