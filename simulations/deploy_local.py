"""``fedcurate deploy-local``: a real Flower deployment on 127.0.0.1 in one command.

Everything a multi-site deployment does, on one machine: provision a CA, the
SuperLink's certificate and one authentication key per site; write each owner's
data partition into its own site directory (and, with ``crypto=ckks``, the
curator's keys and validation data into the curator's); start
``flower-superlink`` (TLS, SuperNode authentication) and one ``flower-supernode``
per site on free ports with a private ``FLWR_HOME``; register the sites' public
keys; submit the run with ``flwr run``; wait for it; stop exactly the processes
it started.

Every process started here carries ``FEDCURATE_DEPLOYMENT=<id>`` in its
environment, inherited by whatever Flower spawns under it (SuperExec, ServerApp
and ClientApp processes, some of which start their own sessions). Stopping sends
SIGTERM to each process group, then SIGKILL to any process still carrying the
tag, found through ``/proc`` (Linux; elsewhere Flower's own parent-process
monitors end the children within a fraction of a second).

Layout of the workspace::

    tls/                      ca.crt, ca.key, server.pem, server.key
    sites/NAME/               data.npz, NAME.key, NAME.pub, node-config.toml, state/
                              (+ ckks-public.ctx; the curator: keys/, validation.npz)
    flwr-home/config.toml     the "fedcurate-local" connection (TLS root: tls/ca.crt)
    app/                      the Flower app as submitted (pyproject.toml, conf/, packages)
    logs/                     superlink.log, NAME.log, serverapp-RUN.log
    run/                      the run directory (summary.json, metrics.jsonl, ...)
"""

from __future__ import annotations

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import argparse
import contextlib
import datetime
import json
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO

import numpy as np
import tomli_w
from omegaconf import OmegaConf

from fedcurate.config import (
    RUN_CONFIG_OVERRIDES,
    RUN_CONFIG_RUN_DIR,
    Config,
    ConfigError,
    compose_config,
    parse_overrides,
)
from fedcurate.crypto import PUBLIC_KEY_FILE, SECRET_KEY_FILE
from fedcurate.data import ArrayDataset, build_federation, make_dataset, owner_name, write_site_file
from fedcurate.data.federation import split_owner_data
from fedcurate.protocol import ROLE_CURATOR, ROLE_OWNER
from fedcurate.provisioning import provision_node_keys, provision_tls
from fedcurate.reporting import RunOutputs

#: The source checkout holding pyproject.toml (the Flower app).
PROJECT_DIR = Path(__file__).resolve().parent.parent
CONNECTION = "fedcurate-local"
HOST = "127.0.0.1"
DEPLOYMENT_TAG = "FEDCURATE_DEPLOYMENT"

SUPERLINK_READY_TIMEOUT = 60.0
NODES_READY_TIMEOUT = 180.0
CLI_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0
#: Flower's SuperExec polls for tasks every 1 s (a ClientApp start waits 0.5 s on
#: average, twice a round); 0.2 s costs a few cheap local requests per second.
SUPEREXEC_TASK_POLL_INTERVAL = "0.2"
#: Without a finished log stream, ask the SuperLink for the run's status this often.
STATUS_POLL_INTERVAL = 30.0
LOG_TAIL_LINES = 30
#: What ``flower-supernode`` logs once the SuperLink has activated it.
ACTIVATED_MARK = "SuperNode ID:"

RUN_FINISHED_PREFIX = "finished"
RUN_COMPLETED = "finished:completed"


class DeploymentError(RuntimeError):
    """The local deployment could not start, or its run did not complete."""


# --------------------------------------------------------------------------- sites
@dataclass(frozen=True)
class SiteSpec:
    """One SuperNode: the site's name and its ``--node-config``.

    ``node_config`` holds ``role`` (``owner`` or ``curator``), ``name``,
    ``state-dir`` and the role's own keys (``data-path`` for an owner), exactly as
    :func:`clients.site.resolve_site` reads them.
    """

    name: str
    directory: Path
    node_config: dict[str, str]


