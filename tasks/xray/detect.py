"""MXT source detection: stage 1 (candidates), the stage-2 driver and the sky conversion.

Stage 1: the counts image in detector coordinates is smoothed with the PSF (matched
filter); local maxima whose significance over the background exceeds a threshold are
candidates; each candidate gets a single-source Cash fit of the PSF model in a window of the
summed image (the "histogram fit") -> initial position, local background and source counts.
Stage 2 (:mod:`svomflow.tasks.xray.mlfit`): joint ML fit over the energy-band images.
Stage 3 (residual search, as XMM ``emldetect`` and eROSITA ``ermldet`` do): the fitted model
is subtracted, the residual is matched-filtered and its most significant peak near a fitted
source becomes a trial source; it is kept only if the joint re-fit of its group with the extra
source lowers C by a detection likelihood above the threshold, the new source is itself above
the threshold and stays further than a minimum distance from every other source. This
resolves pairs closer than the PSF core that the stage-1 filter sees as one peak, without
splitting isolated sources (the split test is the same likelihood-ratio test as a detection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from scipy import ndimage, signal
from svomflow.config.base import CalibrationOverride, StepConfig
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.mxt_calibration import PSFModel
from svomflow.tasks.xray.mlfit import (
    GroupFit,
    detection_likelihood,
    fit_group,
    fit_sources,
)
from svomflow.tasks.xray.psf_estimate import PSFEstimate, estimate_psf, on_cross

__all__ = [
    "Candidate",
    "DetectConfig",
    "Detection",
    "SourceRecord",
    "arm_sources",
    "band_images",
    "detect_field",
    "detect_sources",
    "find_candidates",
    "pixel_to_sky",
    "residual_search",
    "sky_to_pixel",
]


class DetectConfig(StepConfig):
    """Settings of the detection stages (candidates, ML fit, residual search)."""

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
    residual_search: bool = Field(
        True, description="Search the stage-2 residuals for further sources (crowded fields)"
    )
    residual_max_added: int = Field(
        4, ge=0, description="At most this many sources added by the residual search"
    )
    residual_max_tries: int = Field(
        4, ge=0, description="At most this many trial sources tested by the residual search"
    )
    residual_sigma: float = Field(
        3.0, description="Matched-filter residual significance (sigma) of a trial source"
    )
    residual_systematic: float = Field(
        0.05,
        ge=0,
        description="PSF shape uncertainty: this fraction of the sources' filtered model "
        "is added (in quadrature) to the noise of the residual significance",
    )
    r90_systematic_pix: float = Field(
        0.1,
        ge=0,
        description="Systematic position error of a fitted source, as a 90 % radius (pixels), "
        "added in quadrature to the statistical r90: the PSF-shape and pixel-centroid error "
        "that the Cash-statistic covariance does not hold (the PSF-mismatch Monte Carlo of "
        "docs/mxt.md: 0.78 of true positions inside the statistical r90, 0.93 with 0.1 pixel)",
    )
    residual_radius_pix: float = Field(
        45.0, description="Trial sources are searched within this distance of fitted ones (pixels)"
    )
    min_separation_pix: float = Field(
        8.0,
        description="An added source must be further than this from every other source (pixels)",
    )
    psf_self_calibration: bool = Field(
        True,
        description="Fit the PSF shape (core width, arm length, core and arm fractions) on "
        "the field's bright sources and use it instead of the CALDB's when the fit is "
        "significantly better",
    )
    psf_min_counts: float = Field(
        3000.0, gt=0, description="A source takes part in the PSF fit from this many counts"
    )
    psf_max_sources: int = Field(
        3, ge=1, description="At most this many bright sources take part in the PSF fit"
    )
    psf_min_delta_c: float = Field(
        25.0,
        ge=0,
        description="The fitted PSF replaces the CALDB's if it lowers C by at least this much",
    )
    arm_candidates: Literal["suppress", "flag", "keep"] = Field(
        "suppress",
        description="Sources on a brighter source's cross arms whose counts the arm's "
        "residual can explain: dropped (suppress), kept with ARM_OF set (flag), or kept",
    )
    arm_residual_fraction: float = Field(
        0.5,
        ge=0,
        description="An arm source is explained by the brighter source's arm if its counts "
        "are at most this fraction of that source's counts in one arm",
    )
    arm_reach: float = Field(
        4.0,
        gt=0,
        description="How far along the arms the rule applies, in fitted arm half-lengths",
    )
    override_psf: CalibrationOverride = Field(
        None,
        description="PSF file instead of the CALDB's (one PSF per run: products.override_psf "
        "must name the same file or be left empty)",
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
    arm_of: int = 0


def band_images(
    x: NDArray[np.int64],
    y: NDArray[np.int64],
    energy: NDArray[np.floating[Any]],
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


def _matched_kernel(psf: PSFModel, half: int) -> NDArray[np.float64]:
    """Return the PSF on a (2 half + 1)^2 pixel grid centred on a pixel, normalised to sum 1."""
    edges = np.arange(-half, half + 2, dtype=np.float64) - 0.5
    kern = psf.pixels(0.0, 0.0, edges, edges)[0]
    return kern / kern.sum()


def find_candidates(
    image: NDArray[np.float64], psf: PSFModel, cfg: DetectConfig
) -> list[Candidate]:
    """Return stage-1 candidates: matched-filter peaks refined by single-source PSF fits."""
    ny, nx = image.shape
    kern = _matched_kernel(psf, cfg.kernel_half_size_pix)
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


def _source_model(
    psf: PSFModel, x: float, y: float, counts: NDArray[np.float64], shape: tuple[int, int]
) -> NDArray[np.float64]:
    """Return the model counts (n_bands, ny, nx) of one source on the whole detector."""
    return counts[:, None, None] * psf.image(x, y, shape)[None]


def _min_distance(
    xx: NDArray[np.float64], yy: NDArray[np.float64], xy: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Return, per pixel centre (xx, yy), the distance to the nearest of the points ``xy``."""
    out = np.full(xx.shape, np.inf)
    for x, y in xy:
        np.minimum(out, np.hypot(xx - x, yy - y), out=out)
    return out


