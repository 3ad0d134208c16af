"""numba kernels of the CCD steps (no I/O, no configuration objects)."""

from __future__ import annotations

import numba
import numpy as np
from svomflow.numba_policy import kernel, parallel_kernel

__all__ = [
    "CENTER_MEAN",
    "CENTER_MEDIAN",
    "SCALE_MAD",
    "SCALE_MODEL",
    "SCALE_STD",
    "clipped_combine",
]

CENTER_MEAN = 0
CENTER_MEDIAN = 1
SCALE_STD = 0
SCALE_MAD = 1
SCALE_MODEL = 2
# 1 / Phi^-1(3/4): turns a median absolute deviation into a Gaussian sigma.
_MAD_TO_SIGMA = 1.482602218505602


@kernel
def _sort_inplace(a, n):
    # Insertion sort: the stacks hold tens of values, where it beats a general sort.
    for i in range(1, n):
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@kernel
def _median_of(vals, n, work):
    for i in range(n):
        work[i] = vals[i]
    _sort_inplace(work, n)
    h = n // 2
    if n % 2 == 1:
        return work[h]
    return 0.5 * (work[h - 1] + work[h])


@kernel
def _mean_of(vals, n):
    s = 0.0
    for i in range(n):
        s += vals[i]
    return s / n


@kernel
def _combine_pixel(  # noqa: C901 - one numba loop per pixel: centre, scale, clip, iterate
    vals,
    idx,
    n,
    sigma_low,
    sigma_high,
    maxiters,
    center_mode,
    scale_mode,
    result_mode,
    noise_a,
    noise_b,
    work,
    keep,
):
    """Sigma-clip ``vals[:n]`` in place (kept values compacted to the front); return (value, n).

    ``idx`` holds the frame index of each value (for the per-frame noise model).
    """
    for _ in range(maxiters):
        if n < 2:
            break
        if center_mode == CENTER_MEDIAN:
            c = _median_of(vals, n, work)
        else:
            c = _mean_of(vals, n)
        if scale_mode == SCALE_MODEL:
            # Known noise: frame f has variance a_f + b_f * signal at this pixel.
            cpos = c if c > 0.0 else 0.0
            k = 0
            for i in range(n):
                f = idx[i]
                sd = np.sqrt(noise_a[f] + noise_b[f] * cpos)
                v = vals[i]
                if v >= c - sigma_low * sd and v <= c + sigma_high * sd:
                    vals[k] = v
                    idx[k] = f
                    k += 1
            if k == n:
                break
            n = k
            continue
        if scale_mode == SCALE_MAD:
            for i in range(n):
                keep[i] = abs(vals[i] - c)
            s = _MAD_TO_SIGMA * _median_of(keep, n, work)
        else:
            m = _mean_of(vals, n)
            acc = 0.0
            for i in range(n):
                d = vals[i] - m
                acc += d * d
            s = np.sqrt(acc / n)
        if not s > 0.0:
            break
        lo = c - sigma_low * s
        hi = c + sigma_high * s
        k = 0
        for i in range(n):
            v = vals[i]
            if v >= lo and v <= hi:
                vals[k] = v
                idx[k] = idx[i]
                k += 1
        if k == n:
            break
        n = k
    if n == 0:
        return np.nan, 0
    if result_mode == CENTER_MEDIAN:
        return _median_of(vals, n, work), n
    return _mean_of(vals, n), n


@parallel_kernel
def clipped_combine(
    stack,
    sigma_low,
    sigma_high,
    maxiters,
    center_mode,
    scale_mode,
    result_mode,
    noise_a,
    noise_b,
    out,
    count,
):
    """Combine a (nframes, rows, cols) stack into ``out`` with iterative sigma clipping.

    Non-finite values are ignored. Each iteration keeps the values within
    ``[c - sigma_low * s, c + sigma_high * s]`` where ``c`` is the mean or median
    (``center_mode``) and ``s`` the standard deviation (ddof 0) or the MAD-based sigma of the
    values kept so far, or the known noise of each frame, sqrt(noise_a[f] + noise_b[f] * c)
    (``scale_mode``); with few frames the sample scatter is too noisy to clip on (a single
    outlier among five values is never beyond 3 standard deviations of the five), so a
    noise model is the robust choice. Clipping stops when nothing changes or after
    ``maxiters`` iterations. ``out`` receives the mean (or median, ``result_mode``) of the
    kept values, NaN where none is left, and ``count`` their number.
    """
    nf, nr, nc = stack.shape
    for r in numba.prange(nr):
        vals = np.empty(nf, dtype=np.float64)
        idx = np.empty(nf, dtype=np.int64)
        work = np.empty(nf, dtype=np.float64)
        keep = np.empty(nf, dtype=np.float64)
        for c in range(nc):
            n = 0
            for f in range(nf):
                v = stack[f, r, c]
                if np.isfinite(v):
                    vals[n] = v
                    idx[n] = f
                    n += 1
            value, k = _combine_pixel(
                vals,
                idx,
                n,
                sigma_low,
                sigma_high,
                maxiters,
                center_mode,
                scale_mode,
                result_mode,
                noise_a,
                noise_b,
                work,
                keep,
            )
            out[r, c] = value
            count[r, c] = k
