"""Encrypted inner products: exact to 1e-5 relative, and only the scalar is revealed."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal.sealapi as seal

from fedcurate.crypto import (
    AGGREGATE,
    FLARE,
    SCORING,
    CapacityError,
    CkksContext,
    KeyMismatchError,
    MalformedPayloadError,
    ParameterMismatchError,
    create_context,
    decrypt_inner_product,
    encrypt_vector,
    from_wire,
    masked_inner_product,
    prepare_inner_product,
    to_wire,
)
from fedcurate.crypto.sealio import load_ciphertexts, residues, save_objects

RNG = np.random.default_rng(11)

Keys = tuple[CkksContext, CkksContext]


@pytest.fixture(scope="module")
def scoring_keys() -> Keys:
    secret = create_context(SCORING)
    return secret, secret.public()


def _score(
    secret: CkksContext, public: CkksContext, update: np.ndarray, gradient: np.ndarray
) -> float:
    """Owner encrypts, server masks the product, curator decrypts the scalar."""
    received = from_wire(to_wire(encrypt_vector(update, public)), public)
    payload = masked_inner_product(received, prepare_inner_product(gradient, public), public)
    return decrypt_inner_product(payload, secret)


SCALES = [(1e-1, 1.0), (1e-3, 1e-2), (1e-4, 1e-9), (1e-2, 1e3)]


@pytest.mark.parametrize(("update_scale", "gradient_scale"), SCALES)
def test_inner_product_matches_plaintext(
    scoring_keys: Keys, update_scale: float, gradient_scale: float
) -> None:
    secret, public = scoring_keys
    rng = np.random.default_rng(3)
    length = 3 * SCORING.values_per_ciphertext - 5
    gradient = rng.normal(0, gradient_scale, length)
    descent = -gradient / np.abs(gradient).max()
    # Updates share some of the gradient's direction, as trained updates do
    # (|cosine| from about 0.03 to 0.5), with the rest random.
    for share in (0.05, 0.5, -0.3):
        update = update_scale * (share * descent + (1 - abs(share)) * rng.uniform(-1, 1, length))
        expected = float(update @ gradient)
        assert _score(secret, public, update, gradient) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("update_scale", "gradient_scale"), SCALES)
def test_inner_product_error_is_tiny_against_the_norms(
    scoring_keys: Keys, update_scale: float, gradient_scale: float
) -> None:
    # Independent random vectors: the inner product itself may be near zero, so the
    # error is bounded against |update| |g| (it is about 1e-9 of it).
    secret, public = scoring_keys
    rng = np.random.default_rng(4)
    length = 2 * SCORING.values_per_ciphertext
    gradient = rng.normal(0, gradient_scale, length)
    for _ in range(3):
        update = rng.uniform(-update_scale, update_scale, length)
        error = abs(_score(secret, public, update, gradient) - float(update @ gradient))
        assert error <= 1e-7 * np.linalg.norm(update) * np.linalg.norm(gradient)


def test_correlated_and_sign_flipped_updates(scoring_keys: Keys) -> None:
    secret, public = scoring_keys
    gradient = RNG.normal(0, 1e-2, 20_000)
    operand = prepare_inner_product(gradient, public)
    for update in (-0.05 * gradient / np.abs(gradient).max(), 0.01 * np.sign(gradient)):
        encrypted = encrypt_vector(update, public)
        score = decrypt_inner_product(masked_inner_product(encrypted, operand, public), secret)
        assert score == pytest.approx(float(update @ gradient), rel=1e-5)


def test_the_curator_sees_random_slots_but_the_exact_sum(scoring_keys: Keys) -> None:
    secret, public = scoring_keys
    length = SCORING.values_per_ciphertext
    update, gradient = RNG.uniform(-0.1, 0.1, length), RNG.normal(0, 1.0, length)
    operand = prepare_inner_product(gradient, public)
    payload = masked_inner_product(encrypt_vector(update, public), operand, public)
    # What the curator could decode slot by slot, instead of reading the constant term.
    [ciphertext] = load_ciphertexts([payload], secret.seal_context, secret.max_ciphertext_bytes)
    plain = seal.Plaintext()
    secret.decryptor.decrypt(ciphertext, plain)
    slots = np.asarray(secret.encoder.decode_complex(plain))
    products = (update[0::2] + 1j * update[1::2]) * np.conj(gradient[0::2] + 1j * gradient[1::2])
    assert np.median(np.abs(slots)) > 1e6 * np.median(np.abs(products))  # masked
    bound = 1e-7 * np.linalg.norm(update) * np.linalg.norm(gradient)
    assert decrypt_inner_product(payload, secret) == pytest.approx(
        update @ gradient, abs=float(bound)
    )
    again = masked_inner_product(encrypt_vector(update, public), operand, public)
    assert again != payload  # fresh mask (and encryption) every time


def test_the_curator_gets_only_the_sum_of_the_first_polynomial(scoring_keys: Keys) -> None:
    """Half a ciphertext crosses the wire: the first polynomial is one value per prime."""
    secret, public = scoring_keys
    length = SCORING.values_per_ciphertext
    encrypted = encrypt_vector(RNG.uniform(-0.1, 0.1, length), public)
    operand = prepare_inner_product(RNG.normal(0, 1.0, length), public)
    payload = masked_inner_product(encrypted, operand, public)
    [ciphertext] = load_ciphertexts([payload], secret.seal_context, secret.max_ciphertext_bytes)
    degree, primes = SCORING.poly_modulus_degree, len(secret.data_primes)
    first, second = residues(ciphertext).reshape(2, primes, degree)
    assert all(np.unique(row).size == 1 for row in first)
    assert all(np.unique(row).size > degree // 2 for row in second)
    [chunk] = save_objects(encrypted.ciphertexts)
    assert len(payload) < 0.55 * len(chunk)


def test_scoring_needs_the_secret_key_and_a_matching_vector(scoring_keys: Keys) -> None:
    secret, public = scoring_keys
    operand = prepare_inner_product(RNG.normal(size=100), public)
    encrypted = encrypt_vector(RNG.uniform(-0.1, 0.1, 100), public)
    with pytest.raises(ParameterMismatchError, match="do not match"):
        masked_inner_product(encrypt_vector(np.ones(101) * 0.01, public), operand, public)
    stranger = create_context(SCORING)
    with pytest.raises(KeyMismatchError):
        masked_inner_product(encrypt_vector(np.ones(100) * 0.01, stranger), operand, public)
    with pytest.raises(MalformedPayloadError, match="masked score"):
        decrypt_inner_product(b"\x00" * 64, secret)
    with pytest.raises(CapacityError, match="all zero"):
        prepare_inner_product(np.zeros(10), public)
    payload = masked_inner_product(encrypted, operand, public)
    with pytest.raises(MalformedPayloadError, match="truncated"):
        decrypt_inner_product(payload[:-1], secret)


def test_sum_only_preset_cannot_score_but_flare_can() -> None:
    with pytest.raises(ParameterMismatchError, match="sums only"):
        prepare_inner_product(np.ones(4), create_context(AGGREGATE))
    secret = create_context(FLARE)
    gradient = RNG.normal(0, 1e-2, 5000)
    update = 0.1 * gradient + RNG.uniform(-0.01, 0.01, 5000)
    payload = masked_inner_product(
        encrypt_vector(update, secret.public()), prepare_inner_product(gradient, secret), secret
    )
    assert decrypt_inner_product(payload, secret) == pytest.approx(update @ gradient, rel=1e-5)
