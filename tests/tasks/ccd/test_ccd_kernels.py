"""The combine kernel against a plain NumPy reference, with NaNs and outliers."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.tasks.ccd import _kernels as K
from svomflow.tasks.ccd.combine import CombineConfig, combine_memory_bound, combine_stack


def _reference(values, sl, sh, maxiters, center, scale, result, a=None, b=None):
    """Slow per-pixel reference of the clipping rules (NumPy only)."""
    nf, nr, nc = values.shape
    out = np.full((nr, nc), np.nan)
    cnt = np.zeros((nr, nc), dtype=int)
    for r in range(nr):
        for c in range(nc):
            v = values[:, r, c].astype(np.float64)
            frames = np.arange(nf)[np.isfinite(v)]
            v = v[np.isfinite(v)]
            for _ in range(maxiters):
                if v.size < 2:
                    break
                cen = np.median(v) if center == "median" else v.mean()
                if scale == "noise_model":
                    sd = np.sqrt(a[frames] + b[frames] * max(cen, 0.0))
                    keep = (v >= cen - sl * sd) & (v <= cen + sh * sd)
                else:
                    if scale == "mad_std":
                        s = 1.482602218505602 * np.median(np.abs(v - cen))
                    else:
                        s = v.std()
                    if not s > 0:
                        break
                    keep = (v >= cen - sl * s) & (v <= cen + sh * s)
                if keep.all():
                    break
                v, frames = v[keep], frames[keep]
            if v.size:
                out[r, c] = np.median(v) if result == "median" else v.mean()
            cnt[r, c] = v.size
    return out, cnt


def _stack(seed, nf=9, nr=7, nc=11):
    rng = np.random.default_rng(seed)
    s = rng.normal(100.0, 3.0, (nf, nr, nc)).astype(np.float32)
    s[rng.uniform(size=s.shape) < 0.08] = np.nan
    hits = rng.uniform(size=s.shape) < 0.1
    s[hits] += rng.uniform(50, 5000, hits.sum()).astype(np.float32)
    s[:, 0, 0] = np.nan  # a pixel with no data at all
    return s


@pytest.mark.parametrize(
    ("center", "scale", "method", "maxiters"),
    [
        ("mean", "std", "mean", 1),
        ("median", "mad_std", "mean", 5),
        ("median", "std", "median", 3),
        ("median", "noise_model", "mean", 5),
        ("mean", "noise_model", "median", 2),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_numpy_reference(center, scale, method, maxiters, seed):
    s = _stack(seed)
    nf = s.shape[0]
    a = np.full(nf, 9.0) * np.linspace(0.8, 1.2, nf)
    b = np.full(nf, 0.01)
    cfg = CombineConfig(center=center, scale=scale, method=method, maxiters=maxiters, chunk_rows=3)
    noise = (a, b) if scale == "noise_model" else None
    got, cnt = combine_stack(s, cfg, noise=noise)
    ref, rcnt = _reference(s, 3.0, 3.0, maxiters, center, scale, method, a, b)
    np.testing.assert_array_equal(cnt, rcnt)
    np.testing.assert_allclose(got, ref, rtol=2e-6, equal_nan=True)
    assert np.isnan(got[0, 0]) and cnt[0, 0] == 0


def test_outliers_are_rejected_with_five_frames():
    # With five frames, a cosmic ray is never beyond 3 standard deviations of the five
    # (Samuelson's bound), so only the noise model or MAD can reject it.
    rng = np.random.default_rng(5)
    s = rng.normal(0.0, 3.0, (5, 40, 40)).astype(np.float32)
    s[2, 10, 10] = 3000.0
    std_cfg = CombineConfig(center="median", scale="std")
    got_std, _ = combine_stack(s, std_cfg)
    assert got_std[10, 10] > 500  # not rejected
    got, cnt = combine_stack(s, CombineConfig(), noise=(np.full(5, 9.0), np.zeros(5)))
    assert cnt[10, 10] == 4
    assert abs(got[10, 10]) < 5 * 3.0 / np.sqrt(4)


def test_memory_bound_and_validation():
    assert (
        combine_memory_bound(20, 2048, 2048, 256)
        == 256 * 2048 * 20 * 4 + 2048 * 2048 * 6 + 256 * 2048 * 8
    )
    with pytest.raises(ValueError, match="noise model"):
        combine_stack(np.zeros((3, 4, 4), np.float32), CombineConfig())
    with pytest.raises(ValueError, match="3-D"):
        combine_stack(np.zeros((4, 4), np.float32))


def test_modes_constants_are_distinct():
    assert len({K.SCALE_STD, K.SCALE_MAD, K.SCALE_MODEL}) == 3


def _calibrate_reference(img, bias, bias_err, dark, dark_err, f, t, hot, flat, flat_err, count):
    """The frame calibration in whole-array NumPy (float64), as SCIENCE.md writes it."""
    g, rn_e, lo, hi = 1.7, 6.0, 0.5, 1.5
    adu = img.astype(float) - bias
    var_cal = bias_err.astype(float) ** 2
    dq = np.zeros(img.shape, np.uint16)
    if dark is not None:
        adu -= dark.astype(float) * f * t
        var_cal += (dark_err.astype(float) * f * t) ** 2
        dq[dark.astype(float) * f * g > hot] |= 1
    e = adu * g
    var = np.maximum(e, 0) + rn_e**2 + var_cal * g**2
    sci = e
    if flat is not None:
        fl = flat.astype(float)
        bad = ~np.isfinite(fl) | (fl <= 0) | (count == 0)
        dq[bad] |= 16
        dq[~bad & ((fl < lo) | (fl > hi))] |= 1
        safe = np.where(bad, 1.0, fl)
        sci = e / safe
        ferr = np.where(bad, 0.0, flat_err.astype(float)) / safe
        var = var / safe**2 + (sci * ferr) ** 2
    return sci, var, dq


@pytest.mark.parametrize("with_dark", [True, False])
@pytest.mark.parametrize("with_flat", [True, False])
def test_calibrate_pixels_matches_numpy(with_dark, with_flat):
    rng = np.random.default_rng(5)
    shape = (37, 53)
    img = rng.normal(1200, 40, shape).astype(np.float32)
    bias = rng.normal(300, 2, shape).astype(np.float32)
    bias_err = rng.uniform(0.1, 0.5, shape).astype(np.float32)
    dark = rng.exponential(0.05, shape).astype(np.float32)
    dark[3, 4] = 5.0  # hot
    dark_err = rng.uniform(0.001, 0.01, shape).astype(np.float32)
    flat = rng.normal(1.0, 0.05, shape).astype(np.float32)
    flat[5, 6], flat[7, 8], flat[9, 10] = np.nan, -1.0, 0.3  # no flat, no flat, bad
    flat_err = rng.uniform(0.001, 0.01, shape).astype(np.float32)
    count = np.full(shape, 7, np.int16)
    count[11, 12] = 0  # no frame: no flat
    dark_args = (dark, dark_err) if with_dark else (None, None)
    flat_args = (flat, flat_err, count) if with_flat else (None, None, None)
    ref_sci, ref_var, ref_dq = _calibrate_reference(
        img, bias, bias_err, dark_args[0], dark_args[1], 1.3, 30.0, 1.0, *flat_args
    )
    none = np.zeros((0, 0), np.float32)
    sci = np.empty(shape, np.float32)
    var = np.empty(shape, np.float32)
    dq = np.zeros(shape, np.uint16)
    dq[0, 0] = 2  # bits already set are kept
    K.calibrate_pixels(
        img, bias, bias_err,
        dark if with_dark else none, dark_err if with_dark else none, 1.3, 30.0, 1.0,
        flat if with_flat else none, flat_err if with_flat else none,
        count if with_flat else np.zeros((0, 0), np.int16),
        0.5, 1.5, 1.7, 6.0, 1, 16, sci, var, dq,
    )  # fmt: skip
    np.testing.assert_allclose(sci, ref_sci.astype(np.float32), rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(var, ref_var.astype(np.float32), rtol=1e-6)
    ref_dq[0, 0] |= 2
    np.testing.assert_array_equal(dq, ref_dq)
    assert (dq[3, 4] & 1) == (1 if with_dark else 0)
    assert with_flat == bool(dq[11, 12] & 16) == bool(dq[5, 6] & 16) == bool(dq[9, 10] & 1)
