"""Encrypted vectors: encrypt with the public key, serialize, validate on receipt.

Wire format (format 1): a flat mapping that fits a Flower ``ConfigRecord`` as is::

    ckks-format          int        1
    ckks-preset          str        preset name ("aggregate", "scoring", "flare")
    ckks-key-fingerprint str        SHA-256 hex of parameters and public key
    ckks-length          int        number of reals
    ckks-num-chunks      int        ceil(length / values per ciphertext)
    ckks-scale           float      scale of every chunk (2^scale_bits when fresh)
    ckks-summands        int        how many owners' vectors were added (1: fresh)
    ckks-digest          str        SHA-256 hex of the fields above and the chunks
    ckks-chunks          list[bytes] SEAL ciphertexts, in order

:func:`from_wire` checks every field against the receiver's context, every chunk
against its header, the digest (SEAL's loader accepts most flipped bits as other
valid coefficients, so corruption in transit would otherwise be summed
silently), then SEAL's own validation, each chunk's level and its scale; it
raises an exception whose message names the first problem found. The digest
detects accidents, not a malicious sender, who can encrypt anything it likes.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt
import tenseal.sealapi as seal

from fedcurate.crypto import sealio
from fedcurate.crypto.context import CkksContext
from fedcurate.crypto.errors import (
    KeyMismatchError,
    MalformedPayloadError,
    ParameterMismatchError,
)
from fedcurate.crypto.packing import as_flat_vector, pack

WIRE_FORMAT = 1
FORMAT_KEY = "ckks-format"
PRESET_KEY = "ckks-preset"
KEY_FINGERPRINT_KEY = "ckks-key-fingerprint"
LENGTH_KEY = "ckks-length"
NUM_CHUNKS_KEY = "ckks-num-chunks"
SCALE_KEY = "ckks-scale"
SUMMANDS_KEY = "ckks-summands"
DIGEST_KEY = "ckks-digest"
CHUNKS_KEY = "ckks-chunks"
_DIGESTED_FIELDS = (
    FORMAT_KEY,
    PRESET_KEY,
    KEY_FINGERPRINT_KEY,
    LENGTH_KEY,
    NUM_CHUNKS_KEY,
    SCALE_KEY,
    SUMMANDS_KEY,
)
_DIGEST_DOMAIN = b"fedcurate/ckks-wire/v1\0"

WireValue = int | float | str | list[bytes]


@dataclass(frozen=True, repr=False)
class EncryptedVector:
    """A flat vector of ``length`` reals as CKKS ciphertexts under one key.

    Attributes
    ----------
    preset_name : str
        Preset of the key pair.
    length : int
        Number of reals (the last ciphertext is zero-padded).
    key_fingerprint : str
        Fingerprint of the public key it was encrypted under.
    ciphertexts : tuple
        SEAL ciphertexts, one per chunk, all at the encryption level.
    summands : int
        How many owners' vectors it sums (1 for a fresh encryption).
    """

    preset_name: str
    length: int
    key_fingerprint: str
    ciphertexts: tuple[Any, ...]
    summands: int = 1

    @property
    def scale(self) -> float:
        """CKKS scale of the chunks (the preset's scale unless weighted)."""
        return float(self.ciphertexts[0].scale)

    def __repr__(self) -> str:
        return (
            f"EncryptedVector(preset={self.preset_name!r}, length={self.length}, "
            f"chunks={len(self.ciphertexts)}, summands={self.summands}, "
            f"key={self.key_fingerprint[:16]})"
        )


def encrypt_vector(vector: npt.ArrayLike, context: CkksContext) -> EncryptedVector:
    """Encrypt a flat float vector with the public key (what a data owner sends).

    Parameters
    ----------
    vector : array_like
        The update, already multiplied by the owner's aggregation weight. Every
        ``|value|`` must stay under ``context.preset.value_capacity``, and so must
        every value of the sum the server will form.
    context : CkksContext
        Public (or secret) context; encryption uses only the public key.

    Raises
    ------
    CapacityError
        Not a finite flat vector, or a value too large for the preset.
    """
    preset = context.preset
    values = as_flat_vector(vector, capacity=preset.value_capacity)
    ciphertexts = []
    for row in pack(values, preset):
        plain = seal.Plaintext()
        context.encoder.encode(row.tolist(), preset.scale, plain)
        ciphertext = seal.Ciphertext()
        context.encryptor.encrypt(plain, ciphertext)
        ciphertexts.append(ciphertext)
    return EncryptedVector(preset.name, values.size, context.fingerprint, tuple(ciphertexts))


def to_wire(encrypted: EncryptedVector) -> dict[str, WireValue]:
    """The wire mapping of ``encrypted`` (use as ``ConfigRecord(to_wire(...))``)."""
    wire: dict[str, WireValue] = {
        FORMAT_KEY: WIRE_FORMAT,
        PRESET_KEY: encrypted.preset_name,
        KEY_FINGERPRINT_KEY: encrypted.key_fingerprint,
        LENGTH_KEY: encrypted.length,
        NUM_CHUNKS_KEY: len(encrypted.ciphertexts),
        SCALE_KEY: encrypted.scale,
        SUMMANDS_KEY: encrypted.summands,
        CHUNKS_KEY: sealio.save_objects(encrypted.ciphertexts),
    }
    wire[DIGEST_KEY] = wire_digest(wire)
    return wire


def wire_digest(wire: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the metadata fields and every chunk of a wire mapping, in order."""
    digest = hashlib.sha256(_DIGEST_DOMAIN)
    for key in _DIGESTED_FIELDS:
        digest.update(f"{key}={wire[key]!r}\n".encode())
    for chunk in wire[CHUNKS_KEY]:
        digest.update(struct.pack("<Q", len(chunk)))
        digest.update(chunk)
    return digest.hexdigest()


def wire_size(wire: Mapping[str, Any]) -> int:
    """Bytes of ciphertext a wire mapping carries (metadata excluded)."""
    return sum(len(chunk) for chunk in wire[CHUNKS_KEY])


def from_wire(
    wire: Mapping[str, Any], context: CkksContext, *, fresh: bool = True
) -> EncryptedVector:
    """Parse and validate a wire mapping against the receiver's context.

    Parameters
    ----------
    wire : Mapping
        A mapping made by :func:`to_wire` (a Flower ``ConfigRecord`` works as is).
    context : CkksContext
        The receiver's context (public for the server, secret for the curator).
    fresh : bool
        Require a fresh owner encryption (scale equal to the preset's, one
        summand), as the server does for owner replies; false for aggregates.

    Raises
    ------
    MalformedPayloadError
        A field is missing or of the wrong type, the chunk count disagrees with the
        length, or a chunk is truncated, oversized, corrupted or has another scale
        than the metadata says.
    ParameterMismatchError
        Another preset, wire format, level or (for fresh vectors) scale.
    KeyMismatchError
        Encrypted under another public key.
    """
    preset = context.preset
    version = _field(wire, FORMAT_KEY, int)
    if version != WIRE_FORMAT:
        raise ParameterMismatchError(f"wire format {version}, expected {WIRE_FORMAT}")
    preset_name = _field(wire, PRESET_KEY, str)
    if preset_name != preset.name:
        raise ParameterMismatchError(
            f"made with CKKS preset '{preset_name}', this context is '{preset.name}'"
        )
    fingerprint = _field(wire, KEY_FINGERPRINT_KEY, str)
    if fingerprint != context.fingerprint:
        raise KeyMismatchError(
            f"encrypted under key {fingerprint[:16]}, expected key {context.fingerprint[:16]}"
        )
    length = _positive(wire, LENGTH_KEY)
    num_chunks = _positive(wire, NUM_CHUNKS_KEY)
    if num_chunks != preset.ciphertexts_for(length):
        raise MalformedPayloadError(
            f"{LENGTH_KEY}={length} needs {preset.ciphertexts_for(length)} chunks "
            f"under preset '{preset.name}', metadata says {num_chunks}"
        )
    scale = _scale(wire, context, fresh)
    summands = _positive(wire, SUMMANDS_KEY)
    if fresh and summands != 1:
        raise MalformedPayloadError(f"a fresh encryption has 1 summand, metadata says {summands}")
    chunks = _field(wire, CHUNKS_KEY, list)
    if len(chunks) != num_chunks:
        raise MalformedPayloadError(f"{len(chunks)} chunks received, metadata says {num_chunks}")
    for index, chunk in enumerate(chunks):
        sealio.check_header(chunk, f"chunk {index}", context.max_ciphertext_bytes)
    if _field(wire, DIGEST_KEY, str) != wire_digest(wire):
        raise MalformedPayloadError(
            "digest mismatch: chunks or metadata were altered after encryption"
        )
    ciphertexts = sealio.load_ciphertexts(
        chunks, context.seal_context, context.max_ciphertext_bytes
    )
    for index, ciphertext in enumerate(ciphertexts):
        check_ciphertext(ciphertext, context, f"chunk {index}", scale)
    return EncryptedVector(preset.name, length, fingerprint, tuple(ciphertexts), summands)


def check_ciphertext(ciphertext: Any, context: CkksContext, what: str, scale: float) -> None:
    """Require two polynomials in NTT form at the encryption level, at ``scale``.

    Raises
    ------
    MalformedPayloadError
        Another polynomial count, representation or scale.
    ParameterMismatchError
        Another level of the modulus chain.
    """
    if ciphertext.size() != 2 or not ciphertext.is_ntt_form():
        raise MalformedPayloadError(
            f"{what}: {ciphertext.size()} polynomials (ntt={ciphertext.is_ntt_form()}), "
            "expected a fresh or summed ciphertext (2, ntt=True)"
        )
    if tuple(ciphertext.parms_id()) != context.first_parms_id:
        raise ParameterMismatchError(f"{what}: not at the encryption level of these parameters")
    if ciphertext.scale != scale:
        raise MalformedPayloadError(f"{what}: scale {ciphertext.scale!r}, expected {scale!r}")


def _scale(wire: Mapping[str, Any], context: CkksContext, fresh: bool) -> float:
    scale = _field(wire, SCALE_KEY, float)
    if not math.isfinite(scale) or scale <= 0:
        raise MalformedPayloadError(f"{SCALE_KEY}={scale!r} is not a positive scale")
    if fresh and scale != context.preset.scale:
        raise ParameterMismatchError(
            f"fresh encryption at scale {scale!r}, preset '{context.preset.name}' "
            f"encrypts at {context.preset.scale!r}"
        )
    return scale


def _positive(wire: Mapping[str, Any], key: str) -> int:
    value = _field(wire, key, int)
    if value < 1:
        raise MalformedPayloadError(f"{key}={value} must be at least 1")
    return value


def _field(wire: Mapping[str, Any], key: str, kind: type) -> Any:
    try:
        value = wire[key]
    except KeyError:
        raise MalformedPayloadError(f"missing field '{key}'") from None
    # bool is an int to Python but never a valid count here.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedPayloadError(
            f"field '{key}' is {type(value).__name__}, expected {kind.__name__}"
        )
    return value
