"""Shadowgrams and sky images: counts per pixel -> balanced-correlation sky image with variance.

The sky image is the linear least-squares estimate, at every integer shadow shift, of the
counts of a point source on top of background templates (a flat instrumental term, the
cosmic-background exposure map, the shadows of known sources). With only the flat template
this is the classic *balanced correlation* with the decoding array ``G = U (P_s - f_s)``
(``f_s`` the mean open fraction seen by the usable pixels); the extra templates remove the
CXB's shadow structure and known sources before the search. Every term is a
cross-correlation of a detector array with the pixel-grid mask (FFT), so one image costs
about ten 256x256 FFTs. The variance map propagates the background model (the null
hypothesis) through the same linear estimator, so ``snr = counts / sqrt(variance)`` is a
significance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.instruments.coded_mask import (
    MaskGeometry,
    diffuse_illumination,
    mask_pattern,
    pixel_grid_mask,
    shadow,
)
from svomflow.instruments.correlation import Correlator
from svomflow.tasks.coded_mask._kernels import accumulate_shadowgram

__all__ = [
    "MaskModel",
    "Shadowgram",
    "SkyImage",
    "background_templates",
    "find_noisy_pixels",
    "fit_templates",
    "make_shadowgram",
    "sky_image",
]


@dataclass(frozen=True)
class MaskModel:
    """Geometry, pattern and the derived arrays that imaging reuses (built once per geometry)."""

    geometry: MaskGeometry
    pattern: NDArray[np.bool_]
    grid: NDArray[np.float64]
    k0_y: int
    k0_z: int
    cxb_map: NDArray[np.float64]
    correlator: Correlator
    correlator_sq: Correlator
    correlator_support: Correlator

    @staticmethod
    def from_geometry(geometry: MaskGeometry) -> MaskModel:
        """Return the (cached) mask model of a geometry."""
        return _mask_model(geometry)

    @property
    def shift_y(self) -> NDArray[np.int64]:
        """Integer shadow shifts along Y covered by the sky image."""
        return np.arange(self.k0_y - (self.geometry.npix_y - 1), self.k0_y + self.grid.shape[0])

    @property
    def shift_z(self) -> NDArray[np.int64]:
        """Integer shadow shifts along Z covered by the sky image."""
        return np.arange(self.k0_z - (self.geometry.npix_z - 1), self.k0_z + self.grid.shape[1])

    def source_shadow(self, tan_y: float, tan_z: float) -> NDArray[np.float64]:
        """Return the exact shadow (illuminated fraction per pixel) of a direction."""
        return shadow(self.geometry, self.pattern, tan_y, tan_z)


@cache
def _mask_model(geometry: MaskGeometry) -> MaskModel:
    pattern = mask_pattern(geometry)
    grid = pixel_grid_mask(geometry, pattern)
    return MaskModel(
        geometry=geometry,
        pattern=pattern,
        grid=grid.values,
        k0_y=grid.k0_y,
        k0_z=grid.k0_z,
        cxb_map=diffuse_illumination(geometry, pattern),
        correlator=Correlator(grid.values, geometry.shape),
        correlator_sq=Correlator(grid.values**2, geometry.shape),
        # a fully open mask of the same extent: which pixels' lines of sight hit the mask
        correlator_support=Correlator(
            pixel_grid_mask(geometry, np.ones_like(pattern)).values, geometry.shape
        ),
    )


@dataclass
class Shadowgram:
    """Counts per detector pixel in a band and time interval, with its background estimate.

    Attributes
    ----------
    counts
        Counts in the source interval, shape (ny, nz).
    usable
        Pixels used by imaging (not dead, not noisy).
    exposure_s
        Good time in the source interval.
    band_kev, interval
        Energy band and time interval of ``counts``.
    background
        Background counts per pixel scaled to the source interval (from a background
        interval), or None when the background is modelled by templates only.
    background_scale
        Ratio of source to background exposure (``background = scale * off_counts``), for the
        variance of the subtraction.
    """

    counts: NDArray[np.float64]
    usable: NDArray[np.bool_]
    exposure_s: float
    band_kev: tuple[float, float]
    interval: tuple[float, float]
    background: NDArray[np.float64] | None = None
    background_scale: float = 0.0

    def data_and_variance(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return the (background-subtracted) data and its Poisson variance per pixel."""
        if self.background is None:
            return self.counts, self.counts.astype(np.float64)
        return (
            self.counts - self.background,
            self.counts + self.background * self.background_scale,
        )


def _exposure(interval: tuple[float, float], gti: NDArray[np.float64] | None) -> float:
    a, b = interval
    if gti is None or np.size(gti) == 0:
        return float(b - a)
    g = np.asarray(gti, dtype=np.float64).reshape(-1, 2)
    return float(np.clip(np.minimum(g[:, 1], b) - np.maximum(g[:, 0], a), 0, None).sum())


