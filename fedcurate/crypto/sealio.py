"""SEAL objects to bytes and back, and raw residues in and out.

``tenseal.sealapi`` saves and loads SEAL objects only through file paths, so bytes
pass through a private scratch directory (in RAM under ``/dev/shm`` when there is
one). SEAL's own loader validates what it reads (sizes, parameter ids, every
coefficient below its prime); this module checks the 16-byte SEAL header first so
a truncated or oversized payload is reported as such, with its index.

Two things sealapi does not offer are built here from SEAL's documented
serialization layout: a plaintext in NTT form from given residues (the server's
exact random mask for inner products) and the residues of a plaintext (the
curator's exact read-out of one coefficient).
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal.sealapi as seal

from fedcurate.crypto.errors import MalformedPayloadError, ParameterMismatchError

# SEALHeader: magic, header size, version major, version minor, compression mode,
# reserved, total size of the serialized object including this header.
_HEADER = struct.Struct("<HBBBBHQ")
_MAGIC = 0xA15E
_COMPRESSION_MODES = {int(mode) for mode in seal.COMPR_MODE_TYPE.__members__.values()}
_NO_COMPRESSION = int(seal.COMPR_MODE_TYPE.NONE)
# Ciphertext members before its data: parms_id, is_ntt_form, size, N, number of
# primes, scale, correction factor; then the data array's own header and length.
_CIPHERTEXT_FIXED_BYTES = _HEADER.size + 32 + 1 + 8 + 8 + 8 + 8 + 8 + _HEADER.size + 8
_RAM_DIR = Path("/dev/shm")


@contextmanager
def scratch_file() -> Iterator[str]:
    """A path in a fresh private (0700) directory, removed afterwards."""
    base = str(_RAM_DIR) if _RAM_DIR.is_dir() and os.access(_RAM_DIR, os.W_OK) else None
    directory = tempfile.mkdtemp(prefix="fedcurate-ckks-", dir=base)
    try:
        yield os.path.join(directory, "object.seal")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@cache
def seal_version() -> tuple[int, int]:
    """(major, minor) version of the SEAL library TenSEAL was built with."""
    with scratch_file() as path:
        seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS).save(path)
        header = Path(path).read_bytes()[: _HEADER.size]
    return header[3], header[4]


def save_objects(objects: Sequence[Any]) -> list[bytes]:
    """Serialize SEAL objects (SEAL's default compression) to bytes, in order."""
    blobs = []
    with scratch_file() as path:
        for obj in objects:
            obj.save(path)
            blobs.append(Path(path).read_bytes())
    return blobs


def max_ciphertext_bytes(poly_modulus_degree: int, num_primes: int) -> int:
    """Upper bound on a serialized two-polynomial ciphertext, compression included."""
    raw = _CIPHERTEXT_FIXED_BYTES + 8 * 2 * poly_modulus_degree * num_primes
    return max(
        int(seal.Serialization.ComprSizeEstimate(raw, mode))
        for mode in seal.COMPR_MODE_TYPE.__members__.values()
    )


def check_header(blob: bytes, what: str, max_bytes: int) -> None:
    """Reject a SEAL payload whose header is not SEAL's or disagrees with its length.

    Raises
    ------
    MalformedPayloadError
        Too short, too long, not a SEAL header, another SEAL version, or a declared
        size different from the payload's length (truncated or padded).
    """
    if not isinstance(blob, bytes | bytearray):
        raise MalformedPayloadError(f"{what}: expected bytes, got {type(blob).__name__}")
    if len(blob) > max_bytes:
        raise MalformedPayloadError(f"{what}: {len(blob)} bytes, over the {max_bytes} possible")
    if len(blob) < _HEADER.size:
        raise MalformedPayloadError(f"{what}: {len(blob)} bytes, truncated before its header")
    magic, header_size, major, minor, mode, _, declared = _HEADER.unpack_from(blob)
    if magic != _MAGIC or header_size != _HEADER.size or mode not in _COMPRESSION_MODES:
        raise MalformedPayloadError(f"{what}: not a SEAL object (bad header)")
    if (major, minor) != seal_version():
        expected = "{}.{}".format(*seal_version())
        raise MalformedPayloadError(f"{what}: written by SEAL {major}.{minor}, not {expected}")
    if declared != len(blob):
        state = "truncated" if len(blob) < declared else "has trailing bytes"
        raise MalformedPayloadError(f"{what}: {state} ({len(blob)} bytes, header says {declared})")


def load_ciphertexts(
    blobs: Sequence[bytes], seal_context: Any, max_bytes: int, what: str = "chunk"
) -> list[Any]:
    """Ciphertexts from bytes, each checked by its header and by SEAL's validation.

    Raises
    ------
    MalformedPayloadError
        A payload fails :func:`check_header` or SEAL cannot load it (corrupted data,
        or parameters that belong to no level of ``seal_context``).
    """
    ciphertexts = []
    with scratch_file() as path:
        for index, blob in enumerate(blobs):
            label = f"{what} {index}"
            check_header(blob, label, max_bytes)
            Path(path).write_bytes(blob)
            ciphertext = seal.Ciphertext()
            try:
                ciphertext.load(seal_context, path)
            except (ValueError, RuntimeError) as error:
                raise MalformedPayloadError(
                    f"{label}: corrupted, or not a ciphertext for these CKKS parameters "
                    f"(SEAL: {error})"
                ) from None
            ciphertexts.append(ciphertext)
    return ciphertexts


def load_public_key(blob: bytes, seal_context: Any) -> Any:
    """A sealapi public key from its SEAL serialization."""
    public_key = seal.PublicKey()
    with scratch_file() as path:
        Path(path).write_bytes(blob)
        public_key.load(seal_context, path)
    return public_key


def _uncompressed(members: bytes) -> bytes:
    """``members`` behind a SEAL header that declares them uncompressed."""
    major, minor = seal_version()
    size = _HEADER.size + len(members)
    return _HEADER.pack(_MAGIC, _HEADER.size, major, minor, _NO_COMPRESSION, 0, size) + members


def residues(obj: Any, count: int | None = None) -> npt.NDArray[np.uint64]:
    """The raw RNS coefficients of a SEAL ciphertext, plaintext or key, flat.

    ``count``: only the first ones (a ciphertext's first polynomial); all when ``None``.
    """
    array = obj.dyn_array()
    size = array.size() if count is None else min(count, array.size())
    return np.fromiter((array.at(i) for i in range(size)), np.uint64, size)


def ntt_plaintext(
    rows: npt.NDArray[np.uint64], parms_id: Sequence[int], scale: float, seal_context: Any
) -> Any:
    """A CKKS plaintext in NTT form holding exactly ``rows`` (one row per prime).

    Serializes the plaintext uncompressed in SEAL's layout (header, parms_id,
    coefficient count, scale, then the data array with its own header and length)
    and lets SEAL load and validate it.
    """
    data = np.ascontiguousarray(rows, dtype="<u8").tobytes()
    array = _uncompressed(struct.pack("<Q", rows.size) + data)
    blob = _uncompressed(struct.pack("<4QQd", *parms_id, rows.size, scale) + array)
    plain = seal.Plaintext()
    with scratch_file() as path:
        Path(path).write_bytes(blob)
        try:
            plain.load(seal_context, path)
        except (ValueError, RuntimeError) as error:
            raise ParameterMismatchError(f"mask plaintext rejected by SEAL ({error})") from None
    return plain
