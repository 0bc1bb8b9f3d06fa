"""CKKS inside the federation: same model, no secret at the server, bad ciphertexts dropped."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from flwr.app import ConfigRecordValues

import clients.owner
from clients.site import Site
from fedcurate.config import compose_config
from fedcurate.crypto import (
    CkksContext,
    CryptoError,
    create_context,
    decrypt_vector,
    encrypt_vector,
    from_wire,
    get_preset,
    load_key_file,
    to_wire,
)
from fedcurate.reporting.report import fmt
from server.curator_link import CuratorNode
from simulations.runner import run_simulation

BASE = ["num_clients=4", "num_rounds=3", "train.local_epochs=1"]


def simulate(run_dir: Path, *extra: str) -> dict[str, Any]:
    args = [*BASE, *extra]
    return run_simulation(compose_config(args), args, run_dir)


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_encrypted_run_learns_the_same_model(tmp_path: Path) -> None:
    plain = simulate(tmp_path / "plain")
    encrypted = simulate(tmp_path / "ckks", "crypto=ckks")
    assert abs(encrypted["final"]["accuracy"] - plain["final"]["accuracy"]) <= 0.005
    assert np.isclose(encrypted["final"]["loss"], plain["final"]["loss"], rtol=1e-4)
    timing = encrypted["timing"]
    assert {"train", "encrypt", "aggregate", "decrypt"} <= set(timing)
    assert encrypted["communication"]["bytes_up_per_param"] > 4.0
    # The curator node decrypts the aggregate: at least one ciphertext of the update a round.
    assert encrypted["communication"]["curator_bytes"] > encrypted["communication"]["bytes_down"]
    assert plain["communication"]["curator_bytes"] == 0
    curator_mb = fmt(encrypted["communication"]["curator_bytes"] / 1e6, 2)
    report = (tmp_path / "ckks" / "report.md").read_text()
    assert f"| total MB exchanged with the curator node | {curator_mb} |" in report


def test_the_server_holds_no_secret_and_outputs_leak_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[CkksContext] = []
    original = CuratorNode.public_context

    def spy(self: CuratorNode) -> CkksContext:
        context = original(self)
        seen.append(context)
        return context

    monkeypatch.setattr(CuratorNode, "public_context", spy)
    run_dir = tmp_path / "run"
    simulate(run_dir, "crypto=ckks", "curator=first_order")
    server_context = seen[0]
    assert not server_context.is_secret
    some_sum = encrypt_vector(np.ones(8), server_context)
    with pytest.raises(CryptoError):
        decrypt_vector(some_sum, server_context)
    secret_file = run_dir / "keys" / "ckks-secret.ctx"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret = load_key_file(secret_file, expect="secret").secret_bytes()
    needles: list[bytes | str] = [
        secret[100:164],
        base64.b64encode(secret[99:180])[8:72],
        secret[100:140].hex(),
    ]
    for path in run_dir.rglob("*"):
        if path.is_file() and "keys" not in path.parts and path.suffix != ".pkl":
            content = path.read_bytes()
            assert not any(
                (needle if isinstance(needle, bytes) else needle.encode()) in content
                for needle in needles
            ), f"{path} contains secret key material"


def _owner_sends(kind: str, victim: str) -> Any:
    honest = clients.owner._encrypted_update

    def send(site: Site, *args: Any) -> Any:
        record = honest(site, *args)
        if site.name != victim:
            return record
        if kind == "wrong-key":  # same preset, another key pair
            stranger = create_context(get_preset(str(record["ckks-preset"])))
            values = np.zeros(int(cast(int, record["ckks-length"])))
            wire = to_wire(encrypt_vector(values, stranger))
            return type(record)(cast(dict[str, ConfigRecordValues], wire))
        chunks = list(cast(list[bytes], record["ckks-chunks"]))
        tampered = bytearray(chunks[0])
        tampered[len(tampered) // 2] ^= 0x10
        chunks[0] = bytes(tampered)
        record["ckks-chunks"] = chunks
        return record

    return send


@pytest.mark.parametrize(("kind", "reason"), [("wrong-key", "key"), ("corrupted", "digest")])
def test_bad_ciphertexts_are_rejected_and_the_round_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, reason: str
) -> None:
    monkeypatch.setattr(clients.owner, "_encrypted_update", _owner_sends(kind, "owner-002"))
    summary = simulate(tmp_path / kind, "crypto=ckks", "num_rounds=2")
    first = records(tmp_path / kind)[0]
    assert "owner-002" in first["rejected"]
    assert reason in first["rejected"]["owner-002"].lower()
    assert sorted(first["replied"]) == ["owner-000", "owner-001", "owner-003"]
    assert summary["rounds_completed"] == 2


def test_the_curator_refuses_to_decrypt_a_single_update(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    simulate(run_dir, "crypto=ckks", "num_rounds=1")
    public = load_key_file(run_dir / "keys" / "ckks-public.ctx", expect="public")
    secret = load_key_file(run_dir / "keys" / "ckks-secret.ctx", expect="secret")
    single = from_wire(to_wire(encrypt_vector(np.ones(16), public)), secret, fresh=False)
    with pytest.raises(CryptoError, match="summand"):
        decrypt_vector(single, secret, min_summands=2)