def make_shadowgram(
    time: NDArray[np.float64],
    y: NDArray[np.integer],
    z: NDArray[np.integer],
    energy_kev: NDArray[np.floating],
    *,
    shape: tuple[int, int],
    band_kev: tuple[float, float],
    interval: tuple[float, float],
    background_interval: tuple[float, float] | Sequence[tuple[float, float]] | None = None,
    gti: NDArray[np.float64] | None = None,
    usable: NDArray[np.bool_] | None = None,
) -> Shadowgram:
    """Return the shadowgram of events in a band and interval (and a scaled background).

    ``background_interval`` may be one interval or several (e.g. before and after the burst);
    their counts are scaled by the ratio of good times (from ``gti``) to the source interval.
    """
    # the kernel's declared types (a column of a FITS table may be a strided view)
    time = np.ascontiguousarray(time, dtype=np.float64)
    e = np.ascontiguousarray(energy_kev, dtype=np.float64)
    yy = np.ascontiguousarray(y, dtype=np.int64)
    zz = np.ascontiguousarray(z, dtype=np.int64)
    if not (time.shape == e.shape == yy.shape == zz.shape):
        raise InputDataError("shadowgram: time, y, z and energy must have the same length")
    if not interval[1] > interval[0]:
        raise InputDataError(f"shadowgram: empty interval {interval}")
    ny, nz = shape
    counts = accumulate_shadowgram(
        yy, zz, time, e, interval[0], interval[1], band_kev[0], band_kev[1], ny, nz
    ).astype(np.float64)
    exposure = _exposure(interval, gti)
    if exposure <= 0:
        raise InputDataError(f"shadowgram: no good time in {interval}")
    use = np.ones(shape, dtype=bool) if usable is None else np.asarray(usable, dtype=bool).copy()
    if use.shape != tuple(shape):
        raise InputDataError(f"usable-pixel mask must have shape {tuple(shape)}")
    sg = Shadowgram(
        counts=counts,
        usable=use,
        exposure_s=exposure,
        band_kev=(float(band_kev[0]), float(band_kev[1])),
        interval=(float(interval[0]), float(interval[1])),
    )
    if background_interval is not None:
        bi = np.asarray(background_interval, dtype=np.float64).reshape(-1, 2)
        ivs = [(float(r[0]), float(r[1])) for r in bi]
        off = np.zeros(shape, dtype=np.float64)
        off_exp = 0.0
        for a, b in ivs:
            off += accumulate_shadowgram(
                yy, zz, time, e, float(a), float(b), band_kev[0], band_kev[1], ny, nz
            )
            off_exp += _exposure((float(a), float(b)), gti)
        if off_exp <= 0:
            raise InputDataError("shadowgram: the background interval has no good time")
        scale = exposure / off_exp
        sg.background = off * scale
        sg.background_scale = scale
    return sg


def background_templates(model: MaskModel) -> list[NDArray[np.float64]]:
    """Return the background templates: flat (instrumental) and CXB exposure map."""
    return [np.ones(model.geometry.shape), model.cxb_map / model.cxb_map.mean()]


