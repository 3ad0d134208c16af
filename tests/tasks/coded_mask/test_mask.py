"""Mask geometry, pattern and the shadow model against brute-force ray tracing."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.config import load_instrument
from svomflow.errors import ConfigError
from svomflow.instruments.coded_mask import (
    MaskGeometry,
    cos_theta,
    diffuse_illumination,
    mask_pattern,
    pixel_grid_mask,
    shadow,
)

ECL = MaskGeometry.from_instrument(load_instrument("eclairs"))
# A small geometry whose element (2.5 mm) is not a multiple of the pixel (1 mm): the model
# must not rely on aligned shadows.
SMALL = MaskGeometry(
    npix_y=6,
    npix_z=5,
    pitch_mm=1.0,
    n_elements=7,
    element_mm=2.5,
    height_mm=20.0,
    open_fraction=0.4,
    pattern_seed=3,
)


def test_pattern_is_reproducible_with_exact_open_fraction() -> None:
    a = mask_pattern(ECL)
    b = mask_pattern(ECL)
    assert a.shape == (46, 46)
    assert np.array_equal(a, b)
    assert a.sum() == round(0.40 * 46 * 46)
    other = MaskGeometry(**{**ECL.__dict__, "pattern_seed": ECL.pattern_seed + 1})
    assert not np.array_equal(a, mask_pattern(other))


def test_geometry_gives_the_field_of_view_and_rejects_bad_numbers() -> None:
    half = (ECL.npix_y * ECL.pitch_mm + ECL.n_elements * ECL.element_mm) / 2
    assert 2 * np.degrees(np.arctan(half / ECL.height_mm)) == pytest.approx(89.0, abs=1.0)
    with pytest.raises(ConfigError):
        MaskGeometry(80, 80, 4.0, 46, 12.0, -1.0, 0.4, 1)
    with pytest.raises(ConfigError):
        MaskGeometry(80, 80, 4.0, 46, 12.0, 445.0, 1.2, 1)


def _ray_trace(geom: MaskGeometry, pattern: np.ndarray, ty: float, tz: float, n: int = 400):
    """Fraction of a fine grid of points in each pixel whose ray crosses an open element."""
    frac = np.zeros(geom.shape)
    sub = (np.arange(n) + 0.5) / n
    ey, ez = geom.pixel_edges(0), geom.pixel_edges(1)
    half = geom.n_elements * geom.element_mm / 2
    for i in range(geom.npix_y):
        py = ey[i] + sub * geom.pitch_mm + geom.height_mm * ty
        ay = np.floor((py + half) / geom.element_mm).astype(int)
        iny = (ay >= 0) & (ay < geom.n_elements)
        for j in range(geom.npix_z):
            pz = ez[j] + sub * geom.pitch_mm + geom.height_mm * tz
            az = np.floor((pz + half) / geom.element_mm).astype(int)
            inz = (az >= 0) & (az < geom.n_elements)
            ok = iny[:, None] & inz[None, :]
            op = np.zeros(ok.shape, bool)
            op[ok] = pattern[
                np.clip(ay, 0, geom.n_elements - 1)[:, None].repeat(n, 1)[ok],
                np.clip(az, 0, geom.n_elements - 1)[None, :].repeat(n, 0)[ok],
            ]
            frac[i, j] = op.mean()
    return frac


@pytest.mark.parametrize("ty,tz", [(0.0, 0.0), (0.0731, -0.1903), (0.31, 0.22), (-0.6, 0.45)])
def test_shadow_matches_ray_tracing(ty: float, tz: float) -> None:
    pattern = mask_pattern(SMALL)
    exact = shadow(SMALL, pattern, ty, tz)
    traced = _ray_trace(SMALL, pattern, ty, tz)
    # midpoint sampling of a piecewise-constant map: error <= 2 edges * (1/n) per axis
    assert np.abs(exact - traced).max() <= 2 * 2 / 400 + 1e-12


def test_shadow_partial_coding_and_outside_the_field() -> None:
    pattern = mask_pattern(ECL)
    on = shadow(ECL, pattern, 0.0, 0.0)
    assert on.sum() / on.size == pytest.approx(0.40, abs=0.03)  # local open fraction
    # beyond the zero-coding edge every line of sight hits the shield
    edge = (ECL.npix_y * ECL.pitch_mm + ECL.n_elements * ECL.element_mm) / 2 / ECL.height_mm
    assert shadow(ECL, pattern, edge * 1.01, 0.0).sum() == 0.0
    # half-way out the plane is only partly illuminated
    part = shadow(ECL, pattern, 0.75 * edge, 0.0)
    assert 0.05 * on.sum() < part.sum() < 0.6 * on.sum()
    assert cos_theta(0.0, 0.0) == 1.0
    assert cos_theta(1.0, 0.0) == pytest.approx(np.cos(np.pi / 4))


def test_integer_shifts_are_windows_and_fractional_shifts_interpolate() -> None:
    pattern = mask_pattern(ECL)
    grid = pixel_grid_mask(ECL, pattern)
    i = np.arange(ECL.npix_y)[:, None]
    j = np.arange(ECL.npix_z)[None, :]
    for sy, sz in [(0, 0), (5, -7), (-29, 29)]:
        sh = shadow(ECL, pattern, ECL.shift_to_tan(sy), ECL.shift_to_tan(sz))
        win = grid.values[i + sy - grid.k0_y, j + sz - grid.k0_z]
        assert np.array_equal(sh, win)
    # pixel-size cells: a fractional shift is the bilinear mix of the integer shadows
    f = 0.3
    sh = shadow(ECL, pattern, ECL.shift_to_tan(5 + f), ECL.shift_to_tan(-7))
    a = shadow(ECL, pattern, ECL.shift_to_tan(5), ECL.shift_to_tan(-7))
    b = shadow(ECL, pattern, ECL.shift_to_tan(6), ECL.shift_to_tan(-7))
    assert np.allclose(sh, (1 - f) * a + f * b, atol=1e-12)


def test_diffuse_illumination_matches_direct_sum() -> None:
    pattern = mask_pattern(SMALL)
    got = diffuse_illumination(SMALL, pattern)
    # direct sum over a fine grid of directions of shadow * cos(theta) dOmega / pi
    step = 0.02
    t = np.arange(-1.2, 1.2 + step / 2, step)
    ty, tz = np.meshgrid(t, t, indexing="ij")
    w = step * step / (1 + ty**2 + tz**2) ** 2
    ref = np.tensordot(w, shadow(SMALL, pattern, ty, tz), axes=2) / np.pi
    assert np.allclose(got, ref, rtol=0.01)
    ecl = diffuse_illumination(ECL, mask_pattern(ECL))
    # central pixels see more of the mask than corner pixels
    assert ecl[40, 40] > ecl[0, 0]
