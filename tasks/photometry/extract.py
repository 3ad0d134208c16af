"""Source extraction with sep into a SExtractor-compatible catalog (FITS table).

Column names follow SExtractor's where one exists, so existing tools (SCAMP, PSFEx-style
scripts, TOPCAT recipes) read the catalogs: ``X_IMAGE``/``Y_IMAGE`` are 1-based (FITS
convention), ``THETA_IMAGE`` in degrees, ``KRON_RADIUS`` already multiplied by the Kron
factor (as SExtractor reports it), ``FLAGS`` with SExtractor's bit meanings:

====  =============================================================
1     aperture photometry has masked pixels (bad pixels / neighbours)
2     object was deblended
4     at least one pixel is saturated (peak >= saturation level)
8     object or its aperture is truncated by the image edge
16    aperture contains only masked pixels or a non-positive Kron sum
====  =============================================================

``FWHM_IMAGE`` is twice the half-light radius (``FLUX_RADIUS`` at 0.5), exact for a Gaussian
profile; SExtractor's own FWHM_IMAGE is an isophotal estimate that differs by a few percent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sep
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError

__all__ = [
    "DEFAULT_CONV",
    "ExtractConfig",
    "Extraction",
    "catalog_to_hdu",
    "estimate_background",
    "extract_sources",
    "read_catalog",
]

# SExtractor's default.conv: 3x3 "all-ground" kernel, FWHM = 2 pixels.
DEFAULT_CONV = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])

_MAG_BAD = 99.0


class ExtractConfig(StepConfig):
    """Background and detection settings (defaults are SExtractor's, option by option).

    Each field names the SExtractor option it mirrors; the defaults are SExtractor's own
    (``sex -dd``), so that an image analysed with them gives SExtractor's catalogue. A
    SExtractor configuration file can be applied over them
    (:func:`~svomflow.tasks.photometry.sextractor_config.extract_config_from_sextractor`).
    """

    back_size: int = Field(64, ge=8, description="Background mesh size (pixel), BACK_SIZE.")
    back_filtersize: int = Field(
        3, ge=1, description="Background median filter (meshes), BACK_FILTERSIZE."
    )
    detect_thresh: float = Field(
        1.5, gt=0, description="Detection threshold (sigma), DETECT_THRESH."
    )
    detect_minarea: int = Field(
        5, ge=1, description="Minimum pixels above threshold, DETECT_MINAREA."
    )
    filter: bool = Field(True, description="Filter before detection (FILTER).")
    filter_kernel: list[list[float]] | None = Field(
        None,
        description="Detection filter (FILTER_NAME); None: default.conv, the 3x3 "
        "'all-ground' kernel of FWHM 2 pixels.",
    )
    deblend_nthresh: int = Field(
        32, ge=1, description="Deblending sub-thresholds, DEBLEND_NTHRESH."
    )
    deblend_mincont: float = Field(
        0.005,
        ge=0,
        le=1,
        description="Deblending minimum contrast, DEBLEND_MINCONT (1 disables deblending).",
    )
    clean: bool = Field(True, description="Clean spurious detections near bright objects, CLEAN.")
    clean_param: float = Field(1.0, gt=0, description="Cleaning efficiency, CLEAN_PARAM.")
    global_rms: bool = Field(
        True,
        description="Threshold on the global background rms, as SExtractor does without a "
        "weight map (WEIGHT_TYPE NONE); False: on the local rms map (WEIGHT_TYPE BACKGROUND).",
    )
    phot_apertures: list[float] = Field(
        default_factory=lambda: [10.0], description="FLUX_APER diameters (pixel), PHOT_APERTURES."
    )
    kron_factor: float = Field(2.5, gt=0, description="PHOT_AUTOPARAMS Kron factor.")
    kron_min_radius: float = Field(
        3.5, ge=0, description="PHOT_AUTOPARAMS minimum Kron radius (units of A, B)."
    )
    mag_zeropoint: float = Field(
        0.0, description="Zero point of MAG_* columns (mag), MAG_ZEROPOINT."
    )
    max_objects: int = Field(100_000, ge=1, description="Refuse frames with more sources.")


@dataclass
class Extraction:
    """An extraction: the catalog, background and rms maps, and global background figures."""

    catalog: Table
    background: np.ndarray
    rms: np.ndarray
    global_back: float
    global_rms: float
    n_defects: int = 0
    """Pixels masked as defects (``defect_sigma`` below the background), 0 when not asked."""


def estimate_background(
    image: np.ndarray, config: ExtractConfig, mask: np.ndarray | None = None
) -> sep.Background:
    """Return sep's SExtractor-like background model of ``image``."""
    data = _native(image)
    return sep.Background(
        data,
        mask=None if mask is None else np.ascontiguousarray(mask, dtype=bool),
        bw=config.back_size,
        bh=config.back_size,
        fw=config.back_filtersize,
        fh=config.back_filtersize,
    )


def _native(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise InputDataError(f"expected a 2-D image, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _mag(flux: np.ndarray, err: np.ndarray, zp: float) -> tuple[np.ndarray, np.ndarray]:
    good = flux > 0
    mag = np.full(flux.shape, _MAG_BAD)
    magerr = np.full(flux.shape, _MAG_BAD)
    mag[good] = zp - 2.5 * np.log10(flux[good])
    magerr[good] = 2.5 / np.log(10) * err[good] / flux[good]
    return mag, magerr


def extract_sources(
    image: np.ndarray,
    config: ExtractConfig | None = None,
    *,
    mask: np.ndarray | None = None,
    wcs: WCS | None = None,
    gain: float | None = None,
    saturation: float | None = None,
    defect_sigma: float | None = None,
) -> Extraction:
    """Detect and measure sources: background, sep extraction, AUTO and aperture photometry.

    Parameters
    ----------
    image
        2-D image in ADU (not background subtracted).
    config
        Extraction settings; SExtractor's defaults when omitted.
    mask
        Bad pixels (True = bad), excluded from background, detection and photometry.
    wcs
        Celestial WCS; when given, ``ALPHA_J2000``/``DELTA_J2000`` are filled from the
        windowed positions.
    gain
        e-/ADU, adds the sources' Poisson noise to flux errors (SExtractor's GAIN).
    saturation
        Saturation level (ADU) of the original image; sets FLAGS bit 4.
    defect_sigma
        Mask, as bad pixels, the pixels more than this many local rms below the background
        (dead, cold or damaged pixels: no sky or source signal is that far below it in a
        reduced image). ``None`` (SExtractor's behaviour) keeps them. Not for difference
        images, where a fading source is negative.

    Returns
    -------
    Extraction
    """
    cfg = config or ExtractConfig()
    data = _native(image)
    finite = np.isfinite(data)
    bad = ~finite if mask is None else (np.asarray(mask, dtype=bool) | ~finite)
    if bad.all():
        raise InputDataError("every pixel of the image is masked or not finite")
    if (~finite).any():
        data = np.where(finite, data, 0.0)
    bad = np.ascontiguousarray(bad)
    use_mask = bad if bad.any() else None

    bkg = estimate_background(data, cfg, use_mask)
    back = bkg.back()
    rms = bkg.rms()
    sub = data - back
    n_defects = 0
    if defect_sigma is not None:
        defects = (sub < -defect_sigma * rms) & ~bad
        n_defects = int(np.count_nonzero(defects))
        if n_defects:
            # a pixel tens of thousands of ADU low drags its Kron aperture's sum negative
            # (a bright star's flux lost to one damaged pixel 47 px away, corpus gp1-039)
            bad = np.ascontiguousarray(bad | defects)
            use_mask = bad
            bkg = estimate_background(data, cfg, use_mask)
            back = bkg.back()
            rms = bkg.rms()
            sub = data - back
    err_det = bkg.globalrms if cfg.global_rms else rms
    kernel = None
    if cfg.filter:
        kernel = DEFAULT_CONV if cfg.filter_kernel is None else np.asarray(cfg.filter_kernel)
    try:
        objs = sep.extract(
            sub,
            cfg.detect_thresh,
            err=err_det,
            mask=use_mask,
            minarea=cfg.detect_minarea,
            filter_kernel=kernel,
            deblend_nthresh=cfg.deblend_nthresh,
            deblend_cont=cfg.deblend_mincont,
            clean=cfg.clean,
            clean_param=cfg.clean_param,
        )
    except Exception as exc:  # sep raises plain Exception on pixel-stack overflow
        raise InputDataError(f"source extraction failed: {exc}") from None
    if len(objs) > cfg.max_objects:
        raise InputDataError(
            f"{len(objs)} sources extracted, more than max_objects={cfg.max_objects}"
        )
    cat = _measure(sub, objs, cfg, err_det, use_mask, gain, saturation, data)
    if wcs is not None and len(cat):
        sky = wcs.pixel_to_world_values(cat["XWIN_IMAGE"] - 1.0, cat["YWIN_IMAGE"] - 1.0)
        cat["ALPHA_J2000"] = np.asarray(sky[0], float) % 360.0
        cat["DELTA_J2000"] = np.asarray(sky[1], float)
    else:
        cat["ALPHA_J2000"] = np.full(len(cat), np.nan)
        cat["DELTA_J2000"] = np.full(len(cat), np.nan)
    cat["ALPHA_J2000"].unit = "deg"
    cat["DELTA_J2000"].unit = "deg"
    cat.meta["BACKGND"] = (float(bkg.globalback), "global background (ADU)")
    cat.meta["BACKRMS"] = (float(bkg.globalrms), "global background rms (ADU)")
    cat.meta["THRESH"] = (float(cfg.detect_thresh), "detection threshold (sigma)")
    return Extraction(cat, back, rms, float(bkg.globalback), float(bkg.globalrms), n_defects)


def _measure(
    sub: np.ndarray,
    objs: np.ndarray,
    cfg: ExtractConfig,
    err: np.ndarray | float,
    mask: np.ndarray | None,
    gain: float | None,
    saturation: float | None,
    raw: np.ndarray,
) -> Table:
    n = len(objs)
    x, y = objs["x"], objs["y"]
    a, b = objs["a"], objs["b"]
    # sep may return theta a hair outside (-pi/2, pi/2]; its ellipse routines reject that.
    theta = np.clip(objs["theta"], -np.pi / 2 + 1e-7, np.pi / 2 - 1e-7)
    flags = np.zeros(n, dtype=np.int32)
    flags[(objs["flag"] & sep.OBJ_MERGED) != 0] |= 2
    flags[(objs["flag"] & sep.OBJ_TRUNC) != 0] |= 8

    kw = {"err": err, "mask": mask}
    if gain:
        kw["gain"] = gain
    # Kron radius and AUTO flux (elliptical aperture of kron_factor * kr, subpix=1 as SE).
    if n:
        kr, krflag = sep.kron_radius(sub, x, y, a, b, theta, 6.0, mask=mask)
        kr = np.where(np.isfinite(kr), kr, 0.0)
        kr = np.maximum(kr, cfg.kron_min_radius)
        flux_auto, ferr_auto, fl_auto = sep.sum_ellipse(
            sub, x, y, a, b, theta, cfg.kron_factor * kr, subpix=1, **kw
        )
        # SExtractor falls back to a circle when the Kron ellipse is degenerate.
        tiny = cfg.kron_factor * kr * np.sqrt(a * b) <= 0
        if tiny.any():
            r_min = max(cfg.kron_factor * cfg.kron_min_radius, 1.75)
            fc, ec, flc = sep.sum_circle(sub, x[tiny], y[tiny], r_min, subpix=1, **kw)
            flux_auto[tiny], ferr_auto[tiny], fl_auto[tiny] = fc, ec, flc
        flags[(krflag & sep.APER_NONPOSITIVE) != 0] |= 16
        fl_all = fl_auto
        r_half, _ = sep.flux_radius(
            sub, x, y, 6.0 * a, [0.5], normflux=flux_auto, subpix=5, mask=mask
        )
        r_half = np.asarray(r_half).reshape(n)
        sig = 2.0 / 2.35 * np.where(r_half > 0, r_half, 1.0)
        xwin, ywin, _ = sep.winpos(sub, x, y, sig, mask=mask)
    else:
        kr = flux_auto = ferr_auto = r_half = xwin = ywin = np.zeros(0)
        fl_all = np.zeros(0, dtype=np.int16)

    naper = len(cfg.phot_apertures)
    flux_aper = np.zeros((n, naper))
    ferr_aper = np.zeros((n, naper))
    for k, diam in enumerate(cfg.phot_apertures):
        if n:
            f, e, fl = sep.sum_circle(sub, x, y, diam / 2.0, **kw)
            flux_aper[:, k], ferr_aper[:, k] = f, e
            fl_all = fl_all | fl
    if n:
        flags[(fl_all & sep.APER_TRUNC) != 0] |= 8
        flags[(fl_all & sep.APER_HASMASKED) != 0] |= 1
        flags[(fl_all & sep.APER_ALLMASKED) != 0] |= 16
    peak_raw = np.zeros(n)
    if n:
        ix = np.clip(objs["xpeak"], 0, raw.shape[1] - 1)
        iy = np.clip(objs["ypeak"], 0, raw.shape[0] - 1)
        peak_raw = raw[iy, ix]
        if saturation is not None:
            flags[peak_raw >= saturation] |= 4

    mag_auto, magerr_auto = _mag(flux_auto, ferr_auto, cfg.mag_zeropoint)
    mag_aper, magerr_aper = _mag(flux_aper, ferr_aper, cfg.mag_zeropoint)
    elong = np.where(b > 0, a / np.where(b > 0, b, 1.0), np.inf)
    t = Table()
    t["NUMBER"] = np.arange(1, n + 1, dtype=np.int32)
    t["X_IMAGE"] = x + 1.0
    t["Y_IMAGE"] = y + 1.0
    t["XWIN_IMAGE"] = xwin + 1.0
    t["YWIN_IMAGE"] = ywin + 1.0
    t["X2_IMAGE"] = objs["x2"]
    t["Y2_IMAGE"] = objs["y2"]
    t["XY_IMAGE"] = objs["xy"]
    t["ERRX2_IMAGE"] = objs["errx2"]
    t["ERRY2_IMAGE"] = objs["erry2"]
    t["ERRXY_IMAGE"] = objs["errxy"]
    t["A_IMAGE"] = a
    t["B_IMAGE"] = b
    t["THETA_IMAGE"] = np.rad2deg(objs["theta"])
    t["ELONGATION"] = elong
    t["ELLIPTICITY"] = 1.0 - np.where(a > 0, b / np.where(a > 0, a, 1.0), 0.0)
    t["ISOAREA_IMAGE"] = objs["npix"].astype(np.int32)
    t["FLUX_ISO"] = objs["flux"]
    t["FLUX_MAX"] = objs["peak"]
    t["PEAK_RAW"] = peak_raw
    t["FLUX_APER"] = flux_aper
    t["FLUXERR_APER"] = ferr_aper
    t["MAG_APER"] = mag_aper
    t["MAGERR_APER"] = magerr_aper
    t["KRON_RADIUS"] = cfg.kron_factor * kr
    t["FLUX_AUTO"] = flux_auto
    t["FLUXERR_AUTO"] = ferr_auto
    t["MAG_AUTO"] = mag_auto
    t["MAGERR_AUTO"] = magerr_auto
    t["FLUX_RADIUS"] = r_half
    t["FWHM_IMAGE"] = 2.0 * r_half
    t["FLAGS"] = flags
    for col, unit in [
        ("X_IMAGE", "pix"),
        ("Y_IMAGE", "pix"),
        ("XWIN_IMAGE", "pix"),
        ("YWIN_IMAGE", "pix"),
        ("A_IMAGE", "pix"),
        ("B_IMAGE", "pix"),
        ("THETA_IMAGE", "deg"),
        ("FLUX_RADIUS", "pix"),
        ("FWHM_IMAGE", "pix"),
        ("MAG_AUTO", "mag"),
        ("MAG_APER", "mag"),
    ]:
        t[col].unit = unit
    return t


def catalog_to_hdu(catalog: Table, extname: str = "LDAC_OBJECTS") -> fits.BinTableHDU:
    """Return the catalog as a FITS binary table HDU (meta entries become header cards)."""
    hdu = fits.table_to_hdu(catalog)
    hdu.name = extname
    return hdu


def read_catalog(path: str, extname: str | int = 1) -> Table:
    """Read a catalog written by :func:`catalog_to_hdu` (or SExtractor's FITS_1.0)."""
    try:
        return Table.read(path, hdu=extname)
    except (OSError, ValueError, KeyError) as exc:
        raise InputDataError(f"cannot read catalog {path}: {exc}") from None
