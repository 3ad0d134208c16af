"""Mask weights: balance, normalisation, background cancellation, event sums, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.coded_mask import MaskGeometry, diffuse_illumination, mask_pattern
from svomflow.tasks.coded_mask.mask_weighting import (
    default_templates,
    event_weights,
    mask_weights,
    weighted_spectrum,
)

GEOM = MaskGeometry.from_instrument(load_instrument("eclairs"))
PATTERN = mask_pattern(GEOM)


def _tan(off_deg: float, phi: float = 0.5) -> tuple[float, float]:
    t = np.tan(np.radians(off_deg))
    return float(t * np.cos(phi)), float(t * np.sin(phi))


def _usable(seed: int = 0, n_bad: int = 150) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = np.ones(GEOM.shape, dtype=bool)
    u.ravel()[rng.choice(u.size, n_bad, replace=False)] = False
    return u


@pytest.mark.parametrize("off", [0.0, 12.0, 28.0, 34.0, 41.0])
def test_weights_are_balanced_and_normalised(off: float) -> None:
    usable = _usable()
    mw = mask_weights(GEOM, PATTERN, *_tan(off), usable=usable)
    w, f = mw.weights, mw.illumination
    assert np.all(w[~usable] == 0)
    scale = np.abs(w).sum()
    # balanced against the flat and the CXB templates over the usable pixels
    assert abs(w.sum()) < 1e-12 * scale
    cxb = diffuse_illumination(GEOM, PATTERN)
    assert abs(np.sum(w * cxb)) < 1e-12 * scale * cxb.max()
    # weighted counts of the source = its counts on the usable plane
    lit = float(np.sum(f * usable))
    assert mw.norm == pytest.approx(lit, rel=1e-12)
    assert mw.lit_pixels == pytest.approx(lit, rel=1e-12)
    assert mw.coding_fraction == pytest.approx(lit / (GEOM.open_fraction * usable.sum()))
    assert mw.n_templates == 2


def test_flat_only_weights_are_illumination_minus_its_mean() -> None:
    usable = _usable(1)
    mw = mask_weights(GEOM, PATTERN, *_tan(20.0), usable=usable, templates=[np.ones(GEOM.shape)])
    f = mw.illumination[usable]
    d = f - f.mean()
    expected = d * f.sum() / np.sum(d * f)
    np.testing.assert_allclose(mw.weights[usable], expected, rtol=1e-10, atol=1e-12)
    assert mw.n_templates == 1


@pytest.mark.parametrize("off", [5.0, 32.0])
def test_background_weighted_counts_are_consistent_with_zero(off: float) -> None:
    """Flat + CXB-shaped Poisson backgrounds: weighted sums / sqrt(sum w^2 n) ~ N(0, 1)."""
    rng = np.random.default_rng(7)
    usable = _usable(2)
    mw = mask_weights(GEOM, PATTERN, *_tan(off), usable=usable)
    cxb = default_templates(GEOM, PATTERN)[1]
    mean_map = 0.5 + 3.0 * cxb  # counts per pixel: instrumental + CXB
    n_draws = 400
    pulls = np.empty(n_draws)
    for k in range(n_draws):
        n = rng.poisson(mean_map)
        pulls[k] = np.sum(mw.weights * n) / np.sqrt(np.sum(mw.weights**2 * n))
    # mean within 4 standard errors of 0, width within 4 standard errors of 1
    assert abs(pulls.mean()) < 4 / np.sqrt(n_draws), pulls.mean()
    assert abs(pulls.std() - 1.0) < 4 / np.sqrt(2 * n_draws), pulls.std()


def test_flat_only_weights_leave_a_cxb_residual_off_axis() -> None:
    """Why the CXB template is there: flat balancing alone does not cancel the CXB shadow."""
    cxb = default_templates(GEOM, PATTERN)[1]
    flat = mask_weights(GEOM, PATTERN, *_tan(30.0), templates=[np.ones(GEOM.shape)])
    both = mask_weights(GEOM, PATTERN, *_tan(30.0))
    # residual per CXB count on the plane, as a fraction of the source normalisation
    r_flat = abs(np.sum(flat.weights * cxb)) / flat.norm
    r_both = abs(np.sum(both.weights * cxb)) / both.norm
    assert r_flat > 5e-3
    assert r_both < 1e-12


def test_event_weights_and_weighted_spectrum_match_a_loop() -> None:
    rng = np.random.default_rng(3)
    mw = mask_weights(GEOM, PATTERN, *_tan(15.0), usable=_usable(4))
    n = 5000
    y = rng.integers(0, GEOM.npix_y, n)
    z = rng.integers(0, GEOM.npix_z, n)
    ch = rng.integers(0, 40, n)
    w = event_weights(mw, y, z)
    counts, var = weighted_spectrum(ch, w, 40)
    ref_c = np.zeros(40)
    ref_v = np.zeros(40)
    for yi, zi, ci in zip(y, z, ch, strict=True):
        wi = mw.weights[yi, zi]
        ref_c[ci] += wi
        ref_v[ci] += wi * wi
    np.testing.assert_allclose(counts, ref_c, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(var, ref_v, rtol=1e-12)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(InputDataError, match="outside the field"):
        mask_weights(GEOM, PATTERN, 3.0, 3.0)
    with pytest.raises(InputDataError, match="no usable detector pixel"):
        mask_weights(GEOM, PATTERN, 0.0, 0.0, usable=np.zeros(GEOM.shape, dtype=bool))
    with pytest.raises(InputDataError, match="behind the detector plane"):
        mask_weights(GEOM, PATTERN, float("nan"), 0.0)
    with pytest.raises(InputDataError, match="coding fraction"):
        mask_weights(GEOM, PATTERN, *_tan(43.0), min_coding=0.5)
    with pytest.raises(InputDataError, match="shape"):
        mask_weights(GEOM, PATTERN, 0.0, 0.0, usable=np.ones((4, 4), dtype=bool))
    mw = mask_weights(GEOM, PATTERN, 0.0, 0.0)
    with pytest.raises(InputDataError, match="outside the"):
        event_weights(mw, np.array([80]), np.array([0]))
    with pytest.raises(InputDataError, match="channel index"):
        weighted_spectrum(np.array([5]), np.array([1.0]), 5)
