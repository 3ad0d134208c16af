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
