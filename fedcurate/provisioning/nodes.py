"""SuperNode authentication keys: one ECDSA P-384 key pair per site.

Flower authenticates a SuperNode by a signature made with its private key; the
SuperLink (started with ``--enable-supernode-auth``) accepts only nodes whose
public key was registered with ``flwr supernode register KEY.pub CONNECTION``.
Both files are in OpenSSH format, as Flower loads them:

``NAME.key``
    the private key (``-----BEGIN OPENSSH PRIVATE KEY-----``, mode 0600), given
    to ``flower-supernode --auth-supernode-private-key``; it never leaves the site;
``NAME.pub``
    the public key (``ecdsa-sha2-nistp384 AAAA... NAME``), sent to the
    coordinator for registration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedcurate.io import atomic_write_bytes

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644

#: Site names become file names and key comments: keep them portable.
_SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class NodeKeyPaths:
    """Where a site's key pair was written."""

    private_key: Path
    public_key: Path


def provision_node_keys(out_dir: str | Path, name: str, overwrite: bool = False) -> NodeKeyPaths:
    """Write a new SuperNode key pair ``NAME.key`` (0600) / ``NAME.pub`` to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Destination directory (created if missing).
    name : str
        The site's name: letters, digits, ``.``, ``_`` and ``-``.
    overwrite : bool
        Replace an existing key pair. A replaced key must be registered again:
        the SuperLink refuses the site until it is.

    Raises
    ------
    ValueError
        ``name`` is not a valid site name.
    FileExistsError
        A key file of ``name`` exists and ``overwrite`` is false.
    """
    if not _SITE_NAME.fullmatch(name):
        raise ValueError(
            f"site name '{name}': use letters, digits, '.', '_' and '-' (starting with "
            "a letter or digit)"
        )
    out = Path(out_dir)
    paths = NodeKeyPaths(out / f"{name}.key", out / f"{name}.pub")
    existing = [str(p) for p in (paths.private_key, paths.public_key) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"key files already exist: {', '.join(existing)} (a registered key is the "
            "site's identity; pass overwrite to replace it and register the new one)"
        )
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    atomic_write_bytes(paths.private_key, private, mode=PRIVATE_MODE)
    atomic_write_bytes(paths.public_key, public + f" {name}\n".encode(), mode=PUBLIC_MODE)
    return paths
