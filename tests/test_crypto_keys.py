"""Key provisioning: public contexts cannot decrypt, secrets never leak, modes hold."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts

from fedcurate.crypto import (
    AGGREGATE,
    PUBLIC_KEY_FILE,
    SECRET_KEY_FILE,
    KeyFileError,
    MissingSecretKeyError,
    create_context,
    decrypt_inner_product,
    decrypt_vector,
    describe_key_file,
    encrypt_vector,
    keys_info,
    keys_init,
    load_context,
    load_key_file,
)
from fedcurate.crypto.sealio import save_objects


def _secret_key_bytes(secret_context_bytes: bytes) -> bytes:
    """The serialized secret key itself, as SEAL writes it."""
    context = ts.context_from(secret_context_bytes)
    [blob] = save_objects([context.secret_key().data])
    return blob


def _leaks(secret: bytes, text: str) -> bool:
    """Whether any 24-byte window of ``secret`` shows up in ``text`` in a usual encoding."""
    windows = [secret[i : i + 24] for i in range(0, len(secret) - 24, 997)]
    encodings: list[Callable[[bytes], bytes | str]] = [
        base64.b64encode,
        base64.urlsafe_b64encode,
        bytes.hex,
    ]
    for window in windows:
        for encode in encodings:
            encoded = encode(window)
            encoded_text = encoded if isinstance(encoded, str) else encoded.decode()
            if encoded_text[4:-4] in text:
                return True
        if window.decode("latin-1") in text:
            return True
    return False


def test_public_context_cannot_decrypt() -> None:
    secret = create_context(AGGREGATE)
    public = load_context(secret.public_bytes())
    assert secret.is_secret
    assert not public.is_secret
    encrypted = encrypt_vector(np.full(10, 0.01), public)
    with pytest.raises(MissingSecretKeyError, match="only the curator"):
        decrypt_vector(encrypted, public)
    with pytest.raises(MissingSecretKeyError):
        decrypt_inner_product(b"irrelevant", public)
    with pytest.raises(MissingSecretKeyError):
        public.secret_bytes()
    # TenSEAL itself refuses too: the public bytes hold no secret key at all.
    raw = ts.context_from(secret.public_bytes())
    assert raw.is_public()
    assert not raw.has_galois_keys()
    assert not raw.has_relin_keys()
    with pytest.raises(ValueError, match="secret_key"):
        ts.ckks_vector(raw, [1.0, 2.0]).decrypt()
    # CKKS noise from fresh OS randomness: errors of a few 1e-9 occur (aggregate preset).
    np.testing.assert_allclose(decrypt_vector(encrypted, secret), 0.01, rtol=0, atol=1e-7)


def test_keys_init_writes_modes_and_matching_fingerprints(tmp_path: Path) -> None:
    info = keys_init(tmp_path / "keys", preset="aggregate")
    public_path, secret_path = (
        tmp_path / "keys" / PUBLIC_KEY_FILE,
        tmp_path / "keys" / SECRET_KEY_FILE,
    )
    assert os.stat(secret_path).st_mode & 0o777 == 0o600
    assert os.stat(public_path).st_mode & 0o777 == 0o644
    assert info["secret"]["kind"] == "secret"
    assert info["public"]["kind"] == "public"
    assert info["secret"]["fingerprint"] == info["public"]["fingerprint"]
    assert info["public"]["preset"] == "aggregate"
    assert info["secret"]["mode_ok"]
    assert load_key_file(public_path).fingerprint == info["public"]["fingerprint"]
    assert load_key_file(secret_path, expect="secret").is_secret
    with pytest.raises(KeyFileError, match="holds a secret context, a public one is expected"):
        load_key_file(secret_path, expect="public")
    with pytest.raises(KeyFileError, match="holds a public context"):
        load_key_file(public_path, expect="secret")
    assert keys_info(public_path)["size_bytes"] == public_path.stat().st_size
    other = keys_init(tmp_path / "other", preset="auto")
    assert other["public"]["fingerprint"] != info["public"]["fingerprint"]


def test_keys_init_refuses_to_overwrite(tmp_path: Path) -> None:
    keys_init(tmp_path)
    with pytest.raises(FileExistsError, match=SECRET_KEY_FILE):
        keys_init(tmp_path)
    keys_init(tmp_path, overwrite=True)


def test_secret_material_never_in_descriptions_reprs_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    info = keys_init(tmp_path, preset="scoring", encrypted_scoring=True)
    secret_path = tmp_path / SECRET_KEY_FILE
    context = load_key_file(secret_path)
    described = json.dumps([info, describe_key_file(secret_path), repr(context)])
    secret_key = _secret_key_bytes(secret_path.read_bytes())
    assert len(secret_key) > 1000
    assert _leaks(secret_key, base64.b64encode(secret_key).decode())  # the detector works
    assert _leaks(secret_key, "key=" + secret_key.hex())
    assert "secret" in caplog.text  # the write was logged ...
    for text in (described, caplog.text):  # ... but never the key
        assert not _leaks(secret_key, text)
        assert not _leaks(secret_path.read_bytes(), text)


def test_group_readable_secret_file_is_refused(tmp_path: Path) -> None:
    keys_init(tmp_path)
    secret_path = tmp_path / SECRET_KEY_FILE
    secret_path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key_file(secret_path)
    assert describe_key_file(secret_path)["mode_ok"] is False


def test_unreadable_or_foreign_key_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"missing\.ctx"):
        load_key_file(tmp_path / "missing.ctx")
    junk = tmp_path / "junk.ctx"
    junk.write_bytes(b"not a context")
    with pytest.raises(KeyFileError, match=r"junk\.ctx: not a TenSEAL context"):
        describe_key_file(junk)
    foreign = tmp_path / "foreign.ctx"
    readme = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    foreign.write_bytes(readme.serialize(save_secret_key=False))
    with pytest.raises(KeyFileError, match="no CKKS preset"):
        load_key_file(foreign)
