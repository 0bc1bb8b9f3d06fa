"""The fedcurate ServerApp.

Register with ``[tool.flwr.app.components] serverapp = "server.app:app"``; the
experiment arrives as one Hydra override string in ``run_config["overrides"]``
and the output directory in ``run_config["run-dir"]``.
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedcurate.config import RUN_CONFIG_RUN_DIR, config_from_run_config
from server.loop import FederatedRun

app = ServerApp()


def run_dir_of(context: Context) -> Path:
    """The run directory named in ``run_config`` (``outputs/run-<id>`` if unset)."""
    configured = str(context.run_config.get(RUN_CONFIG_RUN_DIR, ""))
    return Path(configured) if configured else Path("outputs") / f"run-{context.run_id}"


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation described by the context's run config."""
    config = config_from_run_config(dict(context.run_config))
    FederatedRun(config, grid, run_dir_of(context)).run()
