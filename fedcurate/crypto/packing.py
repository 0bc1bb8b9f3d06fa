"""Flat float vectors to CKKS slot rows and back.

``complex`` packing puts values ``2k`` and ``2k + 1`` of a chunk into the real and
imaginary parts of slot ``k`` (a zero-copy view of the padded float64 array), so
a ciphertext of ring degree ``N`` carries ``N`` reals instead of ``N / 2``. Sums
act on both parts independently; an inner product with a plaintext ``g`` packed
the same way uses ``conj(g)``, because ``Re(z * conj(w))`` is
``z.real * w.real + z.imag * w.imag``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fedcurate.crypto.errors import CapacityError
from fedcurate.crypto.presets import CkksPreset

FloatVector = npt.NDArray[np.float64]


def as_flat_vector(vector: npt.ArrayLike, capacity: float | None = None) -> FloatVector:
    """``vector`` as a finite 1-D float64 array, optionally bounded by ``capacity``.

    Raises
    ------
    CapacityError
        Empty, not one-dimensional, not finite, or ``max |value| > capacity``.
    """
    array = np.asarray(vector, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise CapacityError(f"expected a non-empty flat vector, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise CapacityError(f"{int(np.sum(~np.isfinite(array)))} values are NaN or infinite")
    if capacity is not None:
        largest = float(np.max(np.abs(array)))
        if largest > capacity:
            raise CapacityError(
                f"max |value| = {largest:.3g} exceeds what the preset can hold ({capacity:.3g})"
            )
    return array


def pack(vector: FloatVector, preset: CkksPreset) -> npt.NDArray[np.float64 | np.complex128]:
    """Rows of slot values, one row per ciphertext, zero-padded at the end."""
    rows = preset.ciphertexts_for(vector.size)
    padded = np.zeros(rows * preset.values_per_ciphertext, dtype=np.float64)
    padded[: vector.size] = vector
    if preset.packing == "complex":
        return padded.view(np.complex128).reshape(rows, preset.slots)
    return padded.reshape(rows, preset.slots)


def pack_conjugate(vector: FloatVector, preset: CkksPreset) -> npt.NDArray[np.complex128]:
    """Rows whose slot-wise product with :func:`pack` rows has the inner product as real sum."""
    return np.conj(pack(vector, preset))


def unpack(rows: list[npt.NDArray[np.float64 | np.complex128]], length: int) -> FloatVector:
    """The flat vector of ``length`` values held by decoded slot rows."""
    flat = np.concatenate(rows)
    if np.iscomplexobj(flat):
        flat = np.ascontiguousarray(flat, dtype=np.complex128).view(np.float64)
    return np.asarray(flat[:length], dtype=np.float64)
