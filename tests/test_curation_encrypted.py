"""First-order values under CKKS equal the plaintext ones (same seed, same federation).

Under encryption the server computes ``<p_i Δ_i, g>`` on each ciphertext and the
curator decrypts only those scalars; in plaintext the curator computes the same
inner products itself. Both paths must give the same values, up to CKKS noise,
and the encrypted one also carries the data signal projected on the ciphertexts.
"""

from __future__ import annotations

import json
from pathlib import Path

from simulations.bench_curator import (
    TARGET_ENCRYPTED_RELATIVE,
    RunCache,
    curation_fingerprint,
    encrypted_detection,
    encrypted_first_order_gap,
)


def test_encrypted_first_order_values_match_plaintext(tmp_path: Path) -> None:
    gap = encrypted_first_order_gap(tmp_path, ["corruption=sign_flip", "corruption.owners=[1]"])
    assert gap["values_compared"] == 4 * 3
    assert gap["max_relative_difference"] <= TARGET_ENCRYPTED_RELATIVE
    # The encrypted round also carries the data signal computed on the ciphertexts.
    ledger = json.loads((tmp_path / "ckks" / "ledger.json").read_text())
    for entry in ledger["rounds"]:
        signals = [owner["signals"] for owner in entry["owners"].values()]
        assert all(set(s or {}) == {"sharpening_projection"} for s in signals)


def test_the_benchmark_measures_detection_under_encryption(tmp_path: Path) -> None:
    cache = RunCache(tmp_path / "cache", curation_fingerprint())
    detection = encrypted_detection([0], 3, cache, tmp_path, quick=True)
    [row] = detection["cells"]
    assert 0.0 <= row["auroc"] <= 1.0
    assert 0.0 <= row["auroc_credit"] <= 1.0
    assert detection["summary"]["none"]["auroc"] == row["auroc"]
    cached = list((tmp_path / "cache").glob("*.json"))
    assert len(cached) == 1
    assert "crypto=ckks" in json.loads(cached[0].read_text())["overrides"]
