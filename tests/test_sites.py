"""Site data files: the CSV / NPZ schema, strict loading and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedcurate.data import SiteDataError, load_site_file, make_dataset, write_site_file

DATA = make_dataset(np.arange(24, dtype=float).reshape(6, 4) / 7, np.array([0, 1, 2, 0, 1, 2]), 3)


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    path = write_site_file(tmp_path / f"site{suffix}", DATA)
    loaded = load_site_file(path, num_classes=3)
    assert np.allclose(loaded.x, DATA.x)
    assert np.array_equal(loaded.y, DATA.y)


def test_reshapes_flat_features_to_the_model_input(tmp_path: Path) -> None:
    path = write_site_file(tmp_path / "site.csv", DATA)
    assert load_site_file(path, num_classes=3, input_shape=(1, 2, 2)).x.shape == (6, 1, 2, 2)


def test_custom_label_column(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("a,diagnosis,b\n1,0,2\n3,1,4\n")
    loaded = load_site_file(path, num_classes=2, label_column="diagnosis")
    assert loaded.x.tolist() == [[1, 2], [3, 4]]
    assert loaded.y.tolist() == [0, 1]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty file"),
        ("a,b\n1,2\n", "no 'label' column"),
        ("a,label\n", "no data rows"),
        ("a,label\n1,0\n2\n", "line 3: 1 fields"),
        ("a,label\nx,0\n", "line 2: 'x' is not a number"),
        ("a,label\n1,0.5\n", "label '0.5' is not an integer"),
        ("a,label\n1,cat\n", "label 'cat' is not an integer"),
        ("a,label\n1,7\n", "label 7 outside 0..2"),
        ("a,label\nnan,1\n", "non-finite"),
        ("a,label\n1,\n", "has no label"),
    ],
)
def test_malformed_csv_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(SiteDataError) as error:
        load_site_file(path, num_classes=3)
    assert str(path) in str(error.value)
    assert problem in str(error.value)


def test_unlabelled_rows_when_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, "u.csv", "a,label\n1,\n2,1\n")
    assert load_site_file(path, num_classes=3, allow_unlabelled=True).y.tolist() == [-1, 1]


def test_wrong_feature_count(tmp_path: Path) -> None:
    path = write_site_file(tmp_path / "site.npz", DATA)
    with pytest.raises(SiteDataError, match="4 features per example, the model expects 64"):
        load_site_file(path, num_classes=3, input_shape=(1, 8, 8))


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"x": np.ones((3, 2))}, "missing array"),
        ({"x": np.ones((3, 2)), "y": np.zeros(2)}, "y must have shape"),
        ({"x": np.ones(3), "y": np.zeros(3)}, "x must have shape"),
        ({"x": np.ones((3, 2)), "y": np.array([0.5, 1, 0])}, "integer labels"),
    ],
)
def test_malformed_npz(tmp_path: Path, arrays: dict[str, np.ndarray], problem: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(SiteDataError, match=problem):
        load_site_file(path, num_classes=3)


def test_corrupt_npz_and_missing_and_unknown_files(tmp_path: Path) -> None:
    corrupt = _write(tmp_path, "bad.npz", "not a zip archive")
    with pytest.raises(SiteDataError, match="not a readable NPZ"):
        load_site_file(corrupt, num_classes=3)
    with pytest.raises(SiteDataError, match="no such file"):
        load_site_file(tmp_path / "missing.csv", num_classes=3)
    with pytest.raises(SiteDataError, match="unsupported extension"):
        load_site_file(_write(tmp_path, "data.xlsx", "x"), num_classes=3)
