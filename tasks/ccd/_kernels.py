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
    "calibrate_pixels",
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


# Median selection networks (Devillard's opt_med5/7/9): a fixed sequence of branch-free
# min/max exchanges, which the compiler vectorises along a row; sorting each window was 6 to
# 11 times slower (a mispredicted branch per comparison). separable_median and
# _laplacian_plus are the tested building blocks of the fused pre-screen (_prescreen).
@kernel(inline="always")
def _med5(p0: float, p1: float, p2: float, p3: float, p4: float) -> float:
    p0, p1 = min(p0, p1), max(p0, p1)
    p3, p4 = min(p3, p4), max(p3, p4)
    p0, p3 = min(p0, p3), max(p0, p3)
    p1, p4 = min(p1, p4), max(p1, p4)
    p1, p2 = min(p1, p2), max(p1, p2)
    p2, p3 = min(p2, p3), max(p2, p3)
    return max(p1, p2)


@kernel(inline="always")
def _med7(p0: float, p1: float, p2: float, p3: float, p4: float, p5: float, p6: float) -> float:
    p0, p5 = min(p0, p5), max(p0, p5)
    p0, p3 = min(p0, p3), max(p0, p3)
    p1, p6 = min(p1, p6), max(p1, p6)
    p2, p4 = min(p2, p4), max(p2, p4)
    p0, p1 = min(p0, p1), max(p0, p1)
    p3, p5 = min(p3, p5), max(p3, p5)
    p2, p6 = min(p2, p6), max(p2, p6)
    p2, p3 = min(p2, p3), max(p2, p3)
    p3, p6 = min(p3, p6), max(p3, p6)
    p4, p5 = min(p4, p5), max(p4, p5)
    p1, p4 = min(p1, p4), max(p1, p4)
    p1, p3 = min(p1, p3), max(p1, p3)
    return min(p3, p4)


@kernel(inline="always")
def _med9(
    p0: float,
    p1: float,
    p2: float,
    p3: float,
    p4: float,
    p5: float,
    p6: float,
    p7: float,
    p8: float,
) -> float:
    p1, p2 = min(p1, p2), max(p1, p2)
    p4, p5 = min(p4, p5), max(p4, p5)
    p7, p8 = min(p7, p8), max(p7, p8)
    p0, p1 = min(p0, p1), max(p0, p1)
    p3, p4 = min(p3, p4), max(p3, p4)
    p6, p7 = min(p6, p7), max(p6, p7)
    p1, p2 = min(p1, p2), max(p1, p2)
    p4, p5 = min(p4, p5), max(p4, p5)
    p7, p8 = min(p7, p8), max(p7, p8)
    p3 = max(p0, p3)
    p5 = min(p5, p8)
    p4, p7 = min(p4, p7), max(p4, p7)
    p6 = max(p3, p6)
    p4 = max(p1, p4)
    p2 = min(p2, p5)
    p4 = min(p4, p7)
    p4, p2 = min(p4, p2), max(p4, p2)
    p4 = max(p6, p4)
    return min(p4, p2)


@kernel
def _median_rows(img: np.ndarray, half: int, out: np.ndarray, j: int) -> None:
    """Median of side ``2 half + 1`` along row ``j`` (edge pixels keep their value)."""
    nx = img.shape[1]
    r = img[j]
    o = out[j]
    for i in range(min(half, nx)):
        o[i] = r[i]
    for i in range(max(half, nx - half), nx):
        o[i] = r[i]
    if half == 2:
        for i in range(2, nx - 2):
            o[i] = _med5(r[i - 2], r[i - 1], r[i], r[i + 1], r[i + 2])
    elif half == 3:
        for i in range(3, nx - 3):
            o[i] = _med7(r[i - 3], r[i - 2], r[i - 1], r[i], r[i + 1], r[i + 2], r[i + 3])
    else:
        for i in range(4, nx - 4):
            o[i] = _med9(
                r[i - 4], r[i - 3], r[i - 2], r[i - 1], r[i], r[i + 1], r[i + 2], r[i + 3], r[i + 4]
            )


