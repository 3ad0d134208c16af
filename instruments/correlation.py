"""FFT cross-correlation of detector arrays with the mask (the engine of sky imaging)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import fft

__all__ = ["Correlator", "correlate_full"]


class Correlator:
    """Full cross-correlation of many ``(na_y, na_z)`` arrays with one fixed array ``q``.

    ``out[m] = sum_i a[i] * q[i + m - (na - 1)]``, shape ``na + nq - 1`` per axis: for a
    detector array ``a`` and the pixel-grid mask ``q`` this is the sum over the shadow of
    every integer shift. The transform of ``q`` is computed once.
    """

    def __init__(self, q: NDArray[np.float64], a_shape: tuple[int, int]) -> None:
        self.q_shape = q.shape
        self.a_shape = (int(a_shape[0]), int(a_shape[1]))
        self.out_shape = (
            self.a_shape[0] + q.shape[0] - 1,
            self.a_shape[1] + q.shape[1] - 1,
        )
        self._fshape = tuple(fft.next_fast_len(n, real=True) for n in self.out_shape)
        self._qf = fft.rfft2(np.asarray(q, dtype=np.float64), self._fshape)

    def __call__(self, a: NDArray[np.floating]) -> NDArray[np.float64]:
        """Return the full correlation of ``a`` (shape ``a_shape``) with ``q``."""
        a = np.asarray(a, dtype=np.float64)
        if a.shape != self.a_shape:
            raise ValueError(f"array shape {a.shape} differs from {self.a_shape}")
        # correlation = convolution with the reversed array
        af = fft.rfft2(a[::-1, ::-1], self._fshape)
        full = fft.irfft2(af * self._qf, self._fshape)
        return full[: self.out_shape[0], : self.out_shape[1]]


def correlate_full(a: NDArray[np.floating], q: NDArray[np.floating]) -> NDArray[np.float64]:
    """Return the full cross-correlation ``out[m] = sum_i a[i] q[i + m - (na - 1)]`` by FFT."""
    return Correlator(np.asarray(q, dtype=np.float64), np.shape(a))(a)
