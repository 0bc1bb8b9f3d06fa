"""CKKS encryption of model updates (TenSEAL / SEAL), key provisioning and scoring.

Who calls what (see DESIGN.md, roles):

- data owner (public context): :func:`encrypt_vector` then :func:`to_wire`;
- server (public context): :func:`from_wire` on every reply, :func:`sum_encrypted`
  or :func:`weighted_sum_encrypted`, :func:`prepare_inner_product` and
  :func:`masked_inner_product` for scoring, :func:`to_wire` for the aggregate;
- curator (secret context): :func:`from_wire` with ``fresh=False`` and
  :func:`decrypt_vector` for aggregates, :func:`decrypt_inner_product` for scores;
- provisioning: :func:`keys_init`, :func:`keys_info`, :func:`load_key_file`.

Encryption is public-key only: owners never hold the secret key.
"""

from fedcurate.crypto.aggregate import decrypt_vector, sum_encrypted, weighted_sum_encrypted
from fedcurate.crypto.context import CkksContext, create_context, load_context
from fedcurate.crypto.errors import (
    CapacityError,
    CryptoError,
    KeyFileError,
    KeyMismatchError,
    MalformedPayloadError,
    MissingSecretKeyError,
    ParameterMismatchError,
)
from fedcurate.crypto.keyfiles import (
    PUBLIC_KEY_FILE,
    SECRET_KEY_FILE,
    KeyFiles,
    describe_key_file,
    keys_info,
    keys_init,
    load_key_file,
    write_key_files,
)
from fedcurate.crypto.presets import (
    AGGREGATE,
    FLARE,
    PRESETS,
    SCORING,
    CkksPreset,
    get_preset,
    resolve_preset,
)
from fedcurate.crypto.scoring import (
    PlainOperand,
    decrypt_inner_product,
    masked_inner_product,
    prepare_inner_product,
)
from fedcurate.crypto.updates import EncryptedVector, encrypt_vector, from_wire, to_wire, wire_size

__all__ = [
    "AGGREGATE",
    "FLARE",
    "PRESETS",
    "PUBLIC_KEY_FILE",
    "SCORING",
    "SECRET_KEY_FILE",
    "CapacityError",
    "CkksContext",
    "CkksPreset",
    "CryptoError",
    "EncryptedVector",
    "KeyFileError",
    "KeyFiles",
    "KeyMismatchError",
    "MalformedPayloadError",
    "MissingSecretKeyError",
    "ParameterMismatchError",
    "PlainOperand",
    "create_context",
    "decrypt_inner_product",
    "decrypt_vector",
    "describe_key_file",
    "encrypt_vector",
    "from_wire",
    "get_preset",
    "keys_info",
    "keys_init",
    "load_context",
    "load_key_file",
    "masked_inner_product",
    "prepare_inner_product",
    "resolve_preset",
    "sum_encrypted",
    "to_wire",
    "weighted_sum_encrypted",
    "wire_size",
    "write_key_files",
]
