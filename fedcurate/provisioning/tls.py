"""TLS for a deployment: a private CA and the SuperLink's server certificate.

The coordinator keeps ``ca.key`` (mode 0600) and installs ``server.pem`` /
``server.key`` (0600) on the SuperLink; every site and every ``flwr`` CLI user
gets only ``ca.crt`` to verify the SuperLink. All keys are ECDSA P-384.

Running :func:`provision_tls` again in the same directory reuses the CA and
issues a fresh server certificate (new hosts, renewal), so the sites keep
trusting the same ``ca.crt``.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedcurate.io import atomic_write_bytes

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"
PUBLIC_MODE = 0o644
PRIVATE_MODE = 0o600

#: Long enough for a study, short enough that a leaked CA key expires.
CA_VALID_DAYS = 5 * 365
SERVER_VALID_DAYS = 365
#: Back-date ``not_valid_before`` so a site whose clock runs slightly behind accepts it.
_CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class TlsPaths:
    """Where the CA and the SuperLink's certificate were written."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def provision_tls(
    out_dir: str | Path,
    hosts: list[str],
    *,
    server_valid_days: int = SERVER_VALID_DAYS,
    ca_valid_days: int = CA_VALID_DAYS,
) -> TlsPaths:
    """Create (or reuse) a CA in ``out_dir`` and issue a SuperLink certificate.

    Parameters
    ----------
    out_dir : str or Path
        Directory for ``ca.crt``, ``ca.key``, ``server.pem`` and ``server.key``.
    hosts : list of str
        Names and IP addresses the SuperLink is reached at; each becomes a
        subject alternative name (an IP address SAN when it parses as one).
    server_valid_days : int
        Validity of the server certificate.
    ca_valid_days : int
        Validity of a newly created CA.

    Returns
    -------
    TlsPaths
        The four files.

    Raises
    ------
    ValueError
        No host given, a non-positive validity, or a CA file without its pair.
    """
    if not hosts:
        raise ValueError("at least one host name or IP address is needed for the certificate")
    if server_valid_days < 1 or ca_valid_days < 1:
        raise ValueError("validity must be at least one day")
    out = Path(out_dir)
    paths = TlsPaths(
        out / CA_CERT_FILE, out / CA_KEY_FILE, out / SERVER_CERT_FILE, out / SERVER_KEY_FILE
    )
    ca_key, ca_cert = _load_or_create_ca(paths, ca_valid_days)
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = _server_certificate(server_key, ca_key, ca_cert, hosts, server_valid_days)
    atomic_write_bytes(paths.server_key, _private_pem(server_key), mode=PRIVATE_MODE)
    atomic_write_bytes(
        paths.server_cert, server_cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE
    )
    return paths


def _load_or_create_ca(
    paths: TlsPaths, valid_days: int
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    has_cert, has_key = paths.ca_cert.exists(), paths.ca_key.exists()
    if has_cert != has_key:
        present, missing = (
            (paths.ca_cert, paths.ca_key) if has_cert else (paths.ca_key, paths.ca_cert)
        )
        raise ValueError(f"{present} exists but {missing} does not; restore it or remove both")
    if has_cert:
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{paths.ca_key}: not an EC private key")
        return key, x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP384R1())
    cert = _ca_certificate(key, valid_days)
    atomic_write_bytes(paths.ca_key, _private_pem(key), mode=PRIVATE_MODE)
    atomic_write_bytes(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
    return key, cert


def _ca_certificate(key: ec.EllipticCurvePrivateKey, valid_days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedcurate federation CA")])
    start = _now() - _CLOCK_SKEW
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_days))
        # It signs server certificates only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA384())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: list[str],
    valid_days: int,
) -> x509.Certificate:
    start = _now() - _CLOCK_SKEW
    end = min(start + datetime.timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )


def _subject_alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
