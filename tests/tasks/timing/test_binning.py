"""Uniform and constant-S/N binning with GTIs; grow_bins kernel against a NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.tasks.timing._kernels import grow_bins
from svomflow.tasks.timing.binning import (
    constant_sn_bins,
    gti_overlap,
    normalise_gti,
    uniform_bins,
)

GTI = np.array([[0.0, 10.3], [12.0, 20.0]])


def test_gti_overlap_exact() -> None:
    edges = np.array([-1.0, 0.5, 10.0, 11.0, 12.5, 25.0])
    np.testing.assert_allclose(gti_overlap(edges, GTI), [0.5, 9.5, 0.3, 0.5, 7.5])
    np.testing.assert_allclose(normalise_gti([[5, 7], [0, 2], [1, 3]]), [[0, 3], [5, 7]])


def test_uniform_bins_split_at_gaps_with_true_exposure() -> None:
    rng = np.random.default_rng(0)
    t = np.sort(np.concatenate([rng.uniform(0, 10.3, 1000), rng.uniform(12, 20, 800)]))
    b = uniform_bins(t, 1.0, GTI)
    # no bin bridges the gap; the bin cut at 10.3 has 0.3 s exposure; clock kept at 12
    assert not np.any((b.lo < 10.3) & (b.hi > 10.3))
    assert not np.any((b.lo < 12.0) & (b.hi > 12.0))
    cut = np.flatnonzero(np.isclose(b.hi, 10.3))
    assert cut.size == 1 and b.exposure[cut[0]] == pytest.approx(0.3)
    assert np.isclose(b.lo, 12.0).any() and np.isclose(b.lo, 13.0).any()
    assert b.counts.sum() == t.size
    assert np.sum(~b.contiguous) == 1
    np.testing.assert_allclose(b.exposure.sum(), 10.3 + 8.0)
    # several bands on the same clock
    bb = uniform_bins([t[::2], t[1::2]], 1.0, GTI)
    np.testing.assert_array_equal(bb.counts.sum(axis=0), b.counts)


def _grow_reference(t, gti, min_counts, target, bkg):  # type: ignore[no-untyped-def]
    lo_out, hi_out = [], []
    for a, b in gti:
        tt = t[(t >= a) & (t < b)]
        start, n, first = a, 0, len(lo_out)
        for j, x in enumerate(tt):
            n += 1
            nxt = tt[j + 1] if j + 1 < tt.size else (t[t >= b][0] if np.any(t >= b) else b)
            stop = min(0.5 * (x + nxt), b)
            if n >= min_counts and (n - bkg * (stop - start)) / np.sqrt(n) >= target:
                lo_out.append(start)
                hi_out.append(stop)
                start, n = stop, 0
        if start < b:
            if len(lo_out) > first:
                hi_out[-1] = b
            else:
                lo_out.append(start)
                hi_out.append(b)
    return np.array(lo_out), np.array(hi_out)


@pytest.mark.parametrize("target", [0.0, 4.0])
def test_grow_bins_against_reference(target: float) -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 20, 2000))
    lo, hi = grow_bins(t, GTI[:, 0].copy(), GTI[:, 1].copy(), 20.0, target, 50.0)
    rlo, rhi = _grow_reference(t, GTI, 20, target, 50.0)
    np.testing.assert_allclose(lo, rlo)
    np.testing.assert_allclose(hi, rhi)


def test_constant_sn_bins_reach_target_and_respect_gaps() -> None:
    rng = np.random.default_rng(4)
    t = np.sort(np.concatenate([rng.uniform(0, 10.3, 3000), rng.normal(15, 0.5, 2000)]))
    t = t[((t >= 0) & (t < 10.3)) | ((t >= 12) & (t < 20))]
    b = constant_sn_bins(t, GTI, min_counts=25)
    assert np.all(b.counts >= 25)
    assert not np.any((b.lo < 10.3) & (b.hi > 10.3))
    assert b.counts.sum() == t.size
    # brighter part gets narrower bins
    w = b.width
    assert np.median(w[(b.lo > 14.5) & (b.hi < 15.5)]) < 0.3 * np.median(w[b.hi < 10])
    s = constant_sn_bins(t, GTI, min_counts=1, target_snr=5.0, background_rate=100.0)
    snr = (s.counts - 100.0 * s.width) / np.sqrt(s.counts)
    # every bin but a GTI's merged last one reaches the target
    last_of_gti = np.isclose(s.hi, 10.3) | np.isclose(s.hi, 20.0)
    assert np.all(snr[~last_of_gti] >= 5.0 - 1e-9)
    with pytest.raises(ValueError, match="sorted"):
        constant_sn_bins(t[::-1], GTI, min_counts=5)


def test_from_ogip_lightcurve_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from astropy.io import fits
    from svomflow.errors import InputDataError
    from svomflow.products.ogip import read_lightcurve
    from svomflow.tasks.timing.binning import from_lightcurve

    counts = np.random.default_rng(0).poisson(30.0, 50)
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("TIME", "D", array=np.arange(50) * 0.5),
            fits.Column("COUNTS", "J", array=counts),
        ],
        name="RATE",
    )
    hdu.header["TIMEDEL"] = 0.5
    p = tmp_path / "lc.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(p)
    b = from_lightcurve(read_lightcurve(p))
    np.testing.assert_array_equal(b.counts, counts)
    np.testing.assert_allclose(b.exposure, 0.5)
    np.testing.assert_allclose(b.lo[1:], b.hi[:-1])
    assert not b.gaussian  # integer counts: Poisson
    lc = read_lightcurve(p)
    lc.rate[:] = -5.0  # background-subtracted: kept as Gaussian measurements, never zeroed
    g = from_lightcurve(lc)
    assert g.gaussian and np.all(g.counts == -2.5)
    with pytest.raises(InputDataError, match="not non-negative integers"):
        from_lightcurve(lc, statistic="poisson")