def _window(
    xy: NDArray[np.float64], half: int, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Return the fit window (x0, x1, y0, y1) padding the bounding box of ``xy`` by ``half``."""
    ny, nx = shape
    lo = np.floor(xy.min(axis=0)) - half
    hi = np.ceil(xy.max(axis=0)) + half
    return int(max(lo[0], 0)), int(min(hi[0], nx)), int(max(lo[1], 0)), int(min(hi[1], ny))


def residual_search(
    images: NDArray[np.float64],
    psf: PSFModel,
    fits: list[GroupFit],
    cfg: DetectConfig,
    bkg_per_pixel: NDArray[np.float64],
) -> tuple[list[GroupFit], int, int]:
    """Add sources found in the residuals of the stage-2 fits; return (fits, added, tried).

    Each iteration subtracts the current model (sources and group backgrounds), filters the
    summed residual with the PSF and takes its most significant peak within
    ``cfg.residual_radius_pix`` of a fitted source and beyond ``cfg.min_separation_pix`` of
    every source. The group of the nearest source is then fitted twice in the same window,
    with the other groups' models fixed: without (C0) and with (C1) the trial source, all
    positions free. The trial source is kept if ``-ln P(chi2_{2+nb} >= C0 - C1)``, its own
    detection likelihood and the likelihoods of the group's previous sources all reach
    ``cfg.ml_threshold``, the fit converged, and no two sources of the group are closer
    than ``cfg.min_separation_pix``; the accepted fit then replaces the group's. With
    ``cfg.arm_candidates == "suppress"`` a trial that :func:`arm_sources` would drop (on a
    brighter source's cross, counts its arm explains) is rejected without fitting. A rejected
    position is not tried again. Stops when no peak exceeds ``cfg.residual_sigma`` or the
    limits on added and tried sources are reached.
    """
    nb, ny, nx = images.shape
    shape = (ny, nx)
    fits = list(fits)
    if not fits or not cfg.residual_search:
        return fits, 0, 0
    kern = _matched_kernel(psf, cfg.kernel_half_size_pix)
    k2 = kern**2
    total = images.sum(axis=0)
    yy, xx = np.mgrid[0:ny, 0:nx] + 0.5
    rejected: list[tuple[float, float]] = []
    added = tried = 0
    while added < cfg.residual_max_added and tried < cfg.residual_max_tries:
        models = [[_source_model(psf, s.x, s.y, s.counts, shape) for s in g.sources] for g in fits]
        bkg_img = np.broadcast_to(np.asarray(bkg_per_pixel)[:, None, None], images.shape).copy()
        for g in fits:
            x0, x1, y0, y1 = g.window
            bkg_img[:, y0:y1, x0:x1] = g.background[:, None, None]
        src_model = np.zeros(shape)
        for m in (m for ms in models for m in ms):
            src_model += m.sum(axis=0)
        model = bkg_img.sum(axis=0) + src_model
        resid = signal.fftconvolve(total - model, kern, mode="same")
        # Poisson noise plus the PSF shape's systematic: near a bright source a fixed fraction
        # of its model is unexplained whatever the counts, which is no evidence of a source
        var = signal.fftconvolve(model, k2, mode="same")
        var += (cfg.residual_systematic * signal.fftconvolve(src_model, kern, mode="same")) ** 2
        var = np.maximum(var, 1e-12)
        signif = resid / np.sqrt(var)
        xy_all = np.array([(s.x, s.y) for g in fits for s in g.sources])
        # only detected sources (ML above threshold) anchor the search: the residual near a
        # sub-threshold stage-1 candidate is noise and refitting its group costs time
        xy_det = np.array(
            [(s.x, s.y) for g in fits for s in g.sources if s.ml >= cfg.ml_threshold]
        ).reshape(-1, 2)
        if len(xy_det) == 0:
            break
        allowed = (_min_distance(xx, yy, xy_det) <= cfg.residual_radius_pix) & (
            _min_distance(xx, yy, xy_all) > cfg.min_separation_pix
        )
        for rx, ry in rejected:
            allowed &= np.hypot(xx - rx, yy - ry) > cfg.min_separation_pix
        signif = np.where(allowed, signif, -np.inf)
        j, i = np.unravel_index(int(np.argmax(signif)), signif.shape)
        if not signif[j, i] >= cfg.residual_sigma:
            break
        tried += 1
        px, py = float(xx[j, i]), float(yy[j, i])
        # group of the nearest fitted source
        gi = int(np.argmin([min(math.hypot(s.x - px, s.y - py) for s in g.sources) for g in fits]))
        grp = fits[gi]
        fixed = sum(
            (m for k, ms in enumerate(models) if k != gi for m in ms), np.zeros(images.shape)
        )
        old_xy = np.array([(s.x, s.y) for s in grp.sources])
        old_n = np.array([s.counts for s in grp.sources])
        band_frac = np.maximum(old_n.sum(axis=0), 1e-3)
        band_frac /= band_frac.sum()
        n_new = max(float(resid[j, i] / k2.sum()), cfg.min_counts) * band_frac
        if cfg.arm_candidates == "suppress" and _explained_by_arm(
            px, py, n_new.sum(), fits, psf, cfg
        ):
            # the arm rule would drop it anyway: spare the group refits
            rejected.append((px, py))
            continue
        window = _window(np.vstack([old_xy, [[px, py]]]), cfg.window_half_size_pix, shape)
        h0 = fit_group(
            images, psf, old_xy, old_n, window=window, fixed=fixed, bkg_init=grp.background,
            compute_ml=False,
        )  # fmt: skip
        h1 = fit_group(
            images, psf, np.vstack([old_xy, [[px, py]]]), np.vstack([old_n, n_new]),
            window=window, fixed=fixed, bkg_init=grp.background, compute_ml=False,
        )  # fmt: skip
        dl = detection_likelihood(max(h0.cstat - h1.cstat, 0.0), 2 + nb)
        new_xy = np.array([(s.x, s.y) for s in h1.sources])
        sep = np.hypot(*(new_xy[:, None, :] - new_xy[None, :, :]).transpose(2, 0, 1))
        sep[np.diag_indices(len(new_xy))] = np.inf
        ok = (
            h1.converged
            and dl >= cfg.ml_threshold
            and h1.sources[-1].total_counts >= cfg.min_counts
            and float(sep.min()) > cfg.min_separation_pix
        )
        if ok:
            # the per-source likelihoods (refits without each source) only for a trial that
            # passed the cheap tests; the fit restarts at its own minimum
            n_eval = h0.n_eval + h1.n_eval
            h1 = fit_group(
                images, psf, new_xy, np.array([s.counts for s in h1.sources]), window=window,
                fixed=fixed, bkg_init=h1.background,
            )  # fmt: skip
            h1.n_eval += n_eval
            ok = h1.sources[-1].ml >= cfg.ml_threshold and all(
                s.ml >= cfg.ml_threshold or not (o.ml >= cfg.ml_threshold)
                for s, o in zip(h1.sources[:-1], grp.sources, strict=True)
            )
        if not ok:
            rejected.append((px, py))
            continue
        for s in h1.sources:
            s.group = grp.sources[0].group
        h1.messages.append(f"residual search: source added at ({px:.1f}, {py:.1f}), ML {dl:.1f}")
        fits[gi] = h1
        added += 1
    return fits, added, tried


def arm_sources(
    xy: NDArray[np.float64], counts: NDArray[np.float64], psf: PSFModel, cfg: DetectConfig
) -> NDArray[np.int64]:
    """Return, per source, the index + 1 of the brighter source whose arm explains it (0: none).

    A source is explained by a brighter source B's arm when it lies on B's cross (within
    three arm sigmas of an axis through B, at most ``cfg.arm_reach`` arm half-lengths along
    it; close to B's core too, where a core wider or steeper than the model's leaves its
    residual along the axes) and its counts are at most ``cfg.arm_residual_fraction`` times B's counts in one half-arm
    (``N_B f_arm / 4``): the counts a PSF whose arms are longer or brighter than the model's
    leaves in the residual there. The brightest such B is named.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    out = np.zeros(len(xy), dtype=np.int64)
    reach = cfg.arm_reach * psf.arm_half
    for i in range(len(xy)):
        for b in np.argsort(-counts):
            if counts[b] <= counts[i]:
                break
            dx, dy = xy[i] - xy[b]
            explained = counts[i] <= cfg.arm_residual_fraction * counts[b] * psf.f_arm / 4.0
            if explained and on_cross(float(dx), float(dy), psf, reach=reach):
                out[i] = int(b) + 1
                break
    return out


def _explained_by_arm(
    px: float, py: float, counts: float, fits: list[GroupFit], psf: PSFModel, cfg: DetectConfig
) -> bool:
    """Return whether a trial source at (px, py) would be explained by a fitted source's arm."""
    xy = [(px, py)] + [(s.x, s.y) for g in fits for s in g.sources]
    cnt = [counts] + [s.total_counts for g in fits for s in g.sources]
    return bool(arm_sources(np.array(xy), np.array(cnt), psf, cfg)[0] > 0)


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


@dataclass
class Detection:
    """Everything the detection found: sources, candidates, fits, the PSF used, arm sources.

    Attributes
    ----------
    sources
        Sources above the ML threshold (arm sources dropped in ``suppress`` mode).
    candidates
        Stage-1 candidates (with the PSF used for the fits).
    fits
        The stage-2 group fits.
    psf
        The PSF self-calibration's outcome (its ``psf`` is the one the fits used).
    n_arm
        Sources explained by a brighter source's arm (dropped or flagged).
    """

    sources: list[SourceRecord]
    candidates: list[Candidate]
    fits: list[GroupFit]
    psf: PSFEstimate
    n_arm: int = 0


def _records(
    fits: list[GroupFit],
    attitude: Attitude,
    pixel_scale_arcsec: float,
    exposure_s: float,
    shape: tuple[int, int],
    ml_threshold: float,
    r90_systematic_pix: float = 0.0,
) -> list[SourceRecord]:
    """Return the source records of the fitted sources above ``ml_threshold``, brightest ML first.

    Each r90 is the statistical one with ``r90_systematic_pix`` added in quadrature.
    """
    out = []
    for g in fits:
        for s in g.sources:
            if not (s.ml >= ml_threshold):
                continue
            ra, dec = pixel_to_sky(
                np.array(s.x), np.array(s.y), attitude, pixel_scale_arcsec, shape
            )
            tot = float(s.counts.sum())
            err = float(np.sqrt(np.sum(s.counts_err**2)))
            out.append(
                SourceRecord(
                    x=s.x, y=s.y, ra_deg=float(ra), dec_deg=float(dec),
                    r90_arcsec=float(np.hypot(s.r90_pix, r90_systematic_pix) * pixel_scale_arcsec),
                    counts=tot,
                    counts_err=err, band_counts=s.counts.copy(),
                    band_counts_err=s.counts_err.copy(), ml=float(s.ml),
                    rate=tot / exposure_s if exposure_s > 0 else float("nan"),
                    rate_err=err / exposure_s if exposure_s > 0 else float("nan"),
                    group=s.group,
                )
            )  # fmt: skip
    out.sort(key=lambda r: -r.ml)
    return out


def detect_field(
    images: NDArray[np.float64],
    psf: PSFModel,
    attitude: Attitude,
    *,
    pixel_scale_arcsec: float,
    exposure_s: float,
    cfg: DetectConfig | None = None,
    prior_xy: tuple[float, float] | None = None,
) -> Detection:
    """Run the detection on band images: PSF self-calibration, stages 1-3, the arm rule.

    Stage 1 runs with the CALDB PSF; when ``cfg.psf_self_calibration`` is on and the field
    has bright enough sources, the PSF shape is fitted on them
    (:func:`~svomflow.tasks.xray.psf_estimate.estimate_psf`) and, if accepted, stage 1 is
    run again with it and every later fit uses it. Sources on a brighter source's arm that
    its residual explains (:func:`arm_sources`) are dropped or flagged as
    ``cfg.arm_candidates`` says.

    ``prior_xy`` (burst mode: the ECLAIRs position projected on the detector) adds a
    candidate at that position when stage 1 found none within the fit window, so a faint
    afterglow is always fitted and gets an ML value (kept only if above the threshold).
    """
    cfg = cfg or DetectConfig()
    _nb, ny, nx = images.shape
    total = images.sum(axis=0)
    cands = find_candidates(total, psf, cfg)
    estimate = PSFEstimate(psf, False, 0, 0.0, 0.0, "PSF self-calibration off")
    if cfg.psf_self_calibration and cands:
        estimate = estimate_psf(
            total, psf, [(c.x, c.y) for c in cands], [c.counts for c in cands],
            min_counts=cfg.psf_min_counts, max_sources=cfg.psf_max_sources,
            min_delta_c=cfg.psf_min_delta_c,
        )  # fmt: skip
        if estimate.accepted:
            psf = estimate.psf
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
        return Detection([], cands, [], estimate)
    xy_a = np.array(xy, dtype=np.float64)
    band_frac = images.sum(axis=(1, 2)) / max(images.sum(), 1.0)
    init = np.array(cnt)[:, None] * band_frac[None, :]
    bkg = np.array([c.background for c in cands]) if cands else np.array([total.mean()])
    bkg_pp = np.median(bkg) * band_frac
    fits = fit_sources(
        images, psf, xy_a, init, half_size=cfg.window_half_size_pix,
        group_distance=cfg.group_distance_pix, bkg_per_pixel=bkg_pp,
    )  # fmt: skip
    fits, _added, _tried = residual_search(images, psf, fits, cfg, bkg_pp)
    out = _records(
        fits, attitude, pixel_scale_arcsec, exposure_s, (ny, nx), cfg.ml_threshold,
        cfg.r90_systematic_pix,
    )  # fmt: skip
    n_arm = 0
    if cfg.arm_candidates != "keep" and out:
        arm_of = arm_sources(
            np.array([(r.x, r.y) for r in out]), np.array([r.counts for r in out]), psf, cfg
        )
        n_arm = int((arm_of > 0).sum())
        if cfg.arm_candidates == "suppress":
            out = [r for r, a in zip(out, arm_of, strict=True) if a == 0]
        else:
            for r, a in zip(out, arm_of, strict=True):
                r.arm_of = int(a)
    return Detection(out, cands, fits, estimate, n_arm)


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
    """Run the detection (:func:`detect_field`); return (sources, candidates, fits)."""
    d = detect_field(
        images, psf, attitude, pixel_scale_arcsec=pixel_scale_arcsec, exposure_s=exposure_s,
        cfg=cfg, prior_xy=prior_xy,
    )  # fmt: skip
    return d.sources, d.candidates, d.fits
