"""MXT source detection: stage 1 (candidates), the stage-2 driver and the sky conversion.

Stage 1: the counts image in detector coordinates is smoothed with the PSF (matched
filter); local maxima whose significance over the background exceeds a threshold are
candidates; each candidate gets a single-source Cash fit of the PSF model in a window of the
summed image (the "histogram fit") -> initial position, local background and source counts.
Stage 2 (:mod:`svomflow.tasks.xray.mlfit`): joint ML fit over the energy-band images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from scipy import ndimage, signal
from svomflow.config.base import StepConfig
from svomflow.tasks.attitude import Attitude
from svomflow.tasks.xray.mlfit import GroupFit, fit_group, fit_sources
from svomflow.tasks.xray.psf import PSFModel

__all__ = [
    "Candidate",
    "DetectConfig",
    "SourceRecord",
    "band_images",
    "detect_sources",
    "find_candidates",
    "pixel_to_sky",
    "sky_to_pixel",
]


class DetectConfig(StepConfig):
    """Settings of the two detection stages."""

    threshold_sigma: float = Field(5.0, description="Stage-1 peak significance threshold (sigma)")
    max_candidates: int = Field(20, description="At most this many stage-1 candidates")
    peak_footprint_pix: int = Field(9, description="Local-maximum footprint (pixels, odd)")
    kernel_half_size_pix: int = Field(
        40, description="Half size of the matched-filter kernel (pixels)"
    )
    window_half_size_pix: int = Field(50, description="Fit window padding around sources (pixels)")
    group_distance_pix: float = Field(
        90.0, description="Sources closer than this are fitted together (pixels)"
    )
    min_counts: float = Field(5.0, description="Minimum stage-1 source counts of a candidate")
    merge_distance_pix: float = Field(
        4.0, description="Stage-1 fits closer than this are one source (pixels)"
    )
    ml_threshold: float = Field(
        10.0, description="Minimum detection likelihood ML = -ln P to keep a source"
    )


@dataclass
class Candidate:
    """A stage-1 candidate with its histogram-fit estimates."""

    x: float
    y: float
    counts: float
    background: float
    significance: float


@dataclass
class SourceRecord:
    """A detected source: detector and sky positions, error, counts, likelihood."""

    x: float
    y: float
    ra_deg: float
    dec_deg: float
    r90_arcsec: float
    counts: float
    counts_err: float
    band_counts: NDArray[np.float64]
    band_counts_err: NDArray[np.float64]
    ml: float
    rate: float
    rate_err: float
    group: int


def band_images(
    x: NDArray[np.int64],
    y: NDArray[np.int64],
    energy: NDArray[np.float64],
    bands: list[tuple[float, float]],
    shape: tuple[int, int],
) -> NDArray[np.float64]:
    """Return counts images (n_bands, ny, nx) of events in each energy band."""
    ny, nx = shape
    out = np.zeros((len(bands), ny, nx))
    for b, (lo, hi) in enumerate(bands):
        sel = (energy >= lo) & (energy < hi)
        out[b] = np.bincount(y[sel] * nx + x[sel], minlength=nx * ny).reshape(ny, nx)
    return out


def find_candidates(
    image: NDArray[np.float64], psf: PSFModel, cfg: DetectConfig
) -> list[Candidate]:
    """Return stage-1 candidates: matched-filter peaks refined by single-source PSF fits."""
    ny, nx = image.shape
    h = cfg.kernel_half_size_pix
    edges = np.arange(-h, h + 2, dtype=np.float64) - 0.5
    kern = psf.pixels(0.0, 0.0, edges, edges)[0]
    kern /= kern.sum()
    smooth = signal.fftconvolve(image, kern, mode="same")
    # background per pixel: mean of the image after removing the brightest smoothed regions
    mask = smooth > np.percentile(smooth, 75)
    bkg = max(float(image[~mask].mean()), 0.5 / image.size)
    sigma = np.sqrt(bkg * float((kern**2).sum()))
    signif = (smooth - bkg) / sigma
    peaks = (smooth == ndimage.maximum_filter(smooth, size=cfg.peak_footprint_pix)) & (
        signif > cfg.threshold_sigma
    )
    jj, ii = np.nonzero(peaks)
    order = np.argsort(-signif[jj, ii])[: cfg.max_candidates]
    cands: list[Candidate] = []
    img1 = image[None].astype(np.float64)
    for k in order:
        x0, y0 = ii[k] + 0.5, jj[k] + 0.5
        hw = cfg.window_half_size_pix
        win = (
            int(max(x0 - hw, 0)),
            int(min(x0 + hw, nx)),
            int(max(y0 - hw, 0)),
            int(min(y0 + hw, ny)),
        )
        sub = image[win[2] : win[3], win[0] : win[1]]
        n0 = max(float(sub.sum()) - bkg * sub.size, 5.0)
        fit = fit_group(
            img1,
            psf,
            np.array([[x0, y0]]),
            np.array([[n0]]),
            window=win,
            bkg_init=np.array([bkg]),
            compute_ml=False,
        )
        s = fit.sources[0]
        if s.counts[0] < cfg.min_counts:
            continue
        if any(math.hypot(s.x - c.x, s.y - c.y) < cfg.merge_distance_pix for c in cands):
            continue
        cands.append(
            Candidate(
                s.x, s.y, float(s.counts[0]), float(fit.background[0]), float(signif[jj[k], ii[k]])
            )
        )
    return cands


def pixel_to_sky(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    attitude: Attitude,
    pixel_scale_arcsec: float,
    shape: tuple[int, int],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return (ra, dec) in degrees of detector positions (RAWX along +Y, RAWY along +Z)."""
    ny, nx = shape
    scale = math.radians(pixel_scale_arcsec / 3600.0)
    return attitude.from_projected(
        (np.asarray(x) - nx / 2.0) * scale, (np.asarray(y) - ny / 2.0) * scale
    )


