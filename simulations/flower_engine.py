"""Flower's own simulation engine (Ray) as a backend of ``fedcurate simulate``.

Flower 1.42 deprecates the Python ``run_simulation`` entry point and hands the
apps an empty ``run_config`` through it, so this module calls the engine the way
``flwr run`` does internally: with a ``Run`` carrying the override config and
the project directory, from which every node's ``run_config`` is fused exactly
as in deployment. The private entry point is pinned by ``flwr==1.42.0``.
"""

from __future__ import annotations

import os

from flwr.app import Context, RecordDict, UserConfig
from flwr.common.config import get_fused_config_from_dir
from flwr.common.constant import RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
from flwr.simulation.run_simulation import _run_simulation
from flwr.supercore.constant import NOOP_FEDERATION_ID
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.supercore.telemetry import EventType

from clients.app import app as client_app
from server.app import app as server_app


def run_on_flower_engine(run_config: UserConfig, nodes: int, workers: int = 0) -> None:
    """Run the fedcurate apps on Flower's Ray-backed simulation engine.

    Parameters
    ----------
    run_config : UserConfig
        Overrides and run directory (fused over pyproject's defaults).
    nodes : int
        Virtual SuperNodes.
    workers : int
        Concurrent ClientApp actors (0: one per core); each gets one CPU.
    """
    from simulations.runner import PROJECT_DIR

    run_id = generate_rand_int_from_bytes(RUN_ID_NUM_BYTES)
    run = Run.create_empty(run_id=run_id)
    run.override_config = dict(run_config)
    run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
    run.federation_id = NOOP_FEDERATION_ID
    TaskIdentity.task_id = run.primary_task_id
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    fused = get_fused_config_from_dir(PROJECT_DIR, run.override_config)
    server_context = Context(
        run_id=run_id,
        node_id=SUPERLINK_NODE_ID,
        node_config={},
        state=RecordDict(),
        run_config=fused,
    )
    cpus = os.cpu_count() or 1
    actors = workers or cpus
    backend_config = {
        "client_resources": {"num_cpus": max(1, cpus // actors), "num_gpus": 0.0},
        "init_args": {"num_cpus": cpus, "include_dashboard": False},
    }
    _run_simulation(
        num_supernodes=nodes,
        client_app=client_app,
        server_app=server_app,
        backend_name="ray",
        backend_config=backend_config,  # type: ignore[arg-type]
        app_dir=str(PROJECT_DIR),
        is_app=True,  # fuse each node's run_config from the project, as `flwr run` does
        run=run,
        server_app_context=server_context,
        exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
    )
