"""Exceptions of the CKKS layer.

Every message names the problem (which chunk, which field, expected versus found)
and never carries key material or ciphertext bytes.
"""

from __future__ import annotations


class CryptoError(ValueError):
    """Base class: something encrypted, or a key, cannot be used as it is."""


class MissingSecretKeyError(CryptoError):
    """A decryption was asked of a context that holds only the public key."""


class KeyFileError(CryptoError):
    """A key file is missing, unreadable, not a CKKS context, or too widely readable."""


class KeyMismatchError(CryptoError):
    """A payload was made under another key pair than the receiver's."""


class ParameterMismatchError(CryptoError):
    """A payload was made under other CKKS parameters (preset, level or scale)."""


class MalformedPayloadError(CryptoError):
    """A payload is truncated, oversized, corrupted or disagrees with its metadata."""


class CapacityError(CryptoError):
    """Values are too large (or not finite) for the preset to encode without wrapping."""
