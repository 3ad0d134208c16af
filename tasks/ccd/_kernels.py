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
    "lacosmic_candidates",
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


@kernel
def _median_small(buf: np.ndarray, n: int) -> float:
    """Median of the first ``n`` values of ``buf`` (sorted in place; ``n`` odd, up to 9)."""
    _sort_inplace(buf, n)
    return buf[n // 2]


@parallel_kernel
def separable_median(img: np.ndarray, half: int) -> np.ndarray:
    """Separable median of side ``2 half + 1``: along rows, then along columns (astroscrappy).

    As astroscrappy's ``sepmedfilt``: pixels within ``half`` of the left/right edge keep
    their value in the row pass, those within ``half`` of the top/bottom edge keep the row
    median.
    """
    ny, nx = img.shape
    w = 2 * half + 1
    rows = np.empty((ny, nx), dtype=np.float64)
    out = np.empty((ny, nx), dtype=np.float64)
    for j in numba.prange(ny):
        buf = np.empty(w)
        for i in range(nx):
            if half <= i < nx - half:
                for d in range(w):
                    buf[d] = img[j, i - half + d]
                rows[j, i] = _median_small(buf, w)
            else:
                rows[j, i] = img[j, i]
    for j in numba.prange(ny):
        buf = np.empty(w)
        for i in range(nx):
            if half <= j < ny - half:
                for d in range(w):
                    buf[d] = rows[j - half + d, i]
                out[j, i] = _median_small(buf, w)
            else:
                out[j, i] = rows[j, i]
    return out


@parallel_kernel
def _laplacian_plus(img: np.ndarray) -> np.ndarray:
    """L.A.Cosmic's ``L+``: Laplacian of the 2x subsampled image, clipped at 0, rebinned.

    Per pixel: the mean over its 4 sub-pixels of ``max(0, 2 v - v_row - v_col)`` with the
    row and column neighbours on that sub-pixel's side (0 beyond the frame edge).
    """
    ny, nx = img.shape
    out = np.empty((ny, nx), dtype=np.float64)
    for j in numba.prange(ny):
        for i in range(nx):
            v = 2.0 * img[j, i]
            up = img[j - 1, i] if j > 0 else 0.0
            down = img[j + 1, i] if j + 1 < ny else 0.0
            left = img[j, i - 1] if i > 0 else 0.0
            right = img[j, i + 1] if i + 1 < nx else 0.0
            lap = max(0.0, v - up - left) + max(0.0, v - up - right)
            lap += max(0.0, v - down - left) + max(0.0, v - down - right)
            out[j, i] = 0.25 * lap
    return out


def lacosmic_candidates(
    img: np.ndarray, var_offset: float, sigclip: float, objlim: float
) -> np.ndarray:
    """Flag the pixels L.A.Cosmic's first iteration detects (astroscrappy, sepmed, gain 1).

    The same arithmetic as astroscrappy's detection, in float64 instead of float32:
    ``S = L+ / (2 noise)`` with ``noise = sqrt(sepmed7(img + var_offset))`` (floor 1e-5),
    ``S' = S - sepmed7(S)``, the fine structure ``F = (sepmed5(img) - sepmed9(sepmed5(img)))
    / noise`` (floor 0.01), detection where ``S' > sigclip`` and ``S' / F > objlim``. Pass
    thresholds slightly below astroscrappy's so that rounding cannot drop a detection; the
    growth of detections to their neighbours is left to the caller (a few pixels). Within 5
    pixels of the frame edge, where the filters differ, every pixel with ``S' > sigclip`` is
    flagged.

    Returns
    -------
    numpy.ndarray
        Boolean flags.
    """
    img = np.ascontiguousarray(img, dtype=np.float64)
    med7 = separable_median(img, 3)
    # a median commutes with adding a constant: sepmed7(img + c) = sepmed7(img) + c
    noise = np.sqrt(np.maximum(med7 + var_offset, 1e-5))
    s = _laplacian_plus(img) / (2.0 * noise)
    sp = s - separable_median(s, 3)
    f = separable_median(img, 2)
    f = np.maximum((f - separable_median(f, 4)) / noise, 0.01)
    cand = (sp > sigclip) & (sp / f > objlim)
    # within 5 pixels of the frame edge astroscrappy's filters (and its Laplacian) treat the
    # missing neighbours their own way: there, skip the fine-structure (star) test
    edge = 5
    for rows, cols in (
        (slice(0, edge), slice(None)),
        (slice(-edge, None), slice(None)),
        (slice(None), slice(0, edge)),
        (slice(None), slice(-edge, None)),
    ):
        cand[rows, cols] |= sp[rows, cols] > sigclip
    return cand  # type: ignore[no-any-return]