def fit_templates(
    data: NDArray[np.float64],
    usable: NDArray[np.bool_],
    templates: Sequence[NDArray[np.float64]],
    weights: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Least-squares amplitudes of templates over usable pixels; return (amplitudes, model)."""
    u = np.asarray(usable, dtype=bool)
    a = np.stack([np.asarray(t, dtype=np.float64)[u] for t in templates], axis=1)
    b = np.asarray(data, dtype=np.float64)[u]
    if weights is not None:
        w = np.sqrt(np.asarray(weights, dtype=np.float64)[u])
        a, b = a * w[:, None], b * w
    amp, *_ = np.linalg.lstsq(a, b, rcond=None)
    model = np.tensordot(amp, np.stack(templates), axes=1)
    return amp, model


def find_noisy_pixels(
    counts: NDArray[np.float64],
    *,
    usable: NDArray[np.bool_] | None = None,
    templates: Sequence[NDArray[np.float64]] | None = None,
    max_sigma: float = 5.0,
    min_expected_dead: float = 10.0,
    iterations: int = 5,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Flag noisy and dead pixels from their counts over a long (background) interval.

    The expected counts per pixel come from a least-squares fit of the background templates
    (default: flat), refitted without the flagged pixels until stable. A pixel is noisy if
    its excess is above ``max_sigma`` Poisson sigmas (one-sided), dead if it has no count
    where at least ``min_expected_dead`` were expected (P < 5e-5).

    Returns
    -------
    noisy, dead
        Boolean maps of shape ``counts.shape``.
    """
    c = np.asarray(counts, dtype=np.float64)
    use = np.ones(c.shape, bool) if usable is None else np.asarray(usable, bool).copy()
    tpl = list(templates) if templates is not None else [np.ones(c.shape)]
    noisy = np.zeros(c.shape, bool)
    dead = np.zeros(c.shape, bool)
    for _ in range(iterations):
        ok = use & ~noisy & ~dead
        if ok.sum() < len(tpl) + 1:
            break
        _, model = fit_templates(c, ok, tpl)
        model = np.clip(model, 1e-9, None)
        new_noisy = use & ((c - model) / np.sqrt(model) > max_sigma)
        new_dead = use & (c == 0) & (model >= min_expected_dead)
        if np.array_equal(new_noisy, noisy) and np.array_equal(new_dead, dead):
            break
        noisy, dead = new_noisy, new_dead
    return noisy, dead


@dataclass
class SkyImage:
    """A sky image on the integer-shift grid: source counts, variance and S/N per position.

    ``counts[i, j]`` estimates the counts recorded from a point source whose shadow is
    shifted by ``(shift_y[i], shift_z[j])`` pixels, i.e. at projected angles
    ``(tan_y[i], tan_z[j])``. ``coding`` is the partial-coding fraction (the share of the
    usable plane whose line of sight crosses the mask, 1 in the fully coded field);
    ``valid`` marks positions that can be searched.
    """

    counts: NDArray[np.float64]
    variance: NDArray[np.float64]
    coding: NDArray[np.float64]
    valid: NDArray[np.bool_]
    shift_y: NDArray[np.int64]
    shift_z: NDArray[np.int64]
    tan_y: NDArray[np.float64]
    tan_z: NDArray[np.float64]
    template_amplitudes: NDArray[np.float64]

    @property
    def snr(self) -> NDArray[np.float64]:
        """Signal-to-noise map (zero where not valid)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            s = self.counts / np.sqrt(self.variance)
        return np.where(self.valid, s, 0.0)

    def peak(self) -> tuple[int, int, float]:
        """Return (i, j, snr) of the highest S/N valid position."""
        s = self.snr
        i, j = np.unravel_index(int(np.argmax(s)), s.shape)
        return int(i), int(j), float(s[i, j])


def sky_image(
    shadowgram: Shadowgram,
    model: MaskModel,
    *,
    known_sources: Sequence[tuple[float, float]] = (),
    extra_templates: Sequence[NDArray[np.float64]] = (),
    min_coding: float = 0.05,
) -> SkyImage:
    """Return the sky image of a shadowgram by balanced correlation with the mask (FFT).

    Parameters
    ----------
    shadowgram
        Counts (and optional background estimate) per pixel with the usable-pixel mask.
    model
        Mask model (:meth:`MaskModel.from_geometry`).
    known_sources
        Projected angles ``(tan_y, tan_z)`` of known sources: their exact shadows are fitted
        with the background and removed before the search.
    extra_templates
        More background templates (e.g. an Earth-limb exposure map).
    min_coding
        Positions seen by less than this fraction of the fully coded illumination are not
        valid (too few pixels to image them).
    """
    geom = model.geometry
    u = shadowgram.usable.astype(np.float64)
    if u.sum() < 10:
        raise InputDataError("sky image: fewer than 10 usable pixels")
    data, _ = shadowgram.data_and_variance()
    templates = background_templates(model) + [np.asarray(t, float) for t in extra_templates]
    templates += [model.source_shadow(ty, tz) for ty, tz in known_sources]

    # background (null-hypothesis) model for the variance: templates fitted to the data
    amp, bmodel = fit_templates(data, shadowgram.usable, templates)
    if shadowgram.background is None:
        var_null = np.clip(bmodel, 0.0, None)
    else:
        # subtracted data: Poisson variance of on + scaled off counts, under no source
        var_null = np.clip(shadowgram.background, 0.0, None) * (1.0 + shadowgram.background_scale)
    var_null = var_null * u

    # orthonormal templates over usable pixels (Gram-Schmidt with re-orthogonalisation)
    basis: list[NDArray[np.float64]] = []
    for t in templates:
        v = t * u
        for _ in range(2):
            for b in basis:
                v = v - np.sum(v * b) * b
        norm = np.sqrt(np.sum(v * v))
        if norm > 1e-9 * np.sqrt(np.sum((t * u) ** 2)) and norm > 0:
            basis.append(v / norm)

    resid = data * u
    for b in basis:
        resid = resid - np.sum(resid * b) * b
    corr, corr2 = model.correlator, model.correlator_sq
    num = corr(resid)
    pp = corr2(u)
    illum = corr(u)
    cks = [corr(b) for b in basis]
    denom = pp - sum(c * c for c in cks)
    vsum = corr2(var_null)
    for k, ck in enumerate(cks):
        vsum = vsum - 2.0 * ck * corr(var_null * basis[k])
        for m, cm in enumerate(cks):
            vsum = vsum + ck * cm * float(np.sum(var_null * basis[k] * basis[m]))

    coding = model.correlator_support(u) / float(u.sum())
    valid = (coding >= min_coding) & (denom > 1e-6 * max(float(denom.max()), 1e-12))
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(valid, num / denom, 0.0)
        var_a = np.where(valid, np.clip(vsum, 1e-12, None) / denom**2, np.inf)
        variance = np.where(valid, var_a * illum**2, np.inf)
    sy = model.shift_y
    sz = model.shift_z
    return SkyImage(
        counts=a * illum,
        variance=variance,
        coding=coding,
        valid=valid,
        shift_y=sy,
        shift_z=sz,
        tan_y=geom.shift_to_tan(sy),
        tan_z=geom.shift_to_tan(sz),
        template_amplitudes=amp,
    )
