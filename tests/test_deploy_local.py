"""Real Flower deployment on 127.0.0.1: a SuperLink and SuperNodes with TLS and node auth.

Every test starts real ``flower-superlink`` / ``flower-supernode`` processes
(plaintext federation: ``privacy=none crypto=none curator=none``, logistic model)
and checks afterwards that no process of its deployment is left.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedcurate.config import compose_config
from fedcurate.provisioning import provision_node_keys
from fedcurate.reporting import RunOutputs
from simulations.deploy_local import (
    DeploymentError,
    LocalDeployment,
    SiteSpec,
    Workspace,
    deploy_local,
    tagged_pids,
    with_num_clients,
    write_owner_sites,
    write_sites,
)
from simulations.runner import run_simulation

#: Two owners, a small model; rounds cost seconds of ClientApp start-up, not training.
OWNERS = ["num_clients=2", "model=logistic", "train.local_epochs=1", "report=false"]
BASE = [*OWNERS, "privacy=none", "crypto=none", "curator=none"]
#: The whole protocol: DP-SGD at the owners, CKKS updates, the curator on its own node.
FULL = [*OWNERS, "privacy=dp_sgd", "crypto=ckks", "curator=first_order"]
RUN_TIMEOUT = 900.0


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def _rounds(run_dir: Path) -> list[dict[str, Any]]:
    return RunOutputs(run_dir).read_metrics()


def _simulated(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    return run_simulation(compose_config(overrides), overrides, run_dir)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[LocalDeployment]:
    """A started deployment of two owner sites; checks nothing of it survives."""
    workspace = Workspace(tmp_path / "deploy")
    sites = write_owner_sites(compose_config(BASE), workspace.sites)
    with LocalDeployment(workspace, sites) as started:
        started.start()
        yield started
    assert tagged_pids(started.supervisor.deployment_id) == []


@pytest.mark.slow
def test_deploy_local_matches_the_simulation(tmp_path: Path) -> None:
    overrides = [*BASE, "num_rounds=2", "evaluate_every=2"]
    config = compose_config(overrides)
    workspace = tmp_path / "deploy"
    sites = write_owner_sites(config, Workspace(workspace).sites)
    started = time.monotonic()
    result = deploy_local(sites, overrides, workspace, config=config, run_timeout=RUN_TIMEOUT)
    print(f"deploy-local, 2 sites, 2 rounds: {time.monotonic() - started:.1f}s")

    assert result.outcome.completed, result.outcome.details
    assert tagged_pids(result.deployment_id) == []
    assert result.summary is not None
    assert result.summary["status"] == "completed"
    assert result.summary["rounds_completed"] == 2
    records = _rounds(result.run_dir)
    assert [r["round"] for r in records] == [1, 2]
    assert all(r["replied"] == ["owner-000", "owner-001"] for r in records)
    assert set(records[-1]["federated"]["per_owner"]) == {"owner-000", "owner-001"}
    for name in ("owner-000", "owner-001"):
        site = Path(workspace) / "sites" / name
        assert (site / "data.npz").is_file()
        assert (site / f"{name}.key").stat().st_mode & 0o077 == 0
    simulated = _simulated(overrides, tmp_path / "simulated")
    assert result.summary["final"] == simulated["final"]
    assert result.summary["communication"]["bytes_up"] == simulated["communication"]["bytes_up"]


@pytest.mark.slow
def test_the_full_protocol_deployed_matches_the_simulation(tmp_path: Path) -> None:
    overrides = [*FULL, "num_rounds=2"]
    config = compose_config(overrides)
    workspace = tmp_path / "deploy"
    sites = write_sites(config, Workspace(workspace).sites)
    assert [site.name for site in sites] == ["curator", "owner-000", "owner-001"]
    started = time.monotonic()
    result = deploy_local(sites, overrides, workspace, config=config, run_timeout=RUN_TIMEOUT)
    print(
        f"deploy-local, DP + CKKS + curator, 2 sites, 2 rounds: {time.monotonic() - started:.1f}s"
    )

    assert result.outcome.completed, result.outcome.details
    assert tagged_pids(result.deployment_id) == []
    summary = result.summary
    assert summary is not None
    assert summary["rounds_completed"] == 2
    assert [r["replied"] for r in _rounds(result.run_dir)] == [["owner-000", "owner-001"]] * 2
    owners = summary["privacy"]["owners"]
    assert {name: owners[name]["rounds_trained"] for name in owners} == {
        "owner-000": 2,
        "owner-001": 2,
    }
    assert set(summary["curator"]["values"]) == {"owner-000", "owner-001"}
    assert (result.run_dir / "ledger.json").is_file()
    secret = Path(sites[0].node_config["secret-context"])
    assert secret.stat().st_mode & 0o077 == 0
    assert list(Path(workspace, "sites").rglob("ckks-secret.ctx")) == [secret]
    simulated = _simulated(overrides, tmp_path / "simulated")
    assert summary["final"] == simulated["final"]
    assert owners == simulated["privacy"]["owners"]
    # Scores are decrypted from fresh randomised CKKS ciphertexts: equal up to CKKS noise.
    assert summary["curator"]["values"] == pytest.approx(simulated["curator"]["values"], rel=1e-6)


@pytest.mark.slow
def test_an_owner_killed_during_a_round_is_recorded_and_the_run_completes(
    deployment: LocalDeployment,
) -> None:
    # Owners that fail training are still asked to evaluate, which would cost
    # another round_timeout here: evaluation is off so the test measures the
    # train phase only.
    overrides = [*BASE, "num_rounds=2", "fraction_evaluate=0", "round_timeout=90"]
    run_dir = deployment.workspace.run_dir
    run_id = deployment.submit(overrides, run_dir)
    _wait_for(lambda: len(_rounds(run_dir)) >= 1, RUN_TIMEOUT, "round 1")
    deployment.crash_site("owner-001")  # round 2 has just been sent out

    outcome = deployment.wait(run_id, RUN_TIMEOUT)

    assert outcome.completed, outcome.details
    first, second = _rounds(run_dir)
    assert first["replied"] == ["owner-000", "owner-001"]
    assert second["replied"] == ["owner-000"]
    assert list(second["failed"]) == ["owner-001"]
    assert RunOutputs(run_dir).read_summary()["rounds_completed"] == 2


@pytest.mark.slow
def test_a_killed_serverapp_resumes_from_its_checkpoint_when_resubmitted(
    deployment: LocalDeployment, tmp_path: Path
) -> None:
    # DP-SGD on: the restart must neither reset an owner's ledger nor pay a round twice.
    overrides = [*OWNERS, "privacy=dp_sgd", "crypto=none", "curator=none", "num_rounds=2"]
    overrides.append("evaluate_every=2")
    run_dir = deployment.workspace.run_dir
    first_run = deployment.submit(overrides, run_dir)
    checkpoint = run_dir / "checkpoints" / "round-00001.pkl"
    _wait_for(checkpoint.exists, RUN_TIMEOUT, "the round-1 checkpoint")
    serverapps = deployment.serverapp_pids()
    assert len(serverapps) == 1
    os.kill(serverapps[0], signal.SIGKILL)
    deployment.cli.stop_run(first_run)

    second_run = deployment.submit(overrides, run_dir)
    outcome = deployment.wait(second_run, RUN_TIMEOUT)

    assert outcome.completed, outcome.details
    log = (deployment.workspace.logs / f"serverapp-{second_run}.log").read_text()
    assert "resuming after round 1" in log
    assert [r["round"] for r in _rounds(run_dir)] == [1, 2]
    summary = RunOutputs(run_dir).read_summary()
    assert summary["rounds_completed"] == 2
    uninterrupted = _simulated(overrides, tmp_path / "uninterrupted")
    assert summary["final"] == uninterrupted["final"]
    assert summary["privacy"]["owners"] == uninterrupted["privacy"]["owners"]
    assert {o["rounds_trained"] for o in summary["privacy"]["owners"].values()} == {2}


@pytest.mark.slow
def test_unregistered_and_plaintext_supernodes_are_refused(
    deployment: LocalDeployment,
) -> None:
    data_path = deployment.sites[0].node_config["data-path"]
    for name in ("intruder", "plaintext"):
        directory = deployment.workspace.sites / name
        node_config = {
            "role": "owner",
            "name": name,
            "data-path": data_path,
            "state-dir": str(directory / "state"),
        }
        deployment.sites.append(SiteSpec(name, directory, node_config))
    unregistered = provision_node_keys(deployment.workspace.sites / "intruder", "intruder")

    intruder = deployment.start_site("intruder", private_key=unregistered.private_key)
    plaintext = deployment.start_site("plaintext", insecure=True)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://{deployment.superlink_address}/health", timeout=10)

    _wait_for(lambda: intruder.popen.poll() is not None, 120, "the intruder to be turned away")
    assert "Failed to activate SuperNode" in intruder.log_text()
    with pytest.raises(DeploymentError, match="'intruder' exited"):
        deployment.wait_for_nodes(["intruder"])
    _wait_for(lambda: "Connection attempt failed" in plaintext.log_text(), 120, "a refusal")
    assert plaintext.popen.poll() is None  # still knocking, never let in
    online = {n for n, status in deployment.cli.node_statuses().items() if status == "online"}
    assert online == set(deployment.node_ids.values())


def test_num_clients_follows_the_number_of_sites() -> None:
    assert with_num_clients(["model=mlp"], 3) == ["model=mlp", "num_clients=3"]
    assert with_num_clients(["num_clients=3"], 3) == ["num_clients=3"]
    with pytest.raises(ValueError, match="contradicts --sites 2"):
        with_num_clients(["num_clients=3"], 2)


def test_site_files_reproduce_the_simulated_owners(tmp_path: Path) -> None:
    from fedcurate.data import build_federation, load_site_file
    from fedcurate.data.federation import split_owner_data

    config = compose_config(BASE)
    sites = write_owner_sites(config, tmp_path)
    for index, site in enumerate(sites):
        owner = build_federation(config).owners[index]
        data = load_site_file(
            site.node_config["data-path"], num_classes=10, input_shape=owner.train.input_shape
        )
        train, test = split_owner_data(data, site.name, config)
        np.testing.assert_array_equal(train.x, owner.train.x)
        np.testing.assert_array_equal(test.y, owner.test.y)
        assert all(isinstance(value, str) for value in site.node_config.values())
