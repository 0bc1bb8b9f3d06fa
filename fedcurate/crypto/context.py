"""CKKS contexts: create, derive the public half, load, fingerprint.

A :class:`CkksContext` wraps a TenSEAL context (which owns the keys and their
serialization) and the SEAL objects every operation needs. Data owners and the
server hold a public context (public key only, no Galois or relinearization
keys: nothing here rotates or multiplies two ciphertexts); the curator alone
holds the secret one.

The key fingerprint is a SHA-256 over the ring degree, the primes and the public
key's coefficients, independent of how the key was serialized: the same key pair
gives the same fingerprint on every party, so a reply made under another key is
recognised before it is summed.
"""

from __future__ import annotations

import hashlib
import struct
from functools import cached_property
from typing import Any

import tenseal as ts
import tenseal.sealapi as seal

from fedcurate.crypto import sealio
from fedcurate.crypto.errors import KeyFileError, MissingSecretKeyError
from fedcurate.crypto.presets import CkksPreset, preset_for_parameters

_FINGERPRINT_DOMAIN = b"fedcurate/ckks-public-key/v1\0"


class CkksContext:
    """The keys and SEAL machinery of one CKKS preset.

    Build with :func:`create_context` (new key pair, secret) or
    :func:`load_context` (from bytes, public or secret). The representation
    never shows key material.
    """

    def __init__(self, tenseal_context: Any, preset: CkksPreset) -> None:
        self._tenseal = tenseal_context
        self.preset = preset
        self.seal_context = tenseal_context.seal_context().data
        self.encoder = seal.CKKSEncoder(self.seal_context)
        self.evaluator = seal.Evaluator(self.seal_context)
        self.encryptor = seal.Encryptor(self.seal_context, tenseal_context.public_key().data)
        self.first_parms_id = tuple(self.seal_context.first_parms_id())
        first_parms = self.seal_context.first_context_data().parms()
        self.data_primes: tuple[int, ...] = tuple(m.value() for m in first_parms.coeff_modulus())
        self.max_ciphertext_bytes = sealio.max_ciphertext_bytes(
            preset.poly_modulus_degree, len(self.data_primes)
        )

    @property
    def is_secret(self) -> bool:
        """Whether this context holds the secret key (can decrypt)."""
        return bool(self._tenseal.has_secret_key())

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the parameters and public key."""
        key_parms = self.seal_context.key_context_data().parms()
        digest = hashlib.sha256(_FINGERPRINT_DOMAIN)
        digest.update(struct.pack("<Q", key_parms.poly_modulus_degree()))
        for modulus in key_parms.coeff_modulus():
            digest.update(struct.pack("<Q", modulus.value()))
        # TenSEAL's own binding of the key cannot expose its coefficients: reload it
        # through sealapi, whose binding can.
        [blob] = sealio.save_objects([self._tenseal.public_key().data])
        public_key = sealio.load_public_key(blob, self.seal_context)
        digest.update(sealio.residues(public_key.data()).astype("<u8").tobytes())
        return digest.hexdigest()

    @cached_property
    def decryptor(self) -> Any:
        """SEAL decryptor (secret contexts only).

        Raises
        ------
        MissingSecretKeyError
            This is a public context.
        """
        if not self.is_secret:
            raise MissingSecretKeyError(
                "this CKKS context holds only the public key: only the curator can decrypt"
            )
        return seal.Decryptor(self.seal_context, self._tenseal.secret_key().data)

    def public_bytes(self) -> bytes:
        """The public context: parameters and public key, no secret, Galois or relin keys."""
        return bytes(
            self._tenseal.serialize(
                save_public_key=True,
                save_secret_key=False,
                save_galois_keys=False,
                save_relin_keys=False,
            )
        )

    def secret_bytes(self) -> bytes:
        """The secret context: parameters, public and secret keys (write with mode 0600).

        Raises
        ------
        MissingSecretKeyError
            This is a public context.
        """
        if not self.is_secret:
            raise MissingSecretKeyError("a public CKKS context has no secret part to serialize")
        return bytes(
            self._tenseal.serialize(
                save_public_key=True,
                save_secret_key=True,
                save_galois_keys=False,
                save_relin_keys=False,
            )
        )

    def public(self) -> CkksContext:
        """A public-only copy of this context (what owners and the server hold)."""
        return load_context(self.public_bytes())

    def __repr__(self) -> str:
        kind = "secret" if self.is_secret else "public"
        return f"CkksContext(preset={self.preset.name!r}, {kind}, key={self.fingerprint[:16]})"


def create_context(preset: CkksPreset) -> CkksContext:
    """A fresh key pair for ``preset`` (secret context; derive the public one from it).

    TenSEAL refuses parameters beyond the 128-bit security bound, so every preset
    that loads here is 128-bit secure.
    """
    context = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=preset.poly_modulus_degree,
        coeff_mod_bit_sizes=list(preset.coeff_mod_bit_sizes),
        encryption_type=ts.ENCRYPTION_TYPE.ASYMMETRIC,
    )
    context.global_scale = preset.scale
    return CkksContext(context, preset)


def load_context(data: bytes) -> CkksContext:
    """A public or secret context from :meth:`CkksContext.public_bytes` / ``secret_bytes``.

    Raises
    ------
    KeyFileError
        Not a TenSEAL context, not CKKS, without a public key, or with parameters
        that match no preset.
    """
    try:
        context = ts.context_from(data)
    except (ValueError, RuntimeError, TypeError) as error:
        raise KeyFileError(f"not a TenSEAL context ({error})") from None
    key_parms = context.seal_context().data.key_context_data().parms()
    # Compared by name: TenSEAL's and sealapi's bindings each have their own enum.
    if key_parms.scheme().name != seal.SCHEME_TYPE.CKKS.name:
        raise KeyFileError("the context is not a CKKS context")
    if not context.has_public_key():
        raise KeyFileError("the context has no public key (symmetric contexts are not supported)")
    degree = key_parms.poly_modulus_degree()
    bit_sizes = tuple(m.bit_count() for m in key_parms.coeff_modulus())
    try:
        preset = preset_for_parameters(degree, bit_sizes)
    except KeyError as error:
        raise KeyFileError(f"no CKKS preset has the context's parameters ({error})") from None
    context.global_scale = preset.scale
    return CkksContext(context, preset)