def sky_to_pixel(
    ra: Any, dec: Any, attitude: Attitude, pixel_scale_arcsec: float, shape: tuple[int, int]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return detector positions (x, y) in pixels of sky directions."""
    ny, nx = shape
    scale = math.radians(pixel_scale_arcsec / 3600.0)
    ty, tz = attitude.to_projected(ra, dec)
    return nx / 2.0 + np.asarray(ty) / scale, ny / 2.0 + np.asarray(tz) / scale


def detect_sources(
    images: NDArray[np.float64],
    psf: PSFModel,
    attitude: Attitude,
    *,
    pixel_scale_arcsec: float,
    exposure_s: float,
    cfg: DetectConfig | None = None,
    prior_xy: tuple[float, float] | None = None,
) -> tuple[list[SourceRecord], list[Candidate], list[GroupFit]]:
    """Run both detection stages on band images; return sources above the ML threshold.

    ``prior_xy`` (burst mode: the ECLAIRs position projected on the detector) adds a
    candidate at that position when stage 1 found none within the fit window, so a faint
    afterglow is always fitted and gets an ML value (kept only if above the threshold).
    """
    cfg = cfg or DetectConfig()
    _nb, ny, nx = images.shape
    total = images.sum(axis=0)
    cands = find_candidates(total, psf, cfg)
    xy = [(c.x, c.y) for c in cands]
    cnt = [c.counts for c in cands]
    if prior_xy is not None and 0 <= prior_xy[0] < nx and 0 <= prior_xy[1] < ny:
        if not any(
            math.hypot(x - prior_xy[0], y - prior_xy[1]) < cfg.merge_distance_pix * 3 for x, y in xy
        ):
            xy.append(prior_xy)
            cnt.append(5.0)
    if not xy:
        return [], cands, []
    xy_a = np.array(xy, dtype=np.float64)
    band_frac = images.sum(axis=(1, 2)) / max(images.sum(), 1.0)
    init = np.array(cnt)[:, None] * band_frac[None, :]
    bkg = np.array([c.background for c in cands]) if cands else np.array([total.mean()])
    bkg_pp = np.median(bkg) * band_frac
    fits = fit_sources(
        images, psf, xy_a, init, half_size=cfg.window_half_size_pix,
        group_distance=cfg.group_distance_pix, bkg_per_pixel=bkg_pp,
    )  # fmt: skip
    out = []
    for g in fits:
        for s in g.sources:
            if not (s.ml >= cfg.ml_threshold):
                continue
            ra, dec = pixel_to_sky(
                np.array(s.x), np.array(s.y), attitude, pixel_scale_arcsec, (ny, nx)
            )
            tot = float(s.counts.sum())
            err = float(np.sqrt(np.sum(s.counts_err**2)))
            out.append(
                SourceRecord(
                    x=s.x,
                    y=s.y,
                    ra_deg=float(ra),
                    dec_deg=float(dec),
                    r90_arcsec=float(s.r90_pix * pixel_scale_arcsec),
                    counts=tot,
                    counts_err=err,
                    band_counts=s.counts.copy(),
                    band_counts_err=s.counts_err.copy(),
                    ml=float(s.ml),
                    rate=tot / exposure_s if exposure_s > 0 else float("nan"),
                    rate_err=err / exposure_s if exposure_s > 0 else float("nan"),
                    group=s.group,
                )
            )
    out.sort(key=lambda r: -r.ml)
    return out, cands, fits
