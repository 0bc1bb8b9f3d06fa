"""Key provisioning: key files on disk and what they hold.

A key file is exactly a serialized TenSEAL context (readable with
``tenseal.context_from``): the public one, ``ckks-public.ctx`` (mode 0644), goes
to data owners and the server; the secret one, ``ckks-secret.ctx`` (mode 0600),
stays with the curator. Both are written atomically. The preset is recognised
from the parameters, so nothing else needs to travel with the file.

:func:`keys_init` and :func:`keys_info` back ``fedcurate keys init --out DIR`` and
``fedcurate keys info FILE``.
"""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fedcurate.crypto.context import CkksContext, create_context, load_context
from fedcurate.crypto.errors import KeyFileError
from fedcurate.crypto.presets import resolve_preset
from fedcurate.io import atomic_write_bytes

log = logging.getLogger(__name__)

PUBLIC_KEY_FILE = "ckks-public.ctx"
SECRET_KEY_FILE = "ckks-secret.ctx"
KeyKind = Literal["public", "secret"]
PUBLIC_MODE = 0o644
SECRET_MODE = 0o600
#: Permission bits that must be clear on a secret key file (group and others).
_SECRET_FORBIDDEN_BITS = 0o077


@dataclass(frozen=True)
class KeyFiles:
    """Where a key pair was written."""

    public: Path
    secret: Path


def write_key_files(context: CkksContext, out_dir: str | Path, overwrite: bool = False) -> KeyFiles:
    """Write the public (0644) and secret (0600) contexts of ``context`` to ``out_dir``.

    Raises
    ------
    FileExistsError
        A key file is already there and ``overwrite`` is false (replacing a secret
        key makes every ciphertext made under it undecryptable).
    """
    out = Path(out_dir)
    files = KeyFiles(out / PUBLIC_KEY_FILE, out / SECRET_KEY_FILE)
    existing = [str(path) for path in (files.public, files.secret) if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"key files already exist: {', '.join(existing)}")
    atomic_write_bytes(files.secret, context.secret_bytes(), mode=SECRET_MODE)
    atomic_write_bytes(files.public, context.public_bytes(), mode=PUBLIC_MODE)
    log.info(
        "wrote CKKS keys (preset %s, key %s): public %s, secret %s (mode 0600)",
        context.preset.name,
        context.fingerprint[:16],
        files.public,
        files.secret,
    )
    return files


def load_key_file(path: str | Path, expect: KeyKind | None = None) -> CkksContext:
    """The public or secret context stored at ``path``.

    Parameters
    ----------
    path : str or Path
        A key file written by :func:`write_key_files`.
    expect : {"public", "secret"}, optional
        Refuse the other kind: owners and the server pass ``"public"`` so that a
        secret key handed to them by mistake is never used, the curator ``"secret"``.

    Raises
    ------
    KeyFileError
        Missing or unreadable, not a CKKS context of a known preset, not of the
        expected kind, or a secret context readable by group or others.
    """
    path = Path(path)
    context = _load(path, _read(path))
    kind: KeyKind = "secret" if context.is_secret else "public"
    if expect is not None and kind != expect:
        raise KeyFileError(f"{path}: holds a {kind} context, a {expect} one is expected here")
    mode = _mode(path)
    if context.is_secret and mode & _SECRET_FORBIDDEN_BITS:
        raise KeyFileError(
            f"{path}: holds a secret key but has mode {mode:04o}; restrict it (chmod 600)"
        )
    return context


def describe_key_file(path: str | Path) -> dict[str, Any]:
    """What a key file holds, without any key material.

    Returns
    -------
    dict
        ``path``, ``kind`` (``public`` or ``secret``), ``size_bytes``, ``mode``,
        ``mode_ok`` (a secret file must not be readable by group or others),
        ``fingerprint`` (SHA-256 of parameters and public key) and the preset's
        parameters (see :meth:`CkksPreset.describe`).

    Raises
    ------
    KeyFileError
        Missing or unreadable, or not a CKKS context of a known preset.
    """
    path = Path(path)
    data = _read(path)
    context = _load(path, data)
    mode = _mode(path)
    secret = context.is_secret
    return {
        "path": str(path),
        "kind": "secret" if secret else "public",
        "size_bytes": len(data),
        "mode": f"{mode:04o}",
        "mode_ok": not (secret and mode & _SECRET_FORBIDDEN_BITS),
        "fingerprint": context.fingerprint,
        **context.preset.describe(),
    }


def keys_init(
    out_dir: str | Path,
    preset: str = "auto",
    encrypted_scoring: bool = False,
    overwrite: bool = False,
) -> dict[str, dict[str, Any]]:
    """Provision a new key pair in ``out_dir`` (``fedcurate keys init``).

    Parameters
    ----------
    out_dir : str or Path
        Directory for ``ckks-public.ctx`` and ``ckks-secret.ctx``.
    preset : str
        A preset name or ``auto`` (see :func:`resolve_preset`).
    encrypted_scoring : bool
        Whether the curator will score owners on their ciphertexts.
    overwrite : bool
        Replace existing key files.

    Returns
    -------
    dict
        ``{"public": description, "secret": description}``.
    """
    context = create_context(resolve_preset(preset, encrypted_scoring=encrypted_scoring))
    files = write_key_files(context, out_dir, overwrite=overwrite)
    return {"public": describe_key_file(files.public), "secret": describe_key_file(files.secret)}


def keys_info(path: str | Path) -> dict[str, Any]:
    """Describe a key file (``fedcurate keys info``); see :func:`describe_key_file`."""
    return describe_key_file(path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read key file ({error.strerror})") from None


def _load(path: Path, data: bytes) -> CkksContext:
    try:
        return load_context(data)
    except KeyFileError as error:
        raise KeyFileError(f"{path}: {error}") from None


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
