"""A data site's own file: the schema, a strict loader and a writer.

Two formats are accepted:

* **CSV** with a header row. One column (``label`` unless configured otherwise)
  holds integer class labels ``0 .. num_classes-1``; every other column is a
  numeric feature. Rows without a label (an empty cell) are *unlabelled* and only
  read by :func:`load_site_file` with ``allow_unlabelled=True``.
* **NPZ** with an array ``x`` of shape ``(n, ...)`` (numeric) and ``y`` of shape
  ``(n,)`` (integers; ``-1`` marks an unlabelled row).

Any problem raises :class:`SiteDataError` naming the file and what is wrong.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np

from fedcurate.data.arrays import ArrayDataset, make_dataset
from fedcurate.io import atomic_write_bytes

UNLABELLED = -1


class SiteDataError(ValueError):
    """A site data file is missing, malformed or does not fit the task."""


def _fail(path: Path, problem: str) -> SiteDataError:
    return SiteDataError(f"{path}: {problem}")


def load_site_file(
    path: str | Path,
    *,
    num_classes: int,
    input_shape: tuple[int, ...] | None = None,
    label_column: str = "label",
    allow_unlabelled: bool = False,
) -> ArrayDataset:
    """Load and validate a site file.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` or ``.npz`` file following the module's schema.
    num_classes : int
        Classes of the federation's task; labels must lie in ``[0, num_classes)``.
    input_shape : tuple of int, optional
        Shape of one example expected by the model; flat features are reshaped
        to it when the sizes agree.
    label_column : str
        Name of the CSV label column.
    allow_unlabelled : bool
        Accept rows without a label (marked ``-1``), for annotation.

    Raises
    ------
    SiteDataError
        The file is missing or unreadable, a value is not numeric or not finite,
        a label is out of range, or the feature count does not fit ``input_shape``.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        x, y = _read_csv(path, label_column)
    elif suffix == ".npz":
        x, y = _read_npz(path)
    else:
        raise _fail(path, f"unsupported extension '{suffix}' (use .csv or .npz)")
    _check_values(path, x, y, num_classes, allow_unlabelled)
    if input_shape is not None:
        x = _fit_shape(path, x, input_shape)
    return make_dataset(x, y, num_classes)


def _read_csv(path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(path, f"cannot read as UTF-8 text ({error})") from error
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise _fail(path, "empty file (expected a header row)")
    header = [cell.strip() for cell in rows[0]]
    if label_column not in header:
        raise _fail(path, f"no '{label_column}' column in header {header}")
    label_at = header.index(label_column)
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    if not body:
        raise _fail(path, "no data rows")
    features, labels = [], []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise _fail(path, f"line {line}: {len(row)} fields, header has {len(header)}")
        cells = [cell.strip() for cell in row]
        labels.append(_parse_label(path, line, cells[label_at]))
        values = cells[:label_at] + cells[label_at + 1 :]
        try:
            features.append([float(v) for v in values])
        except ValueError:
            bad = next(v for v in values if not _is_float(v))
            raise _fail(path, f"line {line}: '{bad}' is not a number") from None
    return np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=np.int64)


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _parse_label(path: Path, line: int, cell: str) -> int:
    if cell == "":
        return UNLABELLED
    try:
        value = float(cell)
    except ValueError:
        raise _fail(path, f"line {line}: label '{cell}' is not an integer") from None
    if not value.is_integer():
        raise _fail(path, f"line {line}: label '{cell}' is not an integer")
    return int(value)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise _fail(path, f"not a readable NPZ archive ({error})") from error
    missing = {"x", "y"} - set(arrays)
    if missing:
        raise _fail(path, f"missing array(s) {sorted(missing)}; found {sorted(arrays)}")
    x, y = arrays["x"], arrays["y"]
    if not np.issubdtype(x.dtype, np.number):
        raise _fail(path, f"x has non-numeric dtype {x.dtype}")
    if x.ndim < 2:
        raise _fail(path, f"x must have shape (n, features...), got {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise _fail(path, f"y must have shape ({len(x)},), got {y.shape}")
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and bool(np.all(np.mod(y, 1) == 0))
    )
    if not integral:
        raise _fail(path, f"y must hold integer labels, got dtype {y.dtype}")
    return x.astype(np.float64), y.astype(np.int64)


def _check_values(
    path: Path, x: np.ndarray, y: np.ndarray, num_classes: int, allow_unlabelled: bool
) -> None:
    if len(x) == 0:
        raise _fail(path, "no examples")
    bad_rows = np.where(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0]
    if len(bad_rows):
        raise _fail(path, f"non-finite feature values in row(s) {bad_rows[:5].tolist()}")
    unlabelled = y == UNLABELLED
    if unlabelled.any() and not allow_unlabelled:
        first = int(np.argmax(unlabelled))
        raise _fail(path, f"row {first} has no label (unlabelled rows need annotation)")
    out_of_range = np.where(~unlabelled & ((y < 0) | (y >= num_classes)))[0]
    if len(out_of_range):
        row = int(out_of_range[0])
        raise _fail(path, f"row {row}: label {int(y[row])} outside 0..{num_classes - 1}")


def _fit_shape(path: Path, x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    if tuple(x.shape[1:]) == input_shape:
        return x
    expected = int(np.prod(input_shape))
    found = int(np.prod(x.shape[1:]))
    if found != expected:
        raise _fail(path, f"{found} features per example, the model expects {expected}")
    return x.reshape(len(x), *input_shape)


def write_site_file(path: str | Path, data: ArrayDataset, label_column: str = "label") -> Path:
    """Write ``data`` in the site schema (format from the suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        handle = io.BytesIO()
        np.savez(handle, x=data.x, y=data.y)
        return atomic_write_bytes(path, handle.getvalue())
    if suffix != ".csv":
        raise SiteDataError(f"{path}: unsupported extension '{suffix}' (use .csv or .npz)")
    flat = data.x.reshape(len(data), -1)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*(f"f{i}" for i in range(flat.shape[1])), label_column])
    for features, label in zip(flat, data.y, strict=True):
        writer.writerow([*(repr(float(v)) for v in features), "" if label < 0 else int(label)])
    return atomic_write_bytes(path, out.getvalue().encode())