@kernel
def _median_columns(img: np.ndarray, half: int, o: np.ndarray, j: int) -> None:
    """Median of side ``2 half + 1`` down the columns at row ``j`` into the row ``o``.

    Rows within ``half`` of the top/bottom edge are copied.
    """
    ny = img.shape[0]
    if j < half or j >= ny - half:
        o[:] = img[j, :]
    elif half == 2:
        a, b, c, d, e = img[j - 2], img[j - 1], img[j], img[j + 1], img[j + 2]
        for i in range(o.size):
            o[i] = _med5(a[i], b[i], c[i], d[i], e[i])
    elif half == 3:
        a, b, c, d, e = img[j - 3], img[j - 2], img[j - 1], img[j], img[j + 1]
        f, g = img[j + 2], img[j + 3]
        for i in range(o.size):
            o[i] = _med7(a[i], b[i], c[i], d[i], e[i], f[i], g[i])
    else:
        a, b, c, d, e = img[j - 4], img[j - 3], img[j - 2], img[j - 1], img[j]
        f, g, h, k = img[j + 1], img[j + 2], img[j + 3], img[j + 4]
        for i in range(o.size):
            o[i] = _med9(a[i], b[i], c[i], d[i], e[i], f[i], g[i], h[i], k[i])


@parallel_kernel
def _separable_median(img: np.ndarray, half: int) -> np.ndarray:
    ny, nx = img.shape
    rows = np.empty((ny, nx), dtype=np.float64)
    out = np.empty((ny, nx), dtype=np.float64)
    for j in numba.prange(ny):
        _median_rows(img, half, rows, j)
    for j in numba.prange(ny):
        _median_columns(rows, half, out[j], j)
    return out


def separable_median(img: np.ndarray, half: int) -> np.ndarray:
    """Separable median of side ``2 half + 1``: along rows, then along columns (astroscrappy).

    As astroscrappy's ``sepmedfilt``: pixels within ``half`` of the left/right edge keep
    their value in the row pass, those within ``half`` of the top/bottom edge keep the row
    median. ``half`` is 2, 3 or 4 (sides 5, 7, 9: L.A.Cosmic's filters); the image is
    float64 and finite (a median network orders NaN arbitrarily).
    """
    if half not in (2, 3, 4):
        raise ValueError(f"separable_median supports half = 2, 3 or 4, not {half}")
    return _separable_median(np.ascontiguousarray(img, dtype=np.float64), half)  # type: ignore[no-any-return]


@kernel
def _laplacian_row(img: np.ndarray, out: np.ndarray, j: int) -> None:
    """Row ``j`` of :func:`_laplacian_plus`."""
    ny, nx = img.shape
    for i in range(nx):
        v = 2.0 * img[j, i]
        up = img[j - 1, i] if j > 0 else 0.0
        down = img[j + 1, i] if j + 1 < ny else 0.0
        left = img[j, i - 1] if i > 0 else 0.0
        right = img[j, i + 1] if i + 1 < nx else 0.0
        lap = max(0.0, v - up - left) + max(0.0, v - up - right)
        lap += max(0.0, v - down - left) + max(0.0, v - down - right)
        out[j, i] = 0.25 * lap


@parallel_kernel
def _laplacian_plus(img: np.ndarray) -> np.ndarray:
    """L.A.Cosmic's ``L+``: Laplacian of the 2x subsampled image, clipped at 0, rebinned.

    Per pixel: the mean over its 4 sub-pixels of ``max(0, 2 v - v_row - v_col)`` with the
    row and column neighbours on that sub-pixel's side (0 beyond the frame edge).
    """
    ny, nx = img.shape
    out = np.empty((ny, nx), dtype=np.float64)
    for j in numba.prange(ny):
        _laplacian_row(img, out, j)
    return out


