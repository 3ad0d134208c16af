"""Channel to energy per pixel: gain and offset of each pixel fitted on known lines.

Each pixel's spectrum (counts per raw ADC channel) holds lines of known energy (ground
calibration sources, or the instrumental background's fluorescence lines in flight; the
line list is configuration). For every pixel and line the step:

1. predicts the line's channel from the prior relation (the current ``PIXGAIN`` when the
   CALDB has one, else the nominal gain), corrected by the common gain change of the whole
   plane (:func:`plane_gain_scale`: all pixels summed on the prior's energy scale), and searches the highest (3-channel smoothed) bin
   within ``search_fraction`` of it, but never half-way to a neighbouring line;
2. measures the centroid in a window of +-``centroid_sigmas`` line widths around it, net of a
   linear background from two side bands, re-centring the window twice; its error is the
   Poisson error of that weighted mean (every count in the window, line and background);
3. fits ``E = gain * x + offset`` (``x`` the continuous ADC coordinate: channel ``i`` spans
   ``[i, i + 1)``) by weighted least squares over the lines with at least
   ``min_line_counts`` net counts.

A pixel with fewer than two usable lines, an unphysical gain, or lines that do not lie on a
straight line (chi-square per degree of freedom above ``max_chi2``) falls back to its
module's median gain and offset (of its well-fitted pixels), with ``fallback`` set and the
reason recorded; a module without enough well-fitted pixels falls back to the plane's
median. Everything is array arithmetic over the 6400 pixels at once (no per-pixel loop), so
no numba kernel is needed: a full plane takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import CalibrationOverride, StepConfig
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue import eic_calib as _declared  # noqa: F401  (PIXGAIN)
from svomflow.products.eic_calibration_files import PixelGain, PixelSpectra, pixel_gain_hdus
from svomflow.tasks.eic.gate import QCFigure
from svomflow.tasks.step import step

__all__ = [
    "GainCandidate",
    "GainFitConfig",
    "LineCentroids",
    "fit_pixel_gain",
    "gain_figures",
    "line_centroids",
    "pixel_gain",
    "plane_gain_scale",
    "plane_layout",
]


def plane_layout(
    ny: int, nz: int, module_shape: tuple[int, int]
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Return ``[Y, Z]`` arrays of each pixel's module (= ASIC) and its channel in the ASIC.

    Modules tile the plane ``module_shape[0]`` pixels along Y by ``module_shape[1]`` along Z,
    numbered along Z first; a module's pixels are read by one ASIC whose channels run along
    Z first (an assumption: one 32-channel ASIC per 8 x 4 module).
    """
    my, mz = module_shape
    if ny % my or nz % mz:
        raise ValueError(f"a {ny}x{nz} plane is not tiled by {my}x{mz} modules")
    yy, zz = np.meshgrid(np.arange(ny), np.arange(nz), indexing="ij")
    module = (yy // my) * (nz // mz) + zz // mz
    channel = (yy % my) * mz + zz % mz
    return module.astype(np.int32), channel.astype(np.int32)


class GainFitConfig(StepConfig):
    """Per-pixel gain fit: lines, search, acceptance and fallback."""

    lines_kev: dict[str, list[float]] = Field(
        default_factory=lambda: {"ground": [22.1, 59.54, 88.03], "flight": [23.17, 27.47, 74.97]},
        description="Known line energies (keV) per calibration mode (the spectra file's "
        "CALMODE): ground calibration sources; in flight, assumed background lines",
    )
    nominal_gain_kev: float = Field(
        0.16, gt=0, description="Prior gain without a current PIXGAIN [keV/chan]"
    )
    nominal_offset_kev: float = Field(
        0.0, description="Prior offset without a current PIXGAIN [keV]"
    )
    search_fraction: float = Field(
        0.12,
        gt=0,
        description="Search a line within this fraction of its predicted channel (plus 6 channels)",
    )
    resolution_fwhm_kev_at_60: float = Field(1.6, gt=0, description="Line FWHM at 60 keV [keV]")
    resolution_noise_fwhm_kev: float = Field(0.8, ge=0, description="Noise term of the FWHM [keV]")
    centroid_sigmas: float = Field(
        2.0, gt=0, description="Centroid window half-width [line sigmas]"
    )
    min_line_counts: float = Field(50.0, ge=0, description="Net counts a line needs to be used")
    max_chi2: float = Field(
        25.0, gt=0, description="Largest chi-square per degree of freedom of the line fit"
    )
    global_search: float = Field(
        0.3,
        ge=0,
        lt=1,
        description="Search a common gain change of the whole plane since the prior within "
        "this fraction before the per-pixel search (0: off)",
    )
    max_gain_change: float = Field(
        0.3, gt=0, description="Largest relative departure of a fitted gain from the prior"
    )
    min_module_pixels: int = Field(
        4, ge=1, description="Well-fitted pixels a module needs to give its median"
    )
    module_shape: tuple[int, int] = Field((8, 4), description="Pixels per module along Y and Z")
    override_pixgain: CalibrationOverride = Field(
        None, description="PIXGAIN file used as the prior instead of the CALDB's"
    )

    def sigma_kev(self, energy: float) -> float:
        """Return the line width (keV, 1 sigma) at ``energy``."""
        c = (self.resolution_fwhm_kev_at_60**2 - self.resolution_noise_fwhm_kev**2) / 60.0
        return float(np.sqrt(self.resolution_noise_fwhm_kev**2 + c * max(energy, 0.0)) / 2.3548)


@dataclass(frozen=True)
class LineCentroids:
    """Per pixel and line: centroid (continuous ADC coordinate), its error, net counts."""

    energy_kev: NDArray[np.float64]  # [line]
    centroid: NDArray[np.float64]  # [Y, Z, line]
    error: NDArray[np.float64]  # [Y, Z, line]
    net: NDArray[np.float64]  # [Y, Z, line]


def _take(counts: NDArray[np.floating], idx: NDArray[np.int64]) -> NDArray[np.float64]:
    """``counts[y, z, idx[y, z, k]]`` for every pixel."""
    return np.take_along_axis(counts, idx, axis=-1).astype(np.float64)


def line_centroids(
    counts: NDArray[np.integer],
    prior_gain: NDArray[np.float64],
    prior_offset: NDArray[np.float64],
    energies: list[float],
    config: GainFitConfig,
) -> LineCentroids:
    """Measure every line's centroid in every pixel (see the module notes)."""
    c = np.asarray(counts, dtype=np.float64)
    ny, nz, n = c.shape
    k = len(energies)
    cen = np.full((ny, nz, k), np.nan)
    err = np.full((ny, nz, k), np.nan)
    net = np.zeros((ny, nz, k))
    smooth = c.copy()
    smooth[..., 1:-1] = (c[..., :-2] + c[..., 1:-1] + c[..., 2:]) / 3.0
    for i, energy in enumerate(energies):
        pred = (energy - prior_offset) / prior_gain - 0.5
        half = np.ceil(config.search_fraction * np.abs(pred) + 6).astype(np.int64)
        others = [e for e in energies if e != energy]
        if others:
            # never reach half-way to a neighbouring line (a stronger one would be taken)
            gap = min(abs(e - energy) for e in others) / prior_gain
            half = np.minimum(half, np.floor(0.5 * gap).astype(np.int64))
        width = int(half.max())
        offs = np.arange(-width, width + 1)
        idx = np.clip(np.round(pred).astype(np.int64)[..., None] + offs, 0, n - 1)
        window = _take(smooth, idx)
        window[np.abs(offs)[None, None, :] > half[..., None]] = -1.0
        peak = np.take_along_axis(idx, window.argmax(axis=-1)[..., None], axis=-1)[..., 0]
        sig_ch = config.sigma_kev(energy) / prior_gain
        h = np.maximum(np.ceil(config.centroid_sigmas * sig_ch).astype(np.int64), 2)
        hw = int(h.max())
        centre = peak.astype(np.float64) + 0.5
        for _ in range(3):
            mid = np.floor(centre).astype(np.int64)
            o = np.arange(-2 * hw, 2 * hw + 1)
            j = mid[..., None] + o
            valid = (j >= 0) & (j < n)
            vals = _take(c, np.clip(j, 0, n - 1)) * valid
            inside = np.abs(o)[None, None, :] <= h[..., None]
            side_l = (o[None, None, :] < -h[..., None]) & (o[None, None, :] >= -2 * h[..., None])
            side_r = (o[None, None, :] > h[..., None]) & (o[None, None, :] <= 2 * h[..., None])
            bl = (vals * side_l).sum(-1) / np.maximum((side_l & valid).sum(-1), 1)
            br = (vals * side_r).sum(-1) / np.maximum((side_r & valid).sum(-1), 1)
            # linear background through the side-band means (at -1.5 h and +1.5 h)
            slope = (br - bl) / (3.0 * h)
            bg = 0.5 * (bl + br)[..., None] + slope[..., None] * o[None, None, :]
            w = np.where(inside & valid, vals - bg, 0.0)
            tot = w.sum(-1)
            x = j + 0.5
            with np.errstate(invalid="ignore", divide="ignore"):
                new = (w * x).sum(-1) / tot
            ok = np.isfinite(new) & (tot > 0)
            centre = np.where(ok, new, centre)
        cen[..., i] = centre
        net[..., i] = tot
        # Poisson variance of every bin in the window (line and background counts alike)
        var = (np.where(inside & valid, vals, 0.0) * (x - centre[..., None]) ** 2).sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            err[..., i] = np.sqrt(var) / np.maximum(tot, 1e-9)
    return LineCentroids(np.asarray(energies, dtype=np.float64), cen, err, net)


def _weighted_line(
    x: NDArray[np.float64], sx: NDArray[np.float64], e: NDArray[np.float64], use: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], ...]:
    """Fit ``e = g x + o`` per pixel (errors on x, propagated with the prior slope)."""
    x = np.where(use, x, 0.0)
    # errors in energy units: sigma_E = g sigma_x, with g from an unweighted first pass
    n = use.sum(-1)
    mx = np.where(n > 0, x.sum(-1) / np.maximum(n, 1), 0.0)
    me = np.where(n > 0, (e * use).sum(-1) / np.maximum(n, 1), 0.0)
    sxx = (use * (x - mx[..., None]) ** 2).sum(-1)
    g0 = np.where(
        sxx > 0,
        (use * (x - mx[..., None]) * (e - me[..., None])).sum(-1) / np.where(sxx > 0, sxx, 1.0),
        np.nan,
    )
    w = np.where(use, 1.0 / np.maximum((np.abs(g0)[..., None] * sx) ** 2, 1e-12), 0.0)
    w = np.where(np.isfinite(w), w, 0.0)
    s = w.sum(-1)
    sx_ = (w * x).sum(-1)
    se = (w * e).sum(-1)
    sxx_ = (w * x * x).sum(-1)
    sxe = (w * x * e).sum(-1)
    det = s * sxx_ - sx_**2
    with np.errstate(invalid="ignore", divide="ignore"):
        g = (s * sxe - sx_ * se) / det
        o = (sxx_ * se - sx_ * sxe) / det
        gerr = np.sqrt(s / det)
        oerr = np.sqrt(sxx_ / det)
        cov = -sx_ / det
        resid = np.where(use, e - (g[..., None] * x + o[..., None]), 0.0)
        chi2 = (w * resid**2).sum(-1) / np.maximum(n - 2, 1)
    return g, o, gerr, oerr, cov, chi2


