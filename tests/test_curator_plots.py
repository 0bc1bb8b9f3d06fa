"""Figures of the curator benchmark: drawn from cell records, partial grids included."""

from __future__ import annotations

from pathlib import Path

from simulations.curator_plots import accuracy_gaps, detection_heatmap, draw

ROBUST = ("krum", "multikrum", "fedmedian", "fedtrimmedavg")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _record(privacy: str, corruption: str, accuracy: dict[str, float]) -> dict[str, object]:
    return {
        "dataset": "digits",
        "partition": "iid",
        "corruption": corruption,
        "fraction": 0.4,
        "privacy": privacy,
        "auroc": 0.8,
        "accuracy": accuracy,
    }


def test_both_figures_are_drawn_for_a_partial_grid(tmp_path: Path) -> None:
    accuracy = {"weighted": 0.9, "curated": 0.7, "clean": 0.91, "krum": 0.2, "multikrum": 0.88}
    records = [
        _record("none", "sign_flip", accuracy),
        _record("dp_sgd", "label_flip", {"weighted": 0.8, "clean": 0.79}),
    ]
    drawn = draw(records, ROBUST, tmp_path, "bench")
    assert [p.name for p in drawn] == ["bench_auroc.png", "bench_accuracy.png"]
    assert all(p.read_bytes().startswith(PNG_SIGNATURE) for p in drawn)


def test_nothing_to_show_draws_nothing(tmp_path: Path) -> None:
    unmeasured = _record("none", "sign_flip", {"curated": 0.9}) | {"auroc": None}
    assert detection_heatmap([unmeasured], tmp_path / "auroc.png") is None
    assert accuracy_gaps([unmeasured], ROBUST, tmp_path / "accuracy.png") is None
    assert not list(tmp_path.iterdir())