@parallel_kernel
def _prescreen(
    img: np.ndarray, var_offset: float, sigclip: float, objlim: float, edge: int
) -> np.ndarray:
    """:func:`lacosmic_candidates` in one compiled pass (no temporaries between filters)."""
    ny, nx = img.shape
    a = np.empty((ny, nx))  # row medians of 7 of the image, then of S
    b = np.empty((ny, nx))  # row medians of 5 of the image, then of 9 of sepmed5(image)
    s = np.empty((ny, nx))  # L+, then S = L+ / (2 noise)
    noise = np.empty((ny, nx))
    f5 = np.empty((ny, nx))
    cand = np.empty((ny, nx), dtype=np.bool_)
    for j in numba.prange(ny):
        _median_rows(img, 3, a, j)
        _median_rows(img, 2, b, j)
        _laplacian_row(img, s, j)
    for j in numba.prange(ny):
        # noise = sqrt(sepmed7(img + var_offset)): a median commutes with adding a constant
        _median_columns(a, 3, noise[j], j)
        _median_columns(b, 2, f5[j], j)
        for i in range(nx):
            noise[j, i] = np.sqrt(max(noise[j, i] + var_offset, 1e-5))
            s[j, i] = s[j, i] / (2.0 * noise[j, i])
    for j in numba.prange(ny):
        _median_rows(s, 3, a, j)
        _median_rows(f5, 4, b, j)
    for j in numba.prange(ny):
        med_s = np.empty(nx)
        med_f = np.empty(nx)
        _median_columns(a, 3, med_s, j)
        _median_columns(b, 4, med_f, j)
        band = j < edge or j >= ny - edge
        for i in range(nx):
            sp = s[j, i] - med_s[i]
            f = max((f5[j, i] - med_f[i]) / noise[j, i], 0.01)
            c = sp > sigclip
            if not (band or i < edge or i >= nx - edge):
                c = c and sp / f > objlim
            cand[j, i] = c
    return cand


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
    # within 5 pixels of the frame edge astroscrappy's filters (and its Laplacian) treat the
    # missing neighbours their own way: there, skip the fine-structure (star) test
    return _prescreen(img, var_offset, sigclip, objlim, 5)  # type: ignore[no-any-return]


@kernel
def calibrate_pixels(
    img: np.ndarray,
    bias: np.ndarray,
    bias_err: np.ndarray,
    dark: np.ndarray,
    dark_err: np.ndarray,
    dark_scale: float,
    exptime: float,
    hot_e_per_s: float,
    flat: np.ndarray,
    flat_err: np.ndarray,
    flat_count: np.ndarray,
    flat_lo: float,
    flat_hi: float,
    gain: float,
    rn_e: float,
    bad_bit: int,
    no_flat_bit: int,
    sci: np.ndarray,
    var: np.ndarray,
    dq: np.ndarray,
) -> None:
    """Calibrate a frame in one pass: electrons, their variance and the masters' DQ bits.

    ``sci = gain (img - bias - dark dark_scale exptime) / flat`` and ``var`` the Poisson
    and read noise plus the masters' propagated errors, in float64 per pixel, written to
    the float32 ``sci`` and ``var``; ``dq`` gets ``bad_bit`` (hot in the dark, flat out of
    ``[flat_lo, flat_hi]``) and ``no_flat_bit`` (flat not finite, <= 0 or from no frame)
    or-ed in. An empty (0 x 0) ``dark`` or ``flat`` means no such master.
    """
    ny, nx = img.shape
    has_dark = dark.shape[0] > 0
    has_flat = flat.shape[0] > 0
    g2 = gain * gain
    rn2 = rn_e * rn_e
    for j in range(ny):
        for i in range(nx):
            adu = np.float64(img[j, i]) - np.float64(bias[j, i])
            e_cal = np.float64(bias_err[j, i])
            v_cal = e_cal * e_cal
            q = 0
            if has_dark:
                d = np.float64(dark[j, i]) * dark_scale
                adu -= d * exptime
                e_d = np.float64(dark_err[j, i]) * dark_scale * exptime
                v_cal += e_d * e_d
                if d * gain > hot_e_per_s:
                    q |= bad_bit
            electrons = adu * gain
            v = max(electrons, 0.0) + rn2 + v_cal * g2
            if has_flat:
                f = np.float64(flat[j, i])
                if not np.isfinite(f) or f <= 0.0 or flat_count[j, i] == 0:
                    q |= no_flat_bit
                    s = electrons
                else:
                    if f < flat_lo or f > flat_hi:
                        q |= bad_bit
                    s = electrons / f
                    fe = np.float64(flat_err[j, i]) / f
                    v = v / (f * f) + (s * fe) * (s * fe)
            else:
                s = electrons
            sci[j, i] = s
            var[j, i] = v
            dq[j, i] |= q
