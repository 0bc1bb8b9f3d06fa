"""Server-side sums of encrypted vectors and the curator's decryption.

Summing needs only the public context. Plaintext weights multiply each
ciphertext by a constant polynomial ``round(w * 2^30 / max|w|)``: exact integer
arithmetic, no rescaling, so the result's scale is the product of both scales and
SEAL decodes it without the rescale-scale bias. That needs a preset with room for
the product (``supports_plain_multiply``); with the sum-only preset owners
multiply by their weight before encrypting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import tenseal.sealapi as seal

from fedcurate.crypto.context import CkksContext
from fedcurate.crypto.errors import (
    CapacityError,
    CryptoError,
    KeyMismatchError,
    ParameterMismatchError,
)
from fedcurate.crypto.packing import FloatVector, unpack
from fedcurate.crypto.presets import PLAIN_PRECISION_BITS
from fedcurate.crypto.updates import EncryptedVector


def sum_encrypted(vectors: Sequence[EncryptedVector], context: CkksContext) -> EncryptedVector:
    """The encrypted element-wise sum of ``vectors`` (server side, public key only).

    Raises
    ------
    CryptoError
        No vectors, or vectors of different lengths or scales.
    KeyMismatchError
        A vector made under another key than ``context``'s.
    """
    _check_compatible(vectors, context)
    chunks = []
    for parts in zip(*(v.ciphertexts for v in vectors), strict=True):
        total = seal.Ciphertext()
        context.evaluator.add_many(list(parts), total)
        chunks.append(total)
    return EncryptedVector(
        context.preset.name,
        vectors[0].length,
        context.fingerprint,
        tuple(chunks),
        summands=sum(v.summands for v in vectors),
    )


def weighted_sum_encrypted(
    vectors: Sequence[EncryptedVector], weights: Sequence[float], context: CkksContext
) -> EncryptedVector:
    """The encrypted ``sum_i weights[i] * vectors[i]`` (server side, public key only).

    Weights are quantized to ``2^-30 max|w|`` (on ``scoring``, to ``2^-41`` when
    ``max|w| < 2^-11``: SEAL's scale bound). Vectors with weight 0 are left out (a
    product with zero would be a transparent ciphertext). The decrypted values must
    stay within ``2^(data_bits - 1) / (scale 2^30 / max|w|) / sqrt(2)``; for the
    ``scoring`` preset that is ``|sum_i w_i v_i| / max|w| < 2.8e3``.

    Raises
    ------
    ParameterMismatchError
        The preset supports sums only.
    CryptoError
        Weights not finite, not one per vector, or all zero; vectors incompatible.
    """
    preset = context.preset
    if not preset.supports_plain_multiply:
        raise ParameterMismatchError(
            f"preset '{preset.name}' supports sums only: owners must apply their weight "
            "before encrypting"
        )
    _check_compatible(vectors, context)
    weight_array = np.asarray(weights, dtype=np.float64)
    if weight_array.shape != (len(vectors),) or not np.all(np.isfinite(weight_array)):
        raise CryptoError(f"need {len(vectors)} finite weights, got {weight_array.shape}")
    if not np.any(weight_array):
        raise CryptoError("all weights are zero")
    weight_scale = _weight_scale(float(np.max(np.abs(weight_array))), vectors[0].scale, context)
    chunks = []
    for parts in zip(*(v.ciphertexts for v in vectors), strict=True):
        terms = []
        for ciphertext, weight in zip(parts, weight_array, strict=True):
            if weight == 0:
                continue
            plain = seal.Plaintext()
            context.encoder.encode(float(weight), weight_scale, plain)
            product = seal.Ciphertext()
            context.evaluator.multiply_plain(ciphertext, plain, product)
            terms.append(product)
        total = seal.Ciphertext()
        context.evaluator.add_many(terms, total)
        chunks.append(total)
    summands = sum(v.summands for v, w in zip(vectors, weight_array, strict=True) if w != 0)
    return EncryptedVector(
        preset.name, vectors[0].length, context.fingerprint, tuple(chunks), summands
    )


def decrypt_vector(
    encrypted: EncryptedVector, context: CkksContext, min_summands: int = 1
) -> FloatVector:
    """Decrypt an (aggregated) vector: the curator's job, with the secret context.

    Parameters
    ----------
    encrypted : EncryptedVector
        Usually a sum from :func:`sum_encrypted` or :func:`weighted_sum_encrypted`.
    context : CkksContext
        The secret context.
    min_summands : int
        Refuse anything that sums fewer owners' vectors (the curator's guard
        against being asked to decrypt an individual update).

    Raises
    ------
    MissingSecretKeyError
        ``context`` is public.
    KeyMismatchError
        Encrypted under another key.
    CryptoError
        Fewer summands than ``min_summands``.
    CapacityError
        The sum visibly overflowed the preset's capacity (owners' values too large).
    """
    decryptor = context.decryptor
    _check_key(encrypted, context)
    if encrypted.summands < min_summands:
        raise CryptoError(
            f"refusing to decrypt a vector of {encrypted.summands} summand(s); "
            f"at least {min_summands} required"
        )
    decode = (
        context.encoder.decode_complex
        if context.preset.packing == "complex"
        else context.encoder.decode_double
    )
    rows: list[npt.NDArray[np.float64 | np.complex128]] = []
    for ciphertext in encrypted.ciphertexts:
        plain = seal.Plaintext()
        decryptor.decrypt(ciphertext, plain)
        rows.append(np.asarray(decode(plain)))
    values = unpack(rows, encrypted.length)
    # Beyond the capacity nothing is guaranteed. A coefficient that wrapped around the
    # modulus shifts the slots by about twice the capacity, so a wrapped sum usually
    # shows such values (not always: a constant vector wraps to another constant).
    capacity = context.preset.capacity_at(encrypted.scale)
    largest = float(np.max(np.abs(values)))
    if largest > capacity:
        raise CapacityError(
            f"decrypted max |value| {largest:.3g} exceeds the capacity {capacity:.3g} that "
            f"preset '{context.preset.name}' guarantees: the sum has likely overflowed"
        )
    return values


def _weight_scale(largest_weight: float, scale: float, context: CkksContext) -> float:
    """Scale giving the largest weight ``PLAIN_PRECISION_BITS`` bits, within SEAL's bound."""
    # SEAL rejects a product scale of as many bits as the modulus; keep one spare bit.
    ceiling = 2.0 ** (context.preset.data_bits - 2) / scale
    return min(2.0**PLAIN_PRECISION_BITS / largest_weight, ceiling)


def _check_compatible(vectors: Sequence[EncryptedVector], context: CkksContext) -> None:
    if not vectors:
        raise CryptoError("nothing to sum: no encrypted vectors")
    for vector in vectors:
        _check_key(vector, context)
    lengths = {v.length for v in vectors}
    if len(lengths) > 1:
        raise CryptoError(f"vectors of different lengths cannot be summed: {sorted(lengths)}")
    scales = {v.scale for v in vectors}
    if len(scales) > 1:
        raise CryptoError(f"vectors at different scales cannot be summed: {sorted(scales)}")


def _check_key(vector: EncryptedVector, context: CkksContext) -> None:
    if vector.key_fingerprint != context.fingerprint:
        raise KeyMismatchError(
            f"vector encrypted under key {vector.key_fingerprint[:16]}, "
            f"this context is key {context.fingerprint[:16]}"
        )
    if vector.preset_name != context.preset.name:
        raise ParameterMismatchError(
            f"vector made with preset '{vector.preset_name}', context is '{context.preset.name}'"
        )
