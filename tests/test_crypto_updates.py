"""Encrypted updates: round trip, error bound, and validation of every reply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pytest
from flwr.app import ConfigRecord, ConfigRecordValues

from fedcurate.crypto import (
    AGGREGATE,
    FLARE,
    PRESETS,
    SCORING,
    CapacityError,
    CkksContext,
    CryptoError,
    KeyMismatchError,
    MalformedPayloadError,
    ParameterMismatchError,
    create_context,
    decrypt_vector,
    encrypt_vector,
    from_wire,
    sum_encrypted,
    to_wire,
    weighted_sum_encrypted,
)
from fedcurate.crypto.updates import (
    CHUNKS_KEY,
    DIGEST_KEY,
    LENGTH_KEY,
    NUM_CHUNKS_KEY,
    SCALE_KEY,
    WireValue,
    wire_digest,
)

RNG = np.random.default_rng(7)

Keys = dict[str, tuple[CkksContext, CkksContext]]


@pytest.fixture(scope="module")
def keys() -> Keys:
    """(secret, public) context per preset."""
    pairs = {}
    for name, preset in PRESETS.items():
        secret = create_context(preset)
        pairs[name] = (secret, secret.public())
    return pairs


def _record(wire: dict[str, WireValue]) -> ConfigRecord:
    """``wire`` as a Flower ``ConfigRecord`` (every wire value is a config value)."""
    return ConfigRecord(cast(dict[str, ConfigRecordValues], wire))


def _chunks(wire: Mapping[str, object]) -> list[bytes]:
    """The ciphertext chunks of a wire mapping."""
    chunks = wire[CHUNKS_KEY]
    assert isinstance(chunks, list)
    return chunks


def _owners(count: int, length: int) -> np.ndarray:
    return RNG.uniform(-0.1, 0.1, size=(count, length))


@pytest.mark.parametrize("name", list(PRESETS))
def test_round_trip_encrypt_wire_sum_decrypt(keys: Keys, name: str) -> None:
    secret, public = keys[name]
    updates = _owners(3, 2 * public.preset.values_per_ciphertext + 17)
    # Owners encrypt with the public key; the server parses their ConfigRecords.
    records = [_record(to_wire(encrypt_vector(u, public))) for u in updates]
    received = [from_wire(record, public) for record in records]
    aggregate = sum_encrypted(received, public)
    assert aggregate.summands == 3
    # The curator receives the aggregate on the wire and decrypts it.
    at_curator = from_wire(_record(to_wire(aggregate)), secret, fresh=False)
    total = decrypt_vector(at_curator, secret, min_summands=2)
    assert total.shape == (updates.shape[1],)
    assert np.max(np.abs(total - updates.sum(axis=0))) < 1e-7


def test_sum_of_100_owners_within_one_millionth(keys: Keys) -> None:
    secret, public = keys["aggregate"]
    updates = _owners(100, AGGREGATE.values_per_ciphertext)
    updates[0, :5] = [0.1, -0.1, 0.1, -0.1, 0.1]  # the stated extremes
    aggregate = sum_encrypted([encrypt_vector(u, public) for u in updates], public)
    error = np.max(np.abs(decrypt_vector(aggregate, secret) - updates.sum(axis=0)))
    assert error <= 1e-6


def test_weighted_sum_needs_the_scoring_preset(keys: Keys) -> None:
    secret, public = keys["scoring"]
    updates = _owners(4, 1000)
    weights = [0.5, 0.0, 2.0, 1e-3]
    encrypted = [encrypt_vector(u, public) for u in updates]
    weighted = weighted_sum_encrypted(encrypted, weights, public)
    assert weighted.summands == 3  # the zero weight is left out
    result = decrypt_vector(from_wire(to_wire(weighted), secret, fresh=False), secret)
    np.testing.assert_allclose(result, np.asarray(weights) @ updates, atol=1e-8)
    with pytest.raises(CryptoError, match="all weights are zero"):
        weighted_sum_encrypted(encrypted, [0, 0, 0, 0], public)
    _, aggregate_public = keys["aggregate"]
    sum_only = [encrypt_vector(u, aggregate_public) for u in updates]
    with pytest.raises(ParameterMismatchError, match="supports sums only"):
        weighted_sum_encrypted(sum_only, weights, aggregate_public)


def test_bad_replies_are_rejected_and_the_others_still_sum(keys: Keys) -> None:
    secret, public = keys["aggregate"]
    stranger = create_context(AGGREGATE).public()
    updates = _owners(4, 9000)
    good = [to_wire(encrypt_vector(u, public)) for u in updates[:3]]
    truncated = dict(good[2], **{CHUNKS_KEY: [*_chunks(good[2])[:-1], _chunks(good[2])[-1][:-9]]})
    replies: list[dict[str, Any]] = [
        good[0],
        to_wire(encrypt_vector(updates[3], stranger)),  # another key pair
        good[1],
        truncated,
        good[2],
    ]
    accepted, reasons = [], []
    for reply in replies:
        try:
            accepted.append(from_wire(reply, public))
        except CryptoError as error:
            reasons.append(error)
    assert [type(r) for r in reasons] == [KeyMismatchError, MalformedPayloadError]
    assert "truncated" in str(reasons[1])
    assert "chunk 2" in str(reasons[1])
    total = decrypt_vector(sum_encrypted(accepted, public), secret)
    assert np.max(np.abs(total - updates[:3].sum(axis=0))) < 1e-7


def _tampered(wire: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``wire`` with ``changes``, re-digested as a buggy (not a corrupted) sender would."""
    altered = {**wire, **changes}
    return {**altered, DIGEST_KEY: wire_digest(altered)}


