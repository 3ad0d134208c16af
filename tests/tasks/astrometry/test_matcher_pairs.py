"""The point matcher on aligned, shifted, rotated and crowded pairs (galaxy fields too)."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.errors import InputDataError
from svomflow.tasks.astrometry.match import match_points


def _field(n: int, seed: int, size: float = 2048.0):
    """Star positions and magnitudes (a power-law luminosity function), brightest first."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, size, (n, 2))
    mag = 14 + 8 * rng.power(3.0, n)
    order = np.argsort(mag)
    return xy[order], mag[order], rng


def _pair(n, seed, *, shift=(0.0, 0.0), angle_deg=0.0, jitter=0.15, common=0.8, mag_noise=0.5):
    """Two lists of one field: different depths and noisy magnitudes (a different order)."""
    xy, mag, rng = _field(n, seed)
    keep1 = rng.uniform(size=n) < common
    keep2 = rng.uniform(size=n) < common
    a = np.exp(1j * np.radians(angle_deg))
    z = a * ((xy[:, 0] - 1024) + 1j * (xy[:, 1] - 1024)) + 1024 + complex(*shift)
    xy2 = np.column_stack([z.real, z.imag]) + rng.normal(0, jitter, (n, 2))
    xy1 = xy + rng.normal(0, jitter, (n, 2))
    m1 = mag + rng.normal(0, mag_noise, n)
    m2 = mag + rng.normal(0, mag_noise, n)
    i1 = np.flatnonzero(keep1)[np.argsort(m1[keep1])]
    i2 = np.flatnonzero(keep2)[np.argsort(m2[keep2])]
    return xy1[i1], xy2[i2], i1, i2


@pytest.mark.parametrize(
    ("n", "shift", "angle", "jitter"),
    [
        (400, (0.0, 0.0), 0.0, 0.15),  # already aligned
        (3000, (0.0, 0.0), 0.0, 0.15),  # aligned, crowded
        (400, (37.2, -12.6), 0.0, 0.15),  # shifted
        (3000, (-250.0, 410.0), 0.0, 0.15),  # shifted, crowded
        (400, (5.0, 3.0), 20.0, 0.15),  # rotated
        (3000, (5.0, 3.0), 20.0, 0.15),  # rotated, crowded
        (1500, (5.0, 3.0), -7.0, 0.5),  # a galaxy field: extended sources, looser centroids
    ],
)
def test_matcher_recovers_the_transform(n, shift, angle, jitter):
    # Half the stars in common and magnitudes differing by 2 mag rms (another band, depth
    # or saturation): the brightest stars of the two lists are mostly different ones.
    xy1, xy2, i1, i2 = _pair(
        n, 4, shift=shift, angle_deg=angle, jitter=jitter, common=0.5, mag_noise=2.0
    )
    m = match_points(xy1, xy2, tolerance=3.0)
    assert m.transform.rotation_deg == pytest.approx(angle, abs=0.05)
    assert m.transform.scale == pytest.approx(1.0, abs=1e-3)
    # the matched pairs are the same stars, and most common stars are matched
    assert np.mean(i1[m.idx1] == i2[m.idx2]) > 0.95
    n_common = len(np.intersect1d(i1, i2))
    assert len(m.idx1) > 0.8 * n_common


def test_matcher_on_similar_lists():
    xy1, xy2, i1, i2 = _pair(400, 9, shift=(3.0, -2.0), angle_deg=90.0)
    m = match_points(xy1, xy2, tolerance=3.0)
    assert m.transform.rotation_deg == pytest.approx(90.0, abs=0.05)
    assert np.mean(i1[m.idx1] == i2[m.idx2]) > 0.95


def test_unrelated_lists_are_refused():
    xy1, _, _ = _field(300, 1)
    xy2, _, _ = _field(300, 2)
    with pytest.raises(InputDataError, match="do not match"):
        match_points(xy1, xy2, tolerance=1.0, min_matches=30)
