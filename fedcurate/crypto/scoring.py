"""Encrypted inner products ``<update_i, g>`` for the curator's first-order scores.

The server multiplies owner ``i``'s ciphertexts chunk by chunk with the plaintext
``g`` (packed conjugated, see :mod:`fedcurate.crypto.packing`) and adds the
products. For a CKKS plaintext ``m`` the real parts of its ``N / 2`` slots sum to
``N m_0 / (2 scale)``, ``m_0`` being the constant coefficient (the roots of
unity are orthogonal), so that coefficient of the summed product *is* the inner
product, and the NTT values of a polynomial sum to ``N m_0`` modulo each prime.

The server then keeps only the sum of the product's first polynomial ``c0``: it
subtracts the plaintext ``c0 - v`` (``v``, per prime, the mean of ``c0``'s NTT
values), a polynomial with zero constant coefficient, which leaves ``c0 = v``
everywhere. The decryption ``c0 + c1 s`` keeps its NTT sum, hence the inner
product, which the curator reads exactly from the residues; its every other
coefficient is now ``c1 s``'s, and ``c1`` depends only on the owner's encryption
randomness and ``g``, not on the update: every individual slot product stays
hidden, as a uniform mask on ``c0`` would hide it. A constant polynomial
compresses to nothing in SEAL's serialization, so the payload is half a
ciphertext (the curator's traffic is mostly these payloads, two per owner and
round).

No Galois keys, no rotation and no rescaling: the product keeps the exact scale
``scale * scale_g``, so there is no rescale-scale bias. The product modulus has to
hold ``scale * scale_g`` times the inner product, which is why scoring needs the
two data primes of the ``scoring`` preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal.sealapi as seal

from fedcurate.crypto import sealio
from fedcurate.crypto.context import CkksContext
from fedcurate.crypto.errors import (
    CapacityError,
    KeyMismatchError,
    MalformedPayloadError,
    ParameterMismatchError,
)
from fedcurate.crypto.packing import as_flat_vector, pack_conjugate
from fedcurate.crypto.presets import PLAIN_PRECISION_BITS
from fedcurate.crypto.updates import EncryptedVector, check_ciphertext

#: Encoding scale of ``g / unit``: its largest entry keeps PLAIN_PRECISION_BITS bits.
_OPERAND_SCALE = float(2**PLAIN_PRECISION_BITS)


@dataclass(frozen=True, repr=False)
class PlainOperand:
    """A plaintext vector encoded once (per round) for inner products with ciphertexts.

    Attributes
    ----------
    preset_name : str
        Preset it was encoded for.
    length : int
        Number of reals.
    plaintexts : tuple
        SEAL plaintexts of ``conj(g / unit)``, one per chunk.
    unit : float
        Power of two at least ``max |g|``, divided out before encoding so that ``g``
        keeps ``PLAIN_PRECISION_BITS`` bits whatever its magnitude.
    """

    preset_name: str
    length: int
    plaintexts: tuple[Any, ...]
    unit: float

    def __repr__(self) -> str:
        return (
            f"PlainOperand(preset={self.preset_name!r}, length={self.length}, "
            f"unit=2^{math.log2(self.unit):.0f})"
        )


def prepare_inner_product(vector: npt.ArrayLike, context: CkksContext) -> PlainOperand:
    """Encode ``g`` (e.g. the validation-loss gradient) for :func:`masked_inner_product`.

    ``g / unit`` (``unit`` a power of two, so the division is exact) is encoded at
    scale ``2^30``: ``g`` keeps 30 bits whatever its magnitude. The inner product
    then decodes exactly when ``sum |update_k|`` stays below
    ``N 2^(data_bits - 3) / (scale 2^30)`` (about 4e6 for ``scoring``).

    Raises
    ------
    ParameterMismatchError
        The preset supports sums only.
    CapacityError
        ``g`` is not a finite flat vector, or is all zero.
    """
    preset = context.preset
    if not preset.supports_plain_multiply:
        raise ParameterMismatchError(
            f"preset '{preset.name}' supports sums only; encrypted scoring needs 'scoring'"
        )
    values = as_flat_vector(vector)
    largest = float(np.max(np.abs(values)))
    if largest == 0:
        raise CapacityError("the plaintext vector is all zero")
    unit = 2.0 ** math.ceil(math.log2(largest))
    plaintexts = []
    for row in pack_conjugate(values / unit, preset):
        plain = seal.Plaintext()
        context.encoder.encode(row.tolist(), _OPERAND_SCALE, plain)
        plaintexts.append(plain)
    return PlainOperand(preset.name, values.size, tuple(plaintexts), unit)


def masked_inner_product(
    encrypted: EncryptedVector, operand: PlainOperand, context: CkksContext
) -> bytes:
    """The server's masked ciphertext of ``<vector, g>`` (public key only).

    Returns
    -------
    bytes
        One serialized ciphertext whose decryption reveals the inner product and
        nothing else; send it to the curator for :func:`decrypt_inner_product`.

    Raises
    ------
    KeyMismatchError
        ``encrypted`` was made under another key.
    ParameterMismatchError
        Preset or length of ``encrypted`` and ``operand`` differ.
    """
    if encrypted.key_fingerprint != context.fingerprint:
        raise KeyMismatchError(
            f"vector encrypted under key {encrypted.key_fingerprint[:16]}, "
            f"this context is key {context.fingerprint[:16]}"
        )
    if (encrypted.preset_name, encrypted.length) != (operand.preset_name, operand.length):
        raise ParameterMismatchError(
            f"vector ({encrypted.preset_name}, length {encrypted.length}) and plaintext "
            f"({operand.preset_name}, length {operand.length}) do not match"
        )
    evaluator = context.evaluator
    total = seal.Ciphertext()
    for index, (ciphertext, plain) in enumerate(
        zip(encrypted.ciphertexts, operand.plaintexts, strict=True)
    ):
        if index == 0:
            evaluator.multiply_plain(ciphertext, plain, total)
            continue
        product = seal.Ciphertext()
        evaluator.multiply_plain(ciphertext, plain, product)
        evaluator.add_inplace(total, product)
    evaluator.sub_plain_inplace(total, _all_but_the_sum(total, context))
    # The scale is only the factor the curator divides by: relabelling it by the
    # exact power of two ``unit`` makes the decryption read <vector, g> itself.
    total.scale = total.scale / operand.unit
    [payload] = sealio.save_objects([total])
    return payload


def decrypt_inner_product(payload: bytes, context: CkksContext) -> float:
    """The inner product held by a masked ciphertext (the curator, secret context).

    Raises
    ------
    MissingSecretKeyError
        ``context`` is public.
    MalformedPayloadError
        Not one valid ciphertext at the encryption level.
    CapacityError
        The decrypted value is outside the range that decodes unambiguously (an
        update far larger than the preset allows).
    """
    decryptor = context.decryptor
    [ciphertext] = sealio.load_ciphertexts(
        [payload], context.seal_context, context.max_ciphertext_bytes, what="masked score"
    )
    scale = float(ciphertext.scale)
    if not math.isfinite(scale) or scale <= 0:
        raise MalformedPayloadError(f"masked score: scale {scale!r} is not a positive scale")
    check_ciphertext(ciphertext, context, "masked score", scale)
    plain = seal.Plaintext()
    decryptor.decrypt(ciphertext, plain)
    constant = _constant_coefficient(sealio.residues(plain), context)
    return context.preset.poly_modulus_degree * constant / (2.0 * scale)


def _all_but_the_sum(total: Any, context: CkksContext) -> Any:
    """The plaintext ``c0 - v`` that leaves ``total``'s first polynomial constant.

    ``v`` is, per prime, the mean of ``c0``'s NTT values, so ``c0 - v`` has NTT
    values summing to zero: a zero constant coefficient (see the module doc).
    """
    degree = context.preset.poly_modulus_degree
    primes = context.data_primes
    first = sealio.residues(total, degree * len(primes)).reshape(len(primes), degree)
    rows = np.empty_like(first)
    for row, prime in enumerate(primes):
        level = np.uint64(_exact_sum(first[row]) * pow(degree, -1, prime) % prime)
        # (c0 - v) mod prime without leaving uint64: every value is below the prime.
        below = first[row] < level
        rows[row] = first[row] - level
        rows[row][below] += np.uint64(prime)
    return sealio.ntt_plaintext(rows, total.parms_id(), total.scale, context.seal_context)


def _exact_sum(values: npt.NDArray[np.uint64]) -> int:
    """Sum of 64-bit values without overflow (32-bit halves summed separately)."""
    high = int(np.sum(values >> np.uint64(32), dtype=np.uint64))
    low = int(np.sum(values & np.uint64(0xFFFFFFFF), dtype=np.uint64))
    return (high << 32) + low


def _constant_coefficient(flat_residues: npt.NDArray[np.uint64], context: CkksContext) -> int:
    """The centred constant coefficient of a plaintext from its NTT residues (CRT)."""
    degree = context.preset.poly_modulus_degree
    primes = context.data_primes
    if flat_residues.size != degree * len(primes):
        raise MalformedPayloadError(
            f"decrypted plaintext has {flat_residues.size} residues, expected "
            f"{degree * len(primes)}"
        )
    modulus = math.prod(primes)
    value = 0
    for row, prime in zip(flat_residues.reshape(len(primes), degree), primes, strict=True):
        residue = _exact_sum(row) * pow(degree, -1, prime) % prime
        cofactor = modulus // prime
        value += residue * cofactor * pow(cofactor, -1, prime)
    value %= modulus
    centred = value - modulus if value > modulus // 2 else value
    if abs(centred) > modulus // 4:
        raise CapacityError(
            "the inner product is outside the range this preset decodes unambiguously"
        )
    return centred