def plane_gain_scale(
    counts: NDArray[np.integer],
    prior_gain: NDArray[np.float64],
    prior_offset: NDArray[np.float64],
    energies: list[float],
    search: float,
) -> float:
    """Return the common factor by which the gains moved since the prior (whole plane).

    Every pixel's counts are put on the prior's energy scale and summed; a line of energy
    ``E`` then sits at ``E / r`` when the gains grew by ``r``. The factor maximises the
    summed (0.25 keV binned, 3-bin smoothed) spectrum at the lines' places over
    ``1 +- search`` in steps of 0.1 %; 1 when the search is off (``search`` = 0).
    """
    if search <= 0:
        return 1.0
    c = np.asarray(counts, dtype=np.float64)
    n = c.shape[-1]
    e_mid = prior_gain[..., None] * (np.arange(n) + 0.5) + prior_offset[..., None]
    top = max(energies) * (1.0 + search) + 5.0
    edges = np.arange(0.0, top + 0.25, 0.25)
    summed, _ = np.histogram(e_mid.ravel(), bins=edges, weights=c.ravel())
    smooth = np.convolve(summed, np.ones(3) / 3.0, mode="same")
    ratios = np.arange(1.0 - search, 1.0 + search + 1e-9, 0.001)
    where = np.asarray(energies)[None, :] / ratios[:, None]
    idx = np.clip(np.searchsorted(edges, where) - 1, 0, smooth.size - 1)
    score = smooth[idx].sum(axis=1)
    # gains grew by r: the line search starts from prior * r
    return float(ratios[int(np.argmax(score))])