def test_every_kind_of_malformed_payload_names_its_problem(keys: Keys) -> None:
    _, public = keys["aggregate"]
    wire = to_wire(encrypt_vector(_owners(1, 9000)[0], public))
    chunks = _chunks(wire)
    zeroed = bytearray(chunks[1])
    zeroed[len(zeroed) // 2 :] = bytes(len(zeroed) - len(zeroed) // 2)
    cases = [
        (_tampered(wire, **{CHUNKS_KEY: chunks[:2]}), MalformedPayloadError, "2 chunks received"),
        (_tampered(wire, **{NUM_CHUNKS_KEY: 2}), MalformedPayloadError, "needs 3 chunks"),
        (_tampered(wire, **{LENGTH_KEY: 100_000}), MalformedPayloadError, "needs 25 chunks"),
        (
            _tampered(wire, **{CHUNKS_KEY: [chunks[0] + b"xx", *chunks[1:]]}),
            MalformedPayloadError,
            "chunk 0: has trailing bytes",
        ),
        (
            _tampered(wire, **{CHUNKS_KEY: [chunks[0], bytes(zeroed), chunks[2]]}),
            MalformedPayloadError,
            "chunk 1: corrupted",
        ),
        (
            _tampered(wire, **{CHUNKS_KEY: [b"\x00" * 300_000, *chunks[1:]]}),
            MalformedPayloadError,
            "over the",
        ),
        (
            _tampered(wire, **{CHUNKS_KEY: [b"short", *chunks[1:]]}),
            MalformedPayloadError,
            "truncated before its header",
        ),
        (
            _tampered(wire, **{SCALE_KEY: 2.0**30}),
            ParameterMismatchError,
            "fresh encryption at scale",
        ),
        (_tampered(wire, **{"ckks-summands": 5}), MalformedPayloadError, "1 summand"),
        (_tampered(wire, **{"ckks-preset": "flare"}), ParameterMismatchError, "preset 'flare'"),
        (_tampered(wire, **{LENGTH_KEY: "9000"}), MalformedPayloadError, "is str, expected int"),
        ({**wire, SCALE_KEY: 2.0**41}, ParameterMismatchError, "fresh encryption at scale"),
        ({**wire, "ckks-summands": 2}, MalformedPayloadError, "1 summand"),
        ({k: v for k, v in wire.items() if k != SCALE_KEY}, MalformedPayloadError, "missing field"),
    ]
    for payload, error, message in cases:
        with pytest.raises(error, match=message):
            from_wire(payload, public)


def test_flipped_bits_in_transit_are_caught_by_the_digest(keys: Keys) -> None:
    _, public = keys["aggregate"]
    wire = to_wire(encrypt_vector(_owners(1, 5000)[0], public))
    for position in (40, 1000, 20_000, 40_000):
        chunk = bytearray(_chunks(wire)[1])
        chunk[position] ^= 0x10
        corrupted = {**wire, CHUNKS_KEY: [_chunks(wire)[0], bytes(chunk)]}
        with pytest.raises(MalformedPayloadError, match="digest mismatch"):
            from_wire(corrupted, public)
    relabelled = {**wire, LENGTH_KEY: 4097}  # same chunk count, altered metadata
    with pytest.raises(MalformedPayloadError, match="digest mismatch"):
        from_wire(relabelled, public)


def test_payload_from_other_parameters_is_rejected_even_if_metadata_lies(keys: Keys) -> None:
    _, public = keys["aggregate"]
    _, scoring_public = keys["scoring"]
    honest = to_wire(encrypt_vector(_owners(1, 100)[0], public))
    foreign = to_wire(encrypt_vector(_owners(1, 100)[0], scoring_public))
    lying = _tampered(honest, **{CHUNKS_KEY: _chunks(foreign)})
    with pytest.raises(MalformedPayloadError, match="chunk 0"):
        from_wire(lying, public)


def test_values_beyond_capacity_or_not_finite_are_refused(keys: Keys) -> None:
    _, public = keys["aggregate"]
    with pytest.raises(CapacityError, match="exceeds"):
        encrypt_vector([0.0, AGGREGATE.value_capacity * 2], public)
    with pytest.raises(CapacityError, match="NaN"):
        encrypt_vector([0.0, float("nan")], public)
    with pytest.raises(CapacityError, match="flat vector"):
        encrypt_vector(np.zeros((2, 2)), public)


def test_an_overflowing_sum_is_reported_not_returned(keys: Keys) -> None:
    secret, public = keys["aggregate"]
    near_capacity = np.full(50, 0.9 * AGGREGATE.value_capacity)
    encrypted = [encrypt_vector(near_capacity, public) for _ in range(3)]
    with pytest.raises(CapacityError, match="likely overflowed"):
        decrypt_vector(sum_encrypted(encrypted, public), secret)


def test_curator_refuses_too_few_summands_and_foreign_keys(keys: Keys) -> None:
    secret, public = keys["aggregate"]
    other_secret, _ = keys["scoring"]
    single = encrypt_vector(_owners(1, 10)[0], public)
    with pytest.raises(CryptoError, match="1 summand"):
        decrypt_vector(single, secret, min_summands=2)
    with pytest.raises(KeyMismatchError):
        decrypt_vector(single, other_secret)
    stranger = create_context(AGGREGATE)
    with pytest.raises(KeyMismatchError):
        sum_encrypted([single, encrypt_vector(_owners(1, 10)[0], stranger)], public)


def test_flare_and_scoring_presets_pack_as_declared() -> None:
    assert FLARE.packing == "real"
    assert FLARE.values_per_ciphertext == 4096
    assert SCORING.packing == "complex"
    assert SCORING.values_per_ciphertext == 4096
    assert AGGREGATE.values_per_ciphertext == 4096
