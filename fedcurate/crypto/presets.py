"""Named CKKS parameter sets.

A ciphertext at the level where owners encrypt costs ``2 N`` coefficients of
``sum(data primes)`` bits (the last, special prime never travels), so its size
per value is set by the data primes and by how many values one ciphertext holds:
``N / 2`` reals (``real`` packing, as TenSEAL's ``CKKSVector``) or ``N`` reals
(``complex`` packing: two reals per complex slot). Fresh encryption noise grows
with ``N``, so the sum-only preset uses the smallest ``N`` whose 128-bit bound
still leaves room for one precise data prime.

Measured on 100 owners with ``|values| <= 0.1`` (see ``simulations.bench_he``):
the decrypted sum's worst error is about ``1.3 sqrt(owners) N / scale``.

All presets are 128-bit secure (SEAL refuses anything else: the total modulus
stays under ``CoeffModulus.MaxBitCount(N)``) and are used with public-key
encryption only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from fedcurate.config import ConfigError

Packing = Literal["complex", "real"]

#: Bits of relative precision given to a plaintext operand (an aggregation weight or
#: the validation gradient) when it multiplies a ciphertext.
PLAIN_PRECISION_BITS = 30

#: Bits of magnitude a ciphertext-times-plaintext result must still have room for
#: (weighted sums of many owners, long inner products).
PLAIN_PRODUCT_HEADROOM_BITS = 12

AUTO = "auto"


@dataclass(frozen=True)
class CkksPreset:
    """One CKKS parameter set and how vectors are packed into it.

    Attributes
    ----------
    name : str
        Registry name, carried in key files' descriptions and on the wire.
    poly_modulus_degree : int
        Ring degree ``N``.
    coeff_mod_bit_sizes : tuple of int
        Prime sizes: data primes first, the special (key-switching) prime last.
    scale_bits : int
        Owners encode values at scale ``2**scale_bits``.
    packing : {"complex", "real"}
        Two reals per slot, or one.
    purpose : str
        One line for humans.
    """

    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int
    packing: Packing
    purpose: str

    @property
    def data_bits(self) -> int:
        """Bits of the ciphertext modulus at the encryption level (what travels)."""
        return sum(self.coeff_mod_bit_sizes[:-1])

    @property
    def scale(self) -> float:
        """Encoding scale of fresh ciphertexts."""
        return float(2**self.scale_bits)

    @property
    def slots(self) -> int:
        """Complex slots per ciphertext."""
        return self.poly_modulus_degree // 2

    @property
    def values_per_ciphertext(self) -> int:
        """Reals carried by one ciphertext."""
        return self.poly_modulus_degree if self.packing == "complex" else self.slots

    @property
    def value_capacity(self) -> float:
        """Largest ``|value|`` a decrypted result at the encryption scale can hold.

        Sums of owners' vectors must stay under this bound too.
        """
        return self.capacity_at(self.scale)

    def capacity_at(self, scale: float) -> float:
        """Largest ``|value|`` a ciphertext at ``scale`` decrypts without wrapping.

        Every polynomial coefficient must stay below half the modulus; a coefficient
        is bounded by the largest slot modulus, which is ``sqrt(2)`` times the
        largest real when two reals share a complex slot.
        """
        slot_bound = 2.0 ** (self.data_bits - 1) / scale
        return slot_bound / math.sqrt(2.0) if self.packing == "complex" else slot_bound

    @property
    def supports_plain_multiply(self) -> bool:
        """Whether a ciphertext times a plaintext (weights, inner products) still fits."""
        room = self.data_bits - 1 - self.scale_bits - PLAIN_PRECISION_BITS
        return room >= PLAIN_PRODUCT_HEADROOM_BITS

    def ciphertexts_for(self, length: int) -> int:
        """Number of ciphertexts that hold a vector of ``length`` reals."""
        return max(1, math.ceil(length / self.values_per_ciphertext))

    def describe(self) -> dict[str, object]:
        """Parameters as plain data (for key descriptions and benchmark output)."""
        return {
            "preset": self.name,
            "poly_modulus_degree": self.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(self.coeff_mod_bit_sizes),
            "scale_bits": self.scale_bits,
            "packing": self.packing,
            "values_per_ciphertext": self.values_per_ciphertext,
            "supports_plain_multiply": self.supports_plain_multiply,
            "security": "128-bit (SEAL tc128)",
            "purpose": self.purpose,
        }


AGGREGATE = CkksPreset(
    name="aggregate",
    poly_modulus_degree=4096,
    # One 47-bit data prime: scale 2^40 keeps the sum of 100 owners within ~5e-8 and
    # leaves room for aggregate values up to ~45; the 20-bit special prime only has to
    # absorb the public-key encryption noise (it is divided out before sending).
    coeff_mod_bit_sizes=(47, 20),
    scale_bits=40,
    packing="complex",
    purpose="sum only (owners pre-multiply by their weight); smallest bytes per value",
)

SCORING = CkksPreset(
    name="scoring",
    poly_modulus_degree=4096,
    # 89 data bits (the most N=4096 allows beside a 20-bit special prime): one
    # ciphertext x plaintext product at scale 2^(46+30) without rescaling, for
    # encrypted inner products with the validation gradient and plaintext weights.
    # The high scale keeps scores of small updates (1e-4) precise to ~1e-6.
    coeff_mod_bit_sizes=(44, 45, 20),
    scale_bits=46,
    packing="complex",
    purpose="sum, plaintext weights and encrypted inner products (curator scoring)",
)

FLARE = CkksPreset(
    name="flare",
    poly_modulus_degree=8192,
    coeff_mod_bit_sizes=(60, 40, 40),
    scale_bits=40,
    packing="real",
    purpose="NVIDIA FLARE's parameters (reference), used here with public-key encryption",
)

PRESETS: dict[str, CkksPreset] = {p.name: p for p in (AGGREGATE, SCORING, FLARE)}


def get_preset(name: str) -> CkksPreset:
    """The preset called ``name`` (not ``auto``: see :func:`resolve_preset`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"crypto.preset: unknown CKKS preset '{name}' (known: {AUTO}, {', '.join(PRESETS)})"
        ) from None


