"""Run one simulated experiment on the configured backend."""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from flwr.app import Context, RecordDict, UserConfig
from flwr.common.constant import SUPERLINK_NODE_ID
from omegaconf import OmegaConf

from clients.site import simulation_key_dir
from fedcurate.config import RUN_CONFIG_OVERRIDES, RUN_CONFIG_RUN_DIR, Config
from fedcurate.crypto import SECRET_KEY_FILE, keys_init
from fedcurate.reporting import RunOutputs
from server.app import app as server_app
from server.loop import needs_curator_node
from simulations.inprocess import InProcessGrid, simulation_node_configs

#: Builds the in-process grid; takes :class:`InProcessGrid`'s arguments.
GridFactory = Callable[..., InProcessGrid]

#: The ClientApp every simulated node runs (as in pyproject's [tool.flwr.app.components]).
CLIENT_APP = "clients.app:app"

#: The project directory (pyproject.toml, conf/), for Flower's engine.
PROJECT_DIR = Path(__file__).resolve().parent.parent


def num_nodes(config: Config) -> int:
    """Virtual nodes of a simulation: the owners, then the curator node if any."""
    return config.num_clients + int(needs_curator_node(config))


def provision_keys(config: Config, run_dir: Path) -> None:
    """The curator's CKKS keys for a simulation (kept across resumption)."""
    if config.crypto.name != "ckks":
        return
    key_dir = simulation_key_dir(config, run_dir)
    if (key_dir / SECRET_KEY_FILE).exists():
        return
    keys_init(
        key_dir,
        preset=config.crypto.preset,
        encrypted_scoring=config.curator.name == "first_order",
    )


def run_config_for(overrides: list[str], run_dir: Path) -> UserConfig:
    """Flower run_config carrying the experiment to every party."""
    return {RUN_CONFIG_OVERRIDES: shlex.join(overrides), RUN_CONFIG_RUN_DIR: str(run_dir)}


def run_simulation(
    config: Config,
    overrides: list[str],
    run_dir: Path,
    *,
    grid_factory: GridFactory = InProcessGrid,
) -> dict[str, Any]:
    """Run the experiment and return its ``summary.json`` content.

    Parameters
    ----------
    config : Config
        The composed experiment (already validated).
    overrides : list of str
        The overrides that produced ``config``; they travel to every party in
        ``run_config`` and are stored in the run directory for resumption.
    run_dir : Path
        Output directory; an existing checkpoint there is resumed.
    grid_factory : GridFactory
        Builds the grid of the in-process backend (a benchmark passes a
        subclass of :class:`InProcessGrid`, e.g. with some owners offline).
        ``backend=flower`` runs Flower's own engine and refuses another one.
    """
    run_dir = run_dir.resolve()
    outputs = RunOutputs(run_dir)
    outputs.write_config(OmegaConf.to_yaml(OmegaConf.structured(config)), overrides)
    run_config = run_config_for(overrides, run_dir)
    provision_keys(config, run_dir)
    quiet_flower_logs()
    if config.backend == "flower":
        if grid_factory is not InProcessGrid:
            raise ValueError("backend=flower runs Flower's simulation engine: no grid_factory")
        from simulations.flower_engine import run_on_flower_engine

        run_on_flower_engine(run_config, num_nodes(config), workers=config.workers)
    else:
        grid = grid_factory(
            CLIENT_APP,
            simulation_node_configs(num_nodes(config)),
            run_config,
            workers=_workers(config.workers),
        )
        _run_inprocess(grid, run_config)
    return outputs.read_summary()


def quiet_flower_logs() -> None:
    """Keep Flower's per-round INFO lines out of the progress display."""
    logging.getLogger("flwr").setLevel(logging.WARNING)


def _workers(configured: int) -> int:
    """``workers=0`` means one per core."""
    return configured or (os.cpu_count() or 1)


def _run_inprocess(grid: InProcessGrid, run_config: UserConfig) -> None:
    # One thread per simulated client: the models are small, and intra-op threads
    # only add synchronisation (and fight other processes for the cores).
    torch.set_num_threads(1)
    context = Context(
        run_id=grid.run.run_id,
        node_id=SUPERLINK_NODE_ID,
        node_config={},
        state=RecordDict(),
        run_config=run_config,
    )
    try:
        server_app(grid, context)
    finally:
        grid.close()
