"""numba kernels of coded-mask imaging: event accumulation and a direct correlation.

Each kernel has a plain NumPy reference in ``tests/tasks/coded_mask/test_kernels.py``.
"""

from __future__ import annotations

import numpy as np
from svomflow.numba_policy import kernel

__all__ = ["accumulate_shadowgram", "correlate_direct"]


# always called with contiguous int64 pixel indices and float64 times and energies
# (imaging.make_shadowgram converts them): declared, it loads when the VHF pipeline is
# imported, with numba's code-generation context (svomflow.numba_policy)
@kernel(
    signatures=[
        "(int64[::1], int64[::1], float64[::1], float64[::1],"
        " float64, float64, float64, float64, int64, int64)"
    ]
)
def accumulate_shadowgram(
    y: np.ndarray,
    z: np.ndarray,
    time: np.ndarray,
    energy: np.ndarray,
    t_lo: float,
    t_hi: float,
    e_lo: float,
    e_hi: float,
    ny: int,
    nz: int,
) -> np.ndarray:
    """Count events per pixel with ``t_lo <= time < t_hi`` and ``e_lo <= energy < e_hi``.

    One pass over the events, without the temporary boolean arrays of a NumPy selection.
    Events with pixel indices outside the plane are ignored. The arrays are C-contiguous,
    ``y``/``z`` int64 and ``time``/``energy`` float64.
    """
    out = np.zeros((ny, nz), dtype=np.int64)
    for k in range(time.size):
        t = time[k]
        e = energy[k]
        if t < t_lo or t >= t_hi or e < e_lo or e >= e_hi:
            continue
        iy = y[k]
        iz = z[k]
        if 0 <= iy < ny and 0 <= iz < nz:
            out[iy, iz] += 1
    return out


@kernel
def correlate_direct(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Return the full 2-D cross-correlation ``out[m] = sum_i a[i] q[i + m - (na - 1)]``.

    Direct O(N^2 M^2) sum, for small inputs and as the reference of the FFT version.
    """
    nay, naz = a.shape
    nqy, nqz = q.shape
    out = np.zeros((nay + nqy - 1, naz + nqz - 1), dtype=np.float64)
    for my in range(out.shape[0]):
        for mz in range(out.shape[1]):
            acc = 0.0
            for iy in range(nay):
                qy = iy + my - (nay - 1)
                if qy < 0 or qy >= nqy:
                    continue
                for iz in range(naz):
                    qz = iz + mz - (naz - 1)
                    if qz < 0 or qz >= nqz:
                        continue
                    acc += a[iy, iz] * q[qy, qz]
            out[my, mz] = acc
    return out