def owner_share(config: Config, index: int) -> ArrayDataset:
    """Owner ``index``'s data as one site file, ordered so the site re-splits it identically.

    A site splits its file into train and test with
    :func:`fedcurate.data.federation.split_owner_data`, which draws a permutation
    of the file's length seeded by the owner's name. Splitting the row numbers
    themselves the same way tells where each training and test example must sit,
    so a deployed owner trains and evaluates on exactly the examples it has in
    simulation and both give the same results.

    Raises
    ------
    DeploymentError
        The split does not round-trip (the split function changed what it depends on).
    """
    owner = build_federation(config).owners[index]
    name = owner_name(index)
    size = len(owner.train) + len(owner.test)
    rows = make_dataset(
        np.arange(size, dtype=np.float64).reshape(size, 1), np.zeros(size), owner.train.num_classes
    )
    train_rows, test_rows = split_owner_data(rows, name, config)
    x = np.empty((size, *owner.train.input_shape), dtype=owner.train.x.dtype)
    y = np.empty(size, dtype=owner.train.y.dtype)
    for part, at in ((owner.train, train_rows), (owner.test, test_rows)):
        positions = at.x[:, 0].astype(np.int64)
        x[positions], y[positions] = part.x, part.y
    share = ArrayDataset(x, y, owner.train.num_classes)
    train, test = split_owner_data(share, name, config)
    if not (_same(train, owner.train) and _same(test, owner.test)):
        raise DeploymentError(f"{name}: the site file does not reproduce the simulated split")
    return share


def _same(a: ArrayDataset, b: ArrayDataset) -> bool:
    return np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)


def write_sites(config: Config, sites_dir: Path) -> list[SiteSpec]:
    """Every site of the experiment: the curator when updates are encrypted, then the owners.

    With ``crypto=ckks`` the curator's CKKS keys are provisioned (or taken from
    ``crypto.key_dir``) as for a simulation, and each owner gets its own copy of
    the public context.
    """
    from server.loop import needs_curator_node

    if not needs_curator_node(config):
        return write_owner_sites(config, sites_dir)
    curator = write_curator_site(config, sites_dir / ROLE_CURATOR)
    public_context = Path(curator.node_config["secret-context"]).with_name(PUBLIC_KEY_FILE)
    return [curator, *write_owner_sites(config, sites_dir, public_context)]


def write_curator_site(config: Config, directory: Path) -> SiteSpec:
    """The curator's keys, validation data and node: ``role=curator``."""
    from simulations.runner import provision_keys, simulation_key_dir

    provision_keys(config, directory)
    key_dir = simulation_key_dir(config, directory).resolve()
    validation = write_site_file(directory / "validation.npz", build_federation(config).validation)
    node_config = {
        "role": ROLE_CURATOR,
        "name": ROLE_CURATOR,
        "secret-context": str(key_dir / SECRET_KEY_FILE),
        "validation-path": str(validation.resolve()),
        "state-dir": str((directory / "state").resolve()),
    }
    return SiteSpec(ROLE_CURATOR, directory.resolve(), node_config)


def write_owner_sites(
    config: Config, sites_dir: Path, public_context: Path | None = None
) -> list[SiteSpec]:
    """Write every owner's partition to ``sites_dir/NAME/data.npz`` and describe its node.

    ``public_context``, when given, is copied into every owner's directory.
    """
    specs = []
    for index in range(config.num_clients):
        name = owner_name(index)
        directory = sites_dir / name
        data_path = write_site_file(directory / "data.npz", owner_share(config, index))
        node_config = {
            "role": ROLE_OWNER,
            "name": name,
            "data-path": str(data_path.resolve()),
            "state-dir": str((directory / "state").resolve()),
        }
        if public_context is not None:
            copy = shutil.copyfile(public_context, directory / PUBLIC_KEY_FILE)
            node_config["public-context"] = str(copy.resolve())
        specs.append(SiteSpec(name, directory.resolve(), node_config))
    return specs