def fit_pixel_gain(
    spectra: PixelSpectra,
    config: GainFitConfig,
    prior: PixelGain | None = None,
) -> PixelGain:
    """Fit gain and offset of every pixel; fall back to the module's where a pixel is poor."""
    if spectra.mode not in config.lines_kev:
        raise ValueError(f"no lines configured for calibration mode {spectra.mode!r}")
    energies = sorted(config.lines_kev[spectra.mode])
    ny, nz = spectra.shape
    module, _ = plane_layout(ny, nz, config.module_shape)
    if prior is not None:
        g_prior, o_prior = prior.gain, prior.offset
    else:
        g_prior = np.full((ny, nz), config.nominal_gain_kev)
        o_prior = np.full((ny, nz), config.nominal_offset_kev)
    scale = plane_gain_scale(spectra.counts, g_prior, o_prior, energies, config.global_search)
    g_prior = g_prior * scale
    lc = line_centroids(spectra.counts, g_prior, o_prior, energies, config)
    use = (lc.net >= config.min_line_counts) & np.isfinite(lc.centroid)
    n_lines = use.sum(-1)
    g, o, gerr, oerr, cov, chi2 = _weighted_line(
        lc.centroid, lc.error, lc.energy_kev[None, None, :], use
    )
    reason = np.full((ny, nz), "", dtype="<U60")
    reason[n_lines < 2] = "fewer than 2 lines with enough counts"
    bad_gain = (n_lines >= 2) & ~(np.abs(g / g_prior - 1.0) <= config.max_gain_change)
    reason[bad_gain] = "gain far from the prior"
    bad_fit = (n_lines >= 3) & ~bad_gain & ~(chi2 <= config.max_chi2)
    reason[bad_fit] = "lines not on a straight line"
    fallback = reason != ""
    good = ~fallback
    plane_g = float(np.median(g[good])) if good.any() else float(np.median(g_prior))
    plane_o = float(np.median(o[good])) if good.any() else float(np.median(o_prior))
    plane_gs = float(np.std(g[good])) if good.sum() > 1 else 0.0
    plane_os = float(np.std(o[good])) if good.sum() > 1 else 0.0
    g_out, o_out = g.copy(), o.copy()
    for m in np.unique(module[fallback]):
        here = module == m
        donors = here & good
        fix = here & fallback
        if donors.sum() >= config.min_module_pixels:
            g_out[fix] = np.median(g[donors])
            o_out[fix] = np.median(o[donors])
            gerr[fix] = np.std(g[donors])
            oerr[fix] = np.std(o[donors])
            cov[fix] = np.cov(g[donors], o[donors])[0, 1]
            why = f"module {m} median of {int(donors.sum())} pixels"
        else:
            g_out[fix], o_out[fix], gerr[fix], oerr[fix] = plane_g, plane_o, plane_gs, plane_os
            cov[fix] = 0.0
            why = f"plane median (module {m} has {int(donors.sum())} good pixels)"
        reason[fix] = np.char.add(np.char.add(reason[fix], ": "), why)
    return PixelGain(
        gain=g_out,
        offset=o_out,
        gain_err=gerr,
        offset_err=oerr,
        gain_offset_cov=np.where(np.isfinite(cov), cov, 0.0),
        n_lines=n_lines.astype(np.int16),
        fallback=fallback,
        reason=reason,
        module=module,
    )


