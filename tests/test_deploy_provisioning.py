"""Provisioning for deployment: TLS files and SuperNode keys as Flower loads them."""

from __future__ import annotations

import argparse
import ipaddress
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store
from flwr.cli.supernode.register import try_load_public_key
from flwr.supercore.primitives.asymmetric import public_key_to_bytes
from flwr.supernode.cli.flower_supernode import _try_setup_client_authentication

from fedcurate.provisioning import (
    keys_node_command,
    keys_tls_command,
    provision_node_keys,
    provision_tls,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _verify(ca: Path, server: Path, name: x509.DNSName | x509.IPAddress) -> None:
    store = Store([_load_cert(ca)])
    verifier = PolicyBuilder().store(store).build_server_verifier(name)
    verifier.verify(_load_cert(server), [])


def test_tls_private_files_are_0600_and_public_0644(tmp_path: Path) -> None:
    paths = provision_tls(tmp_path, ["127.0.0.1"])
    assert _mode(paths.ca_key) == _mode(paths.server_key) == 0o600
    assert _mode(paths.ca_cert) == _mode(paths.server_cert) == 0o644


def test_server_certificate_chains_to_the_ca_for_every_host(tmp_path: Path) -> None:
    paths = provision_tls(tmp_path, ["fl.example.org", "10.0.0.5", "::1"])
    _verify(paths.ca_cert, paths.server_cert, x509.DNSName("fl.example.org"))
    _verify(paths.ca_cert, paths.server_cert, x509.IPAddress(ipaddress.ip_address("10.0.0.5")))
    _verify(paths.ca_cert, paths.server_cert, x509.IPAddress(ipaddress.ip_address("::1")))
    with pytest.raises(x509.verification.VerificationError):
        _verify(paths.ca_cert, paths.server_cert, x509.DNSName("other.example.org"))


def test_server_certificate_is_a_p384_server_leaf(tmp_path: Path) -> None:
    paths = provision_tls(tmp_path, ["localhost"])
    cert = _load_cert(paths.server_cert)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp384r1"
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.ExtendedKeyUsageOID.SERVER_AUTH in usage
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 364 <= lifetime.days <= 366


def test_running_again_keeps_the_ca_and_renews_the_server_certificate(tmp_path: Path) -> None:
    first = provision_tls(tmp_path, ["localhost"])
    ca_before = first.ca_cert.read_bytes()
    server_before = first.server_cert.read_bytes()
    second = provision_tls(tmp_path, ["localhost", "10.1.2.3"])
    assert second.ca_cert.read_bytes() == ca_before
    assert second.server_cert.read_bytes() != server_before
    _verify(second.ca_cert, second.server_cert, x509.IPAddress(ipaddress.ip_address("10.1.2.3")))


def test_a_ca_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    paths = provision_tls(tmp_path, ["localhost"])
    paths.ca_key.unlink()
    with pytest.raises(ValueError, match=r"ca\.key"):
        provision_tls(tmp_path, ["localhost"])


def test_tls_needs_a_host(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host"):
        provision_tls(tmp_path, [])


def test_node_keys_load_with_flowers_own_loaders(tmp_path: Path) -> None:
    paths = provision_node_keys(tmp_path, "hospital-a")
    assert _mode(paths.private_key) == 0o600
    assert _mode(paths.public_key) == 0o644
    assert paths.public_key.read_text().startswith("ecdsa-sha2-nistp384 ")
    registered = try_load_public_key(paths.public_key)  # what `flwr supernode register` sends
    args = argparse.Namespace(
        auth_supernode_private_key=str(paths.private_key), auth_supernode_public_key=None
    )
    keys = _try_setup_client_authentication(args)  # what flower-supernode signs with
    assert keys is not None
    private, public = keys
    assert private.curve.name == "secp384r1"
    assert public_key_to_bytes(public) == registered


def test_node_keys_are_never_silently_replaced(tmp_path: Path) -> None:
    first = provision_node_keys(tmp_path, "site-1")
    original = first.public_key.read_bytes()
    with pytest.raises(FileExistsError, match="site-1"):
        provision_node_keys(tmp_path, "site-1")
    replaced = provision_node_keys(tmp_path, "site-1", overwrite=True)
    assert replaced.public_key.read_bytes() != original


@pytest.mark.parametrize("name", ["", "../escape", "a b", "-dash-first"])
def test_node_key_names_must_be_portable(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="site name"):
        provision_node_keys(tmp_path, name)


def test_key_commands_write_files_and_report_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = tmp_path / "tls"
    assert keys_tls_command(["--out", str(tls), "--host", "10.0.0.5"]) == 0
    # A SuperLink on 0.0.0.0 starts its ServerApps against 127.0.0.1: always in the SAN.
    for host in ("10.0.0.5", "127.0.0.1"):
        address = x509.IPAddress(ipaddress.ip_address(host))
        _verify(tls / "ca.crt", tls / "server.pem", address)
    _verify(tls / "ca.crt", tls / "server.pem", x509.DNSName("localhost"))
    assert keys_node_command(["--out", str(tmp_path / "keys"), "--name", "site-a"]) == 0
    assert (tmp_path / "keys" / "site-a.key").is_file()
    assert keys_node_command(["--out", str(tmp_path / "keys"), "--name", "site-a"]) == 2
    assert "already exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", [keys_tls_command, keys_node_command])
def test_key_commands_show_an_example(
    command: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        command(["--help"])
    assert exit_info.value.code == 0
    assert "example" in capsys.readouterr().out