def resolve_preset(name: str, *, encrypted_scoring: bool) -> CkksPreset:
    """The preset a run should provision keys for.

    Parameters
    ----------
    name : str
        ``crypto.preset``: a preset name or ``auto``.
    encrypted_scoring : bool
        Whether the curator scores owners on their ciphertexts (first-order scores
        under encryption), which needs a ciphertext-times-plaintext product.

    Returns
    -------
    CkksPreset
        For ``auto``: ``scoring`` when encrypted scoring is needed, else
        ``aggregate`` (half the bytes, sum only).

    Raises
    ------
    ConfigError
        Unknown name, or a sum-only preset asked to support encrypted scoring.
    """
    if name == AUTO:
        return SCORING if encrypted_scoring else AGGREGATE
    preset = get_preset(name)
    if encrypted_scoring and not preset.supports_plain_multiply:
        capable = [p.name for p in PRESETS.values() if p.supports_plain_multiply]
        raise ConfigError(
            f"crypto.preset={name} supports sums only; encrypted scoring needs one of {capable}"
        )
    return preset


def preset_for_parameters(poly_modulus_degree: int, bit_sizes: tuple[int, ...]) -> CkksPreset:
    """The registered preset with exactly these ring degree and prime sizes.

    Raises
    ------
    KeyError
        No preset has these parameters.
    """
    for preset in PRESETS.values():
        if (preset.poly_modulus_degree, preset.coeff_mod_bit_sizes) == (
            poly_modulus_degree,
            bit_sizes,
        ):
            return preset
    raise KeyError(f"N={poly_modulus_degree}, coeff_mod_bit_sizes={list(bit_sizes)}")