def gain_figures(table: PixelGain, lines_kev: list[float]) -> list[QCFigure]:
    """Return the QC figures of a gain table (what the promotion gate judges)."""
    good = ~table.fallback
    ref = 59.54 if 59.54 >= min(lines_kev) else float(np.median(lines_kev))
    return [
        QCFigure("median_gain", float(np.median(table.gain)), "keV/chan"),
        QCFigure("gain_spread", float(np.std(table.gain) / np.median(table.gain)), ""),
        QCFigure("median_offset", float(np.median(table.offset)), "keV"),
        QCFigure("fallback_fraction", float(table.fallback.mean()), ""),
        QCFigure(
            "median_error_60kev",
            float(np.median(table.energy_error(ref)[good])) if good.any() else float("nan"),
            "keV",
        ),
    ]


@dataclass
class GainCandidate:
    """A fitted gain table, its QC figures and its product (``PIXGAIN``)."""

    table: PixelGain
    figures: list[QCFigure]
    products: list[Product]


@step(name="pixel-gain", config=GainFitConfig, calibration=("PIXGAIN",), outputs=("PIXGAIN",))
def pixel_gain(
    spectra: PixelSpectra,
    telescope: str,
    instrument: str,
    *,
    config: GainFitConfig,
    calibration: CalibrationSet,
) -> GainCandidate:
    """Fit the per-pixel gain table, with the current ``PIXGAIN`` (if any) as the prior."""
    prior = calibration.optional("eclairs", "PIXGAIN")
    table = fit_pixel_gain(spectra, config, prior if isinstance(prior, PixelGain) else None)
    hdus = pixel_gain_hdus(table, telescope=telescope, instrument=instrument)
    figures = gain_figures(table, config.lines_kev[spectra.mode])
    return GainCandidate(table, figures, [Product("PIXGAIN", "ECL", FitsModel.from_hdus(hdus))])
