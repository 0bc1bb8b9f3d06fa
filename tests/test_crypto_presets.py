"""CKKS presets: 128-bit secure, recognisable from their parameters, and ``auto``."""

from __future__ import annotations

import pytest
import tenseal.sealapi as seal

from fedcurate.config import ConfigError
from fedcurate.crypto import (
    AGGREGATE,
    FLARE,
    PRESETS,
    SCORING,
    CkksPreset,
    create_context,
    encrypt_vector,
    resolve_preset,
    to_wire,
    wire_size,
)
from fedcurate.crypto.presets import preset_for_parameters


@pytest.mark.parametrize("preset", PRESETS.values(), ids=list(PRESETS))
def test_presets_are_128_bit_secure_and_load(preset: CkksPreset) -> None:
    bound = seal.CoeffModulus.MaxBitCount(preset.poly_modulus_degree, seal.SEC_LEVEL_TYPE.TC128)
    assert sum(preset.coeff_mod_bit_sizes) <= bound
    context = create_context(preset)
    assert context.preset is preset
    assert context.data_primes
    assert len(context.data_primes) == len(preset.coeff_mod_bit_sizes) - 1


def test_parameters_identify_exactly_one_preset() -> None:
    for preset in PRESETS.values():
        found = preset_for_parameters(preset.poly_modulus_degree, preset.coeff_mod_bit_sizes)
        assert found is preset
    with pytest.raises(KeyError):
        preset_for_parameters(8192, (60, 40, 40, 60))


def test_auto_picks_scoring_only_when_needed() -> None:
    assert resolve_preset("auto", encrypted_scoring=False) is AGGREGATE
    assert resolve_preset("auto", encrypted_scoring=True) is SCORING
    assert resolve_preset("flare", encrypted_scoring=True) is FLARE
    assert not AGGREGATE.supports_plain_multiply
    assert SCORING.supports_plain_multiply


def test_bad_preset_choices_fail_loudly() -> None:
    with pytest.raises(ConfigError, match="unknown CKKS preset 'fast'"):
        resolve_preset("fast", encrypted_scoring=False)
    with pytest.raises(ConfigError, match="supports sums only"):
        resolve_preset("aggregate", encrypted_scoring=True)


def test_aggregate_preset_is_at_most_half_flare_bytes_per_value() -> None:
    def bytes_per_value(preset: CkksPreset) -> float:
        context = create_context(preset)
        values = [0.05] * preset.values_per_ciphertext
        return wire_size(to_wire(encrypt_vector(values, context))) / len(values)

    assert bytes_per_value(AGGREGATE) <= 0.5 * bytes_per_value(FLARE)