# ----------------------------------------------------------------------- processes
@dataclass
class ManagedProcess:
    """A process started by :class:`ProcessSupervisor`, in its own process group.

    ``log_offset`` is where this process's output starts in ``log_path`` (a
    restarted site appends to the log of its previous process).
    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int = 0

    def log_text(self) -> str:
        """Everything this process has logged so far."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines this process logged."""
        return "\n".join(self.log_text().splitlines()[-lines:])


class ProcessSupervisor:
    """Starts processes tagged with a deployment id and stops all of them.

    Parameters
    ----------
    env : dict
        Environment of every process (the tag is added).
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.deployment_id = uuid.uuid4().hex
        self.env = {**env, DEPLOYMENT_TAG: self.deployment_id}
        self.processes: dict[str, ManagedProcess] = {}

    def start(
        self, name: str, argv: Sequence[str], log_path: Path, stdout: int | None = None
    ) -> ManagedProcess:
        """Start ``argv`` in a new session, output to ``log_path`` (or ``stdout``)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdout=log if stdout is None else stdout,
                stderr=subprocess.STDOUT if stdout is None else log,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        process = ManagedProcess(name, popen, log_path, offset)
        self.processes[name] = process
        return process

    def signal_group(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to the process group of ``name`` (no-op once it exited)."""
        process = self.processes[name]
        if process.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, sig)

    def stop(self, name: str, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the group of ``name``, SIGKILL it after ``timeout``."""
        self.signal_group(name, signal.SIGTERM)
        try:
            self.processes[name].popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(name, signal.SIGKILL)
            self.processes[name].popen.wait(timeout)

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop every process in reverse start order, then kill whatever still carries the tag."""
        for name in reversed(list(self.processes)):
            self.signal_group(name, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.signal_group(process.name, signal.SIGKILL)
                process.popen.wait(timeout)
        # Children in sessions of their own outlive a group signal only briefly
        # (Flower's parent monitors poll every 0.2 s); wait for them, then insist.
        self._wait_for_no_tagged(deadline)
        for pid in self.tagged_pids():
            _kill(pid, signal.SIGKILL)
        self._wait_for_no_tagged(time.monotonic() + timeout)

    def _wait_for_no_tagged(self, deadline: float) -> None:
        while self.tagged_pids() and time.monotonic() < deadline:
            time.sleep(0.2)

    def tagged_pids(self) -> list[int]:
        """Live (non-zombie) processes carrying this deployment's tag."""
        return tagged_pids(self.deployment_id)


def tagged_pids(deployment_id: str) -> list[int]:
    """Live processes whose environment holds ``FEDCURATE_DEPLOYMENT=deployment_id``."""
    marker = f"{DEPLOYMENT_TAG}={deployment_id}".encode()
    found = []
    for pid in _proc_pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            found.append(pid)
    return found


def command_line(pid: int) -> list[str]:
    """The arguments of process ``pid`` (empty once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def _proc_pids() -> Iterator[int]:
    proc = Path("/proc")
    if proc.is_dir():
        yield from (int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def flower_binary(name: str) -> str:
    """Path of a Flower command, preferring the one next to this Python.

    Raises
    ------
    DeploymentError
        The command is not installed.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise DeploymentError(f"'{name}' not found: install flwr==1.42.0 in this environment")
    return found


# ------------------------------------------------------------------------ flwr CLI
class FlowerCli:
    """The ``flwr`` command against one SuperLink connection, JSON output parsed."""

    def __init__(self, env: dict[str, str], connection: str = CONNECTION) -> None:
        self.binary = flower_binary("flwr")
        self.env = env
        self.connection = connection

    def call(self, *args: str, timeout: float = CLI_TIMEOUT) -> dict[str, Any]:
        """Run ``flwr ARGS --format json`` and return its JSON answer.

        Raises
        ------
        DeploymentError
            Non-zero exit, no JSON, ``success`` false, or no answer within ``timeout``.
        """
        argv = [self.binary, *args, "--format", "json"]
        try:
            done = subprocess.run(
                argv, env=self.env, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise DeploymentError(
                f"'flwr {' '.join(args)}' gave no answer in {timeout:.0f}s"
            ) from None
        stdout = done.stdout.decode(errors="replace")
        answer = _json_object(stdout)
        if done.returncode != 0 or answer is None or not answer.get("success", False):
            output = (stdout + done.stderr.decode(errors="replace")).strip()[-2000:]
            raise DeploymentError(f"'flwr {' '.join(args)}' failed:\n{output}")
        return answer

    def register(self, public_key: Path) -> int:
        """Register a SuperNode's public key; its node id."""
        answer = self.call("supernode", "register", str(public_key), self.connection)
        return int(answer["node-id"])

    def node_statuses(self) -> dict[int, str]:
        """Node id -> status (``registered``, ``online``, ``offline``, ...)."""
        answer = self.call("supernode", "list", self.connection)
        return {int(node["node-id"]): str(node["status"]) for node in answer["nodes"]}

    def submit(self, app_dir: Path, run_config: Path) -> int:
        """``flwr run APP CONNECTION --run-config FILE``; the run id."""
        answer = self.call("run", str(app_dir), self.connection, "--run-config", str(run_config))
        return int(answer["run-id"])

    def run_info(self, run_id: int) -> dict[str, Any]:
        """The run's row of ``flwr ls`` (``status``, ``status-details``, ...)."""
        answer = self.call("ls", self.connection, "--run-id", str(run_id))
        runs: list[dict[str, Any]] = answer["runs"]
        return runs[0]

    def stop_run(self, run_id: int) -> None:
        """``flwr stop RUN``; a run that has already finished is left as it is.

        The SuperLink marks a run whose ServerApp died as finished by itself
        (after about a minute), and then refuses to stop it.
        """
        try:
            self.call("stop", str(run_id), self.connection)
        except DeploymentError:
            if not str(self.run_info(run_id)["status"]).startswith(RUN_FINISHED_PREFIX):
                raise


def _json_object(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        value = json.loads(text[start:])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------- deployment
@dataclass(frozen=True)
class RunOutcome:
    """How a submitted run ended."""

    run_id: int
    status: str
    details: str
    seconds: float

    @property
    def completed(self) -> bool:
        """Whether Flower reports the run as ``finished:completed``."""
        return self.status == RUN_COMPLETED


@dataclass
class Workspace:
    """Where a local deployment keeps everything (see the module docstring)."""

    root: Path

    @property
    def tls(self) -> Path:
        """CA and SuperLink certificate."""
        return self.root / "tls"

    @property
    def sites(self) -> Path:
        """One directory per site."""
        return self.root / "sites"

    @property
    def flwr_home(self) -> Path:
        """The private ``FLWR_HOME``."""
        return self.root / "flwr-home"

    @property
    def app(self) -> Path:
        """The staged Flower app."""
        return self.root / "app"

    @property
    def logs(self) -> Path:
        """Process logs."""
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        """The default run directory."""
        return self.root / "run"


@dataclass
class LocalDeployment:
    """A SuperLink and one SuperNode per site on 127.0.0.1, with TLS and node auth.

    Use as a context manager: leaving it (normally, on an exception or on
    Ctrl-C) stops every process it started.

    Parameters
    ----------
    workspace : Workspace
        Directory for keys, site data, logs and outputs (created).
    sites : list of SiteSpec
        The SuperNodes to start (see :func:`write_sites`).
    """

    workspace: Workspace
    sites: list[SiteSpec]
    supervisor: ProcessSupervisor = field(init=False)
    cli: FlowerCli = field(init=False)
    node_ids: dict[str, int] = field(default_factory=dict, init=False)
    superlink_address: str = field(default="", init=False)
    _submissions: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        env = {
            **os.environ,
            "FLWR_HOME": str(self.workspace.flwr_home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": SUPEREXEC_TASK_POLL_INTERVAL,
            # One compute thread per site process, as the simulation gives each client.
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            # Flower starts its helpers (flower-superexec, ...) by name: this
            # environment's commands first, also when it is not activated.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        self.supervisor = ProcessSupervisor(env)
        self.cli = FlowerCli(self.supervisor.env)

    def __enter__(self) -> LocalDeployment:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        """Provision, start the SuperLink, register and start every site, wait until online."""
        tls = provision_tls(self.workspace.tls, [HOST, "localhost"])
        port = free_port()
        self.superlink_address = f"{HOST}:{port}"
        self._write_connection(tls.ca_cert)
        stage_app(PROJECT_DIR, self.workspace.app)
        superlink = self.supervisor.start(
            "superlink",
            [
                flower_binary("flower-superlink"),
                "--ssl-ca-certfile", str(tls.ca_cert),
                "--ssl-certfile", str(tls.server_cert),
                "--ssl-keyfile", str(tls.server_key),
                "--enable-supernode-auth",
                "--disable-runtime-dependency-installation",
                "--host", HOST,
                "--port", str(port),
            ],
            self.workspace.logs / "superlink.log",
        )  # fmt: skip
        wait_for_health(f"https://{self.superlink_address}/health", tls.ca_cert, superlink)
        for site in self.sites:
            keys = provision_node_keys(site.directory, site.name, overwrite=True)
            self.node_ids[site.name] = self.cli.register(keys.public_key)
            self.start_site(site.name)
        self.wait_for_nodes(list(self.node_ids))

    def start_site(
        self, name: str, private_key: Path | None = None, insecure: bool = False
    ) -> ManagedProcess:
        """Start the SuperNode of site ``name`` (again, after a crash).

        Parameters
        ----------
        name : str
            A site of this deployment, or a name for an extra node (tests).
        private_key : Path, optional
            Authentication key; the site's own key by default.
        insecure : bool
            Connect without TLS (and so without authentication): refused.
        """
        site = self._site(name)
        site.directory.mkdir(parents=True, exist_ok=True)
        config_path = site.directory / "node-config.toml"
        config_path.write_text(tomli_w.dumps(site.node_config))
        argv = [
            flower_binary("flower-supernode"),
            "--superlink", self.superlink_address,
            "--node-config", str(config_path),
            "--host", HOST,
            "--port", str(free_port()),
        ]  # fmt: skip
        if insecure:
            argv.append("--insecure")
        else:
            key = private_key or site.directory / f"{name}.key"
            argv += [
                "--root-certificates", str(self.workspace.tls / "ca.crt"),
                "--auth-supernode-private-key", str(key),
            ]  # fmt: skip
        return self.supervisor.start(f"site:{name}", argv, self.workspace.logs / f"{name}.log")

    def wait_for_nodes(self, names: list[str], timeout: float = NODES_READY_TIMEOUT) -> None:
        """Wait until the SuperLink lists the SuperNodes of ``names`` as online.

        A SuperNode logs its node id once the SuperLink has activated it; only
        then is ``flwr supernode list`` (a 2 s command) asked to confirm.

        Raises
        ------
        DeploymentError
            A SuperNode exited or is not online after ``timeout``; names it with its log.
        """
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            processes = {name: self.supervisor.processes[f"site:{name}"] for name in pending}
            for name, process in processes.items():
                if process.popen.poll() is not None:
                    raise DeploymentError(
                        f"SuperNode '{name}' exited with code {process.popen.returncode}; "
                        f"last lines of {process.log_path}:\n{process.log_tail()}"
                    )
            activated = all(ACTIVATED_MARK in p.log_text() for p in processes.values())
            timed_out = time.monotonic() > deadline
            if activated or timed_out:
                statuses = self.cli.node_statuses()
                pending = [n for n in pending if statuses.get(self.node_ids[n]) != "online"]
            if pending and timed_out:
                details = "\n".join(
                    f"--- {name} ({statuses.get(self.node_ids[name], 'unknown')}):\n"
                    f"{processes[name].log_tail()}"
                    for name in pending
                )
                raise DeploymentError(
                    f"SuperNode(s) {pending} not online after {timeout:.0f}s:\n{details}"
                )
            time.sleep(0.5)

    # ------------------------------------------------------------------- runs
    def submit(self, overrides: list[str], run_dir: Path) -> int:
        """Submit a run of ``overrides`` writing to ``run_dir``; the run id."""
        self._submissions += 1
        run_config = self.workspace.root / f"run-config-{self._submissions}.toml"
        values = {
            RUN_CONFIG_OVERRIDES: shlex.join(overrides),
            RUN_CONFIG_RUN_DIR: str(run_dir.resolve()),
        }
        run_config.write_text(tomli_w.dumps(values))
        return self.cli.submit(self.workspace.app, run_config)

    def wait(self, run_id: int, timeout: float, echo: TextIO | None = None) -> RunOutcome:
        """Follow the run's log until it finishes; its outcome.

        The ServerApp's log is streamed (``flwr log --stream``, which ends with
        the run) into ``logs/serverapp-RUN.log`` and, when ``echo`` is given,
        copied there. The run's status is asked for when the stream ends, and
        every ``STATUS_POLL_INTERVAL`` seconds in case it never does.

        Raises
        ------
        DeploymentError
            The run did not finish within ``timeout`` (it is stopped first).
        """
        start = time.monotonic()
        stream = self._stream_log(run_id, echo)
        next_check = start + STATUS_POLL_INTERVAL
        while time.monotonic() < start + timeout:
            if stream.popen.poll() is not None or time.monotonic() >= next_check:
                info = self.cli.run_info(run_id)
                status = str(info["status"])
                if status.startswith(RUN_FINISHED_PREFIX):
                    self.supervisor.stop(stream.name)
                    details = str(info.get("status-details", ""))
                    return RunOutcome(run_id, status, details, time.monotonic() - start)
                next_check = time.monotonic() + STATUS_POLL_INTERVAL
                if stream.popen.poll() is not None:
                    stream = self._stream_log(run_id, None)
            time.sleep(0.5)
        self.cli.stop_run(run_id)
        raise DeploymentError(
            f"run {run_id} did not finish within {timeout:.0f}s (stopped); last lines of "
            f"{stream.log_path}:\n{stream.log_tail()}"
        )

    def _stream_log(self, run_id: int, echo: TextIO | None) -> ManagedProcess:
        argv = [self.cli.binary, "log", str(run_id), self.cli.connection, "--stream"]
        log_path = self.workspace.logs / f"serverapp-{run_id}.log"
        process = self.supervisor.start(f"log:{run_id}", argv, log_path, stdout=subprocess.PIPE)
        threading.Thread(
            target=_copy_lines, args=(process, echo), name=f"log-{run_id}", daemon=True
        ).start()
        return process

    def crash_site(self, name: str) -> None:
        """SIGKILL the SuperNode of ``name`` and its process group, as a machine crash would."""
        self.supervisor.signal_group(f"site:{name}", signal.SIGKILL)
        self.supervisor.processes[f"site:{name}"].popen.wait(STOP_TIMEOUT)

    def serverapp_pids(self) -> list[int]:
        """Running ``flwr-serverapp`` processes of this deployment."""
        return [
            pid
            for pid in self.supervisor.tagged_pids()
            if any(arg.endswith("flwr-serverapp") for arg in command_line(pid))
        ]

    # ------------------------------------------------------------------- stop
    def close(self) -> None:
        """Stop every process this deployment started."""
        self.supervisor.stop_all()

    # --------------------------------------------------------------- helpers
    def _site(self, name: str) -> SiteSpec:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"no site '{name}' in this deployment")

    def _write_connection(self, ca_cert: Path) -> None:
        config = {
            "superlink": {
                "default": CONNECTION,
                CONNECTION: {
                    "address": self.superlink_address,
                    "root-certificates": str(ca_cert.resolve()),
                },
            }
        }
        self.workspace.flwr_home.mkdir(parents=True, exist_ok=True)
        (self.workspace.flwr_home / "config.toml").write_text(tomli_w.dumps(config))


def _copy_lines(process: ManagedProcess, echo: TextIO | None) -> None:
    """Copy a process's stdout to its log file (and to ``echo``) line by line."""
    assert process.popen.stdout is not None
    with process.log_path.open("ab") as log:
        for line in process.popen.stdout:
            log.write(line)
            log.flush()
            if echo is not None:
                echo.write(line.decode(errors="replace"))
                echo.flush()


def wait_for_health(url: str, ca_cert: Path, process: ManagedProcess) -> None:
    """Wait until ``url`` answers 200 over TLS verified by ``ca_cert``.

    Raises
    ------
    DeploymentError
        The process exited (e.g. its port was taken) or no answer in time.
    """
    context = ssl.create_default_context(cafile=str(ca_cert))
    deadline = time.monotonic() + SUPERLINK_READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise DeploymentError(
                f"{process.name} exited with code {process.popen.returncode}; last lines "
                f"of {process.log_path}:\n{process.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, context=context, timeout=2.0) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    raise DeploymentError(
        f"{process.name} did not answer {url} within {SUPERLINK_READY_TIMEOUT:.0f}s; "
        f"last lines of {process.log_path}:\n{process.log_tail()}"
    )


def stage_app(project_dir: Path, destination: Path) -> Path:
    """Copy the Flower app (``pyproject.toml``, ``conf/`` and the Python packages).

    ``flwr run`` walks every file under the app directory before filtering, so
    submitting the source checkout itself spends ~10 s in its virtual
    environment; the staged copy holds only what the app needs.

    Raises
    ------
    DeploymentError
        ``project_dir`` is not a source checkout of the app.
    """
    if not (project_dir / "pyproject.toml").is_file():
        raise DeploymentError(
            f"{project_dir}: no pyproject.toml; deploy-local needs a source checkout"
        )
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    shutil.copy2(project_dir / "pyproject.toml", destination / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for entry in sorted(project_dir.iterdir()):
        if entry.name == "conf" or (entry / "__init__.py").is_file():
            shutil.copytree(entry, destination / entry.name, ignore=ignore)
    return destination


# ------------------------------------------------------------------- one command
@dataclass(frozen=True)
class DeploymentResult:
    """What ``deploy-local`` produced."""

    outcome: RunOutcome
    run_dir: Path
    workspace: Path
    summary: dict[str, Any] | None
    deployment_id: str


def deploy_local(
    sites: list[SiteSpec],
    overrides: list[str],
    workspace: Path,
    *,
    config: Config,
    run_timeout: float,
    echo: TextIO | None = None,
) -> DeploymentResult:
    """Start a local deployment of ``sites``, run the experiment, stop everything.

    Parameters
    ----------
    sites : list of SiteSpec
        The SuperNodes (see :func:`write_owner_sites`).
    overrides : list of str
        Hydra overrides of the experiment (they travel in ``run_config``).
    workspace : Path
        Workspace directory (see the module docstring).
    config : Config
        The composed experiment, stored in the run directory.
    run_timeout : float
        Seconds the run may take once submitted.
    echo : TextIO, optional
        Where to copy the ServerApp's log as it arrives.

    Raises
    ------
    DeploymentError
        Something did not start, or the run did not complete; every process is
        stopped before it propagates.
    """
    space = Workspace(workspace)
    outputs = RunOutputs(space.run_dir)
    outputs.write_config(OmegaConf.to_yaml(OmegaConf.structured(config)), overrides)
    with LocalDeployment(space, sites) as deployment:
        deployment.start()
        run_id = deployment.submit(overrides, space.run_dir)
        outcome = deployment.wait(run_id, run_timeout, echo)
    if not outcome.completed:
        raise DeploymentError(
            f"run {run_id} ended {outcome.status}: {outcome.details}\n"
            f"ServerApp log: {space.logs / f'serverapp-{run_id}.log'}"
        )
    summary = outputs.read_summary() if outputs.summary_path.exists() else None
    return DeploymentResult(
        outcome, space.run_dir, workspace, summary, deployment.supervisor.deployment_id
    )


DEPLOY_EPILOG = """\
examples:
  fedcurate deploy-local --sites 3 num_rounds=5 model=logistic
  fedcurate deploy-local --sites 2 privacy=dp_sgd crypto=ckks curator=first_order
starts a SuperLink and 3 owner SuperNodes on 127.0.0.1 (TLS, node authentication;
with crypto=ckks also the curator's SuperNode), runs the experiment and stops them;
outputs go to WORKSPACE/run, logs to WORKSPACE/logs. num_clients is set from --sites.
"""


def main(argv: list[str]) -> int:
    """``fedcurate deploy-local --sites N [OVERRIDES...]``."""
    parser = argparse.ArgumentParser(
        prog="fedcurate deploy-local",
        description="Run the federation on real Flower processes on this machine: a "
        "SuperLink and one SuperNode per site, with TLS and SuperNode authentication.",
        epilog=DEPLOY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sites", type=int, required=True, help="number of data owners")
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="keys, site data, logs and outputs (default: outputs/deploy-local/TIMESTAMP)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds the run may take (default 3600)"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the experiment")
    args = parser.parse_args(argv)
    if args.sites < 1:
        parser.error("--sites must be at least 1")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    workspace = (args.workspace or Path("outputs") / "deploy-local" / stamp).resolve()
    try:
        overrides = with_num_clients(parse_overrides(args.overrides), args.sites)
        config = compose_config(overrides)
        sites = write_sites(config, Workspace(workspace).sites)
        _stop_on_sigterm()
        result = deploy_local(
            sites, overrides, workspace, config=config, run_timeout=args.timeout, echo=sys.stdout
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DeploymentError as error:
        print(f"error: {error}\nworkspace: {workspace}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; every process stopped. workspace: {workspace}", file=sys.stderr)
        return 130
    print(describe_result(result))
    return 0


def with_num_clients(overrides: list[str], sites: int) -> list[str]:
    """``overrides`` with ``num_clients`` equal to the number of sites.

    Raises
    ------
    ConfigError
        The overrides set ``num_clients`` to another value.
    """
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("num_clients=")]
    if any(value != str(sites) for value in given):
        raise ConfigError(f"num_clients={given[-1]} contradicts --sites {sites}")
    return overrides if given else [*overrides, f"num_clients={sites}"]


def describe_result(result: DeploymentResult) -> str:
    """Where the outputs are and how the run went."""
    lines = [
        f"run {result.outcome.run_id}: {result.outcome.status} in {result.outcome.seconds:.1f}s"
    ]
    if result.summary is not None:
        final = result.summary["final"]
        lines.append(
            f"final test accuracy {final['accuracy']:.4f} after "
            f"{result.summary['rounds_completed']} rounds"
        )
    lines += [
        f"run directory: {result.run_dir}",
        f"logs:          {result.workspace / 'logs'}",
        f"keys and site data: {result.workspace / 'tls'}, {result.workspace / 'sites'}",
    ]
    return "\n".join(lines)


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so the deployment's cleanup runs."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
