"""GP1 per-image steps: sources, astrometry, photometry, subtraction and candidates.

Each step takes an :class:`~svomflow.tasks.gp1.images.ImageResult` and returns a new one
with its own results added (catalogues, PSF, zero point, difference image, candidates) and
its figures in the image's :class:`~svomflow.tasks.gp1.images.ImageSummary`. The maths
lives in the ``svomflow.tasks`` photometry/astrometry/subtraction modules; this module
only wires them. References (catalogue, reference images) arrive as
:class:`FieldReferences`, read once by the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from astropy.io import fits
from astropy.table import Table
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.tasks.astrometry.align import align_to_reference_image
from svomflow.tasks.astrometry.solve import solve_astrometry
from svomflow.tasks.gp1.config import (
    AstrometryModule,
    FindStarsModule,
    PhotometryModule,
    SubtractionModule,
)
from svomflow.tasks.gp1.images import (
    BackgroundSubtracted,
    DifferenceImage,
    ImageResult,
    ReducedImage,
    as_stored,
    celestial_wcs,
    header_as_stored,
)
from svomflow.tasks.photometry.extract import ExtractConfig, estimate_background, extract_sources
from svomflow.tasks.photometry.limits import limiting_magnitude
from svomflow.tasks.photometry.measure import PhotometryConfig, fit_psf_photometry, noise_map
from svomflow.tasks.photometry.psf import PSFModel, fit_psf, select_psf_stars
from svomflow.tasks.photometry.zeropoint import (
    fit_zero_point,
    match_reference,
    reference_mag_column,
)
from svomflow.tasks.step import step
from svomflow.tasks.subtraction.alard_lupton import subtract_images
from svomflow.tasks.subtraction.candidates import find_candidates
from svomflow.tasks.subtraction.reference import model_reference, reproject_reference

__all__ = [
    "FieldReferences",
    "ReferenceImage",
    "cone_table",
    "find_stars",
    "forced_difference_photometry",
    "measure_photometry",
    "solve_image",
    "subtract_reference",
]


@dataclass
class ReferenceImage:
    """A reference image (solved, same band): pixels as float and header, or why it failed."""

    path: str
    data: np.ndarray | None = None
    header: fits.Header | None = None
    error: str | None = None

    def pixels(self) -> tuple[np.ndarray, fits.Header]:
        """Return the pixels and header.

        Raises
        ------
        InputDataError
            When the file could not be read.
        """
        if self.data is None or self.header is None:
            raise InputDataError(self.error or f"reference image {self.path} could not be read")
        return self.data, self.header


@dataclass
class FieldReferences:
    """The references of an image's field, read once by the pipeline.

    Attributes
    ----------
    catalog, catalog_path
        Reference catalogue of the field (astrometry, zero point, model reference) and its
        file; ``catalog_error`` says why there is none when one was configured.
    astrometry_image, subtraction_image
        Reference images configured for the alignment and for the subtraction.
    extract, extract_source, extract_error
        Extraction settings from a SExtractor configuration file found for the image (and
        that file), used instead of the configuration's; None when there is none;
        ``extract_error`` says why a file found could not be used.
    """

    catalog: Table | None = None
    catalog_path: str | None = None
    catalog_error: str | None = None
    astrometry_image: ReferenceImage | None = None
    subtraction_image: ReferenceImage | None = None
    extract: ExtractConfig | None = None
    extract_source: str | None = None
    extract_error: str | None = None

    def reference_catalog(self) -> Table | None:
        """Return the field's catalogue (``None`` when none is configured).

        Raises
        ------
        InputDataError
            When one is configured but could not be found or read.
        """
        if self.catalog_error is not None:
            raise InputDataError(self.catalog_error)
        return self.catalog


def _background_subtracted(result: ImageResult, extract: ExtractConfig) -> BackgroundSubtracted:
    """Return the reduced image minus its background and its noise map.

    An earlier step's (``result.background``) is reused when it was computed from the same
    pixels with the same settings: the background is estimated once per image.
    """
    img = result.reduced
    if result.background is not None and result.background.applies_to(img, extract):
        return result.background
    data = np.where(img.mask, 0.0, img.data).astype(np.float64)
    bkg = estimate_background(data, extract, img.mask if img.mask.any() else None)
    return _subtracted(img, extract, bkg.back(), bkg.rms(), result.summary.gain)


def _subtracted(
    img: ReducedImage, extract: ExtractConfig, back: np.ndarray, rms: np.ndarray, gain: float
) -> BackgroundSubtracted:
    """Return ``img`` minus the background ``back`` (masked pixels 0) and its noise map."""
    sub = np.where(img.mask, 0.0, img.data).astype(np.float64) - back
    return BackgroundSubtracted(
        img.data, extract, sub, noise_map(rms, sub, gain), float(np.median(rms))
    )


@step(name="findstars", config=FindStarsModule)
def find_stars(result: ImageResult, *, config: FindStarsModule) -> ImageResult:
    """Extract sources from the reduced image (sep): positions, fluxes, shapes, flags."""
    img = result.reduced
    s = result.summary
    ex = extract_sources(
        img.data,
        config.extract,
        mask=img.mask,
        wcs=celestial_wcs(img.header),
        gain=s.gain,
        saturation=s.saturation,
        defect_sigma=config.defect_sigma,
    )
    warnings = list(s.warnings)
    if ex.n_defects:
        warnings.append(
            f"{ex.n_defects} pixel(s) more than {config.defect_sigma:g} rms below the "
            "background masked as defects (dead, cold or damaged pixels)"
        )
    catalog = as_stored(ex.catalog)
    clean = catalog[(catalog["FLAGS"] == 0) & (catalog["FLUX_AUTO"] > 0)]
    snr = clean["FLUX_AUTO"] / np.maximum(clean["FLUXERR_AUTO"], 1e-30)
    fwhm = float(np.median(clean["FWHM_IMAGE"][snr > 20])) if np.any(snr > 20) else float("nan")
    summary = replace(
        s,
        n_sources=len(catalog),
        back_level=ex.global_back,
        back_rms=ex.global_rms,
        fwhm_sep=fwhm,
        done=[*s.done, "findstars"],
        warnings=warnings,
    )
    # the photometry and the subtraction use the extraction's background (one estimate)
    background = _subtracted(img, config.extract, ex.background, ex.rms, s.gain)
    return replace(result, summary=summary, catalog=catalog, background=background)


@step(name="astrometry", config=AstrometryModule)
def solve_image(
    result: ImageResult,
    references: FieldReferences,
    extract: ExtractConfig,
    *,
    config: AstrometryModule,
) -> ImageResult:
    """Solve the WCS against the reference catalogue (or align to a reference image).

    The reduced image's header gets the fitted solution; the catalogue its sky positions.
    """
    img = result.reduced
    if result.catalog is None:
        raise InputDataError(f"{result.summary.stem}: astrometry needs the source catalogue")
    cat = result.catalog.copy()
    guess = celestial_wcs(img.header)
    if guess is None:
        raise InputDataError(
            f"{result.summary.raw}: no celestial WCS in the header to start the astrometry "
            "from; solve the frame first (e.g. astrometry.net's solve-field) or switch the "
            "astrometry module off"
        )
    s = result.summary
    ref_path = s.reference_catalog
    if config.reference_image:
        ref_img = references.astrometry_image
        if ref_img is None:
            raise InputDataError(f"reference image {config.reference_image} was not read")
        rdata, rheader = ref_img.pixels()
        rwcs = celestial_wcs(rheader)
        if rwcs is None:
            raise InputDataError(f"reference image {config.reference_image} has no WCS")
        rcat = extract_sources(rdata, extract, wcs=rwcs).catalog
        sol = align_to_reference_image(cat, rcat, guess, img.data.shape, config.astrometry)
    else:
        ref = references.reference_catalog()
        if ref is None:
            raise InputDataError("astrometry: no reference_catalog or reference_image set")
        try:
            mcol = reference_mag_column(ref, s.filter)
        except InputDataError:
            mcol = None
        sol = solve_astrometry(
            cat, ref, guess, img.data.shape, config.astrometry, reference_mag=mcol
        )
        ref_path = references.catalog_path
    # Replace the WCS keywords of the header by the fitted solution.
    h = img.header.copy()
    for key in [*list(guess.to_header(relax=True).keys()), "CD1_1", "CD1_2", "CD2_1", "CD2_2"]:
        h.remove(key, ignore_missing=True, remove_all=True)
    h.update(sol.wcs.to_header(relax=True))
    for key, val, com in sol.header_cards():
        h[key] = (val, com)
    ra, dec = sol.wcs.pixel_to_world_values(cat["XWIN_IMAGE"] - 1.0, cat["YWIN_IMAGE"] - 1.0)
    cat["ALPHA_J2000"] = np.asarray(ra) % 360.0
    cat["DELTA_J2000"] = np.asarray(dec)
    summary = replace(
        s,
        reference_catalog=ref_path,
        astrometry_n=sol.n_matched,
        astrometry_rms_arcsec=sol.rms_arcsec,
        astrometry_shift_pix=[float(v) for v in sol.shift_pix],
        astrometry_rotation_deg=sol.rotation_deg,
        done=[*s.done, "astrometry"],
    )
    reduced = replace(img, header=header_as_stored(h))
    return replace(result, summary=summary, reduced=reduced, catalog=as_stored(cat))


@step(name="photometry", config=PhotometryModule)
def measure_photometry(
    result: ImageResult,
    references: FieldReferences,
    extract: ExtractConfig,
    camera: CameraModel,
    *,
    config: PhotometryModule,
) -> ImageResult:
    """PSF fit, PSF and aperture photometry of all sources, zero point, limiting magnitude."""
    s = result.summary
    img = result.reduced
    if result.catalog is None:
        raise InputDataError(f"{s.stem}: photometry needs the source catalogue")
    cat = result.catalog
    background = _background_subtracted(result, extract)
    sub = background.image
    err = np.where(img.mask, 1e30, background.noise)
    stars = select_psf_stars(
        cat,
        sub.shape,
        half_size=config.psf_half_size,
        saturation=s.saturation,
        max_stars=config.psf_max_stars,
    )
    if len(stars) < 3:
        raise InputDataError(f"{s.stem}: only {len(stars)} stars usable for the PSF")
    fit = fit_psf(
        sub, stars, half_size=config.psf_half_size, noise=err, with_wings=config.psf_wings
    )
    psf = fit.model
    ok = cat["FLUX_AUTO"] > 0
    pcat = cat[ok]
    ph = fit_psf_photometry(
        sub,
        np.asarray(pcat["XWIN_IMAGE"]) - 1,
        np.asarray(pcat["YWIN_IMAGE"]) - 1,
        psf,
        error=err,
        config=config.photometry,
        mask=img.mask,
    )
    for col in ph.colnames:
        pcat[col] = ph[col]
    exptime = s.exptime
    with np.errstate(divide="ignore", invalid="ignore"):
        inst = -2.5 * np.log10(np.asarray(pcat["FLUX_PSF"], float) / exptime)
        inst_err = 2.5 / np.log(10) * pcat["FLUXERR_PSF"] / pcat["FLUX_PSF"]
    zp = None
    zp_points = None
    ref = references.reference_catalog() if s.reference_catalog is None else references.catalog
    if ref is not None and np.isfinite(pcat["ALPHA_J2000"]).any():
        mcol = reference_mag_column(ref, s.filter)
        si, ri = match_reference(
            np.asarray(pcat["ALPHA_J2000"], float),
            np.asarray(pcat["DELTA_J2000"], float),
            ref,
            config.zeropoint.match_radius_arcsec,
        )
        snr = np.asarray(pcat["FLUX_PSF"])[si] / np.asarray(pcat["FLUXERR_PSF"])[si]
        good = (snr >= config.zeropoint.min_snr) & (np.asarray(pcat["FLAGS"])[si] == 0)
        colour = None
        if config.zeropoint.colour_term and config.zeropoint.colour_bands:
            b1, b2 = config.zeropoint.colour_bands
            colour = (
                np.asarray(ref[reference_mag_column(ref, b1)], float)[ri]
                - np.asarray(ref[reference_mag_column(ref, b2)], float)[ri]
            )[good]
        zp = fit_zero_point(
            inst[si][good],
            inst_err[si][good],
            np.asarray(ref[mcol], float)[ri][good],
            colour=colour,
            config=config.zeropoint,
        )
        pcat["MAG_PSF"] = inst + zp.zp
        pcat["MAGERR_PSF"] = np.sqrt(inst_err**2 + zp.zp_err**2)
        # the calibrators, for the calibration plot of the summary
        refmag = np.asarray(ref[mcol], float)[ri][good]
        zp_points = {
            "ref": refmag.round(4).tolist(),
            "resid": (refmag - inst[si][good] - zp.zp).round(4).tolist(),
        }
    rms = background.rms_median
    zp_val = zp.zp if zp is not None else 0.0
    mlim = limiting_magnitude(rms, psf, zp_val, exptime, nsigma=config.limit_nsigma, gain=s.gain)
    hdr = fits.Header()
    hdr["FWHM"] = (round(fit.fwhm, 4), "[pix] PSF FWHM")
    for k, v in psf.to_dict().items():
        hdr[f"PSF_{k[:4].upper()}"] = (round(v, 5), f"PSF {k}")
    if zp is not None:
        for key, val, com in zp.header_cards():
            hdr[key] = (val, com)
    hdr["MAGLIM"] = (round(mlim, 4), f"[mag] {config.limit_nsigma:g}-sigma limiting magnitude")
    for key in hdr:
        pcat.meta[key] = hdr[key]
    summary = replace(
        s,
        psf=psf.to_dict(),
        fwhm=fit.fwhm,
        fwhm_arcsec=fit.fwhm * camera.pixel_scale_arcsec,
        psf_chi2=fit.reduced_chi2,
        psf_n=fit.n_stars,
        back_rms_median=rms,
        maglim=mlim,
        calibrated=zp is not None,
        done=[*s.done, "photometry"],
    )
    if zp is not None:
        summary = replace(
            summary,
            zp=zp.zp,
            zp_err=zp.zp_err,
            zp_scatter=zp.scatter,
            zp_n=zp.n_used,
            zp_colour_term=zp.colour_term,
            zp_points=zp_points,
        )
    return replace(result, summary=summary, catalog=as_stored(pcat), psf=psf, background=background)


def _reference_for(
    result: ImageResult,
    references: FieldReferences,
    config: SubtractionModule,
    shape: tuple[int, int],
    wcs: object,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (reference image on the science grid, its noise, its FWHM)."""
    s = result.summary
    psf = result.psf
    assert psf is not None
    if config.reference_image:
        ref_img = references.subtraction_image
        if ref_img is None:
            raise InputDataError(f"reference image {config.reference_image} was not read")
        rdata, rheader = ref_img.pixels()
        rwcs = celestial_wcs(rheader)
        rfwhm = float(rheader.get("FWHM", psf.fwhm))
        if rwcs is None:
            raise InputDataError(f"reference image {config.reference_image} has no WCS")
        bk = estimate_background(np.nan_to_num(rdata), ExtractConfig())
        rsub = reproject_reference(rdata - bk.back(), rwcs, wcs, shape)
        rnoise = np.full(shape, float(bk.globalrms))
        return rsub, rnoise, rfwhm
    if not s.reference_catalog or references.catalog is None:
        raise InputDataError("subtraction: no reference image and no reference catalog")
    if s.zp is None:
        raise InputDataError("subtraction: a model reference needs the zero point")
    ref = references.catalog
    mcol = reference_mag_column(ref, s.filter)
    model = model_reference(shape, wcs, ref, mcol, psf, s.zp, s.exptime)
    # A model has no pixel noise; a small floor keeps the weights finite.
    back_rms = float(s.back_rms_median or 0.0)
    return model, np.full(shape, 1e-3 * back_rms), psf.fwhm


@step(name="subtraction", config=SubtractionModule)
def subtract_reference(
    result: ImageResult,
    references: FieldReferences,
    extract: ExtractConfig,
    *,
    config: SubtractionModule,
) -> ImageResult:
    """Subtract the reference (image, or model from the catalogue), find and vet candidates."""
    s = result.summary
    img = result.reduced
    wcs = celestial_wcs(img.header)
    if wcs is None:
        raise InputDataError(f"{s.raw}: no WCS for the subtraction")
    if result.psf is None or result.catalog is None or s.fwhm is None:
        raise InputDataError(f"{s.stem}: the subtraction needs the photometry")
    background = _background_subtracted(result, extract)
    sub, err = background.image, background.noise
    ref, ref_noise, ref_fwhm = _reference_for(result, references, config, sub.shape, wcs)
    psf = result.psf
    pcat = result.catalog
    snr = np.asarray(pcat["FLUX_PSF"]) / np.maximum(np.asarray(pcat["FLUXERR_PSF"]), 1e-30)
    use = (np.asarray(pcat["FLAGS"]) == 0) & (snr > 20)
    order = np.argsort(-np.asarray(pcat["FLUX_PSF"])[use])
    sx = (np.asarray(pcat["XWIN_IMAGE"])[use] - 1)[order]
    sy = (np.asarray(pcat["YWIN_IMAGE"])[use] - 1)[order]
    bad = img.mask | ~np.isfinite(ref)
    res = subtract_images(
        sub,
        np.nan_to_num(ref),
        science_noise=err,
        reference_noise=ref_noise,
        science_fwhm=s.fwhm,
        reference_fwhm=ref_fwhm,
        star_x=sx,
        star_y=sy,
        mask=bad,
        config=config.subtraction,
    )
    diff_psf = psf if res.psf_of == "science" else PSFModel(sigma=ref_fwhm / 2.3548)
    cands = find_candidates(res.difference, res.noise, diff_psf, wcs=wcs, config=config.candidates)
    zp = s.zp
    if zp is not None and len(cands):
        with np.errstate(divide="ignore", invalid="ignore"):
            cands["MAG_PSF"] = zp - 2.5 * np.log10(np.asarray(cands["FLUX_PSF"]) / s.exptime)
            cands["MAGERR_PSF"] = np.sqrt(
                (2.5 / np.log(10) * cands["FLUXERR_PSF"] / cands["FLUX_PSF"]) ** 2
                + float(s.zp_err or 0.0) ** 2
            )
    h = wcs.to_header(relax=True)
    h["KSCALE"] = (round(res.scale, 6), "flux scale of the subtraction kernel")
    h["KBACK"] = (round(res.background, 4), "[adu] differential background")
    h["KSTAMPS"] = (res.n_stamps, "stamps used for the kernel")
    h["CONVOLVD"] = (res.convolved, "which image was convolved")
    h["DIFFPSF"] = (res.psf_of, "PSF of point sources in the difference")
    diff = DifferenceImage(
        res.difference.astype(np.float32), res.noise.astype(np.float32), header_as_stored(h)
    )
    stored = as_stored(cands)
    kept = stored[stored["REJECT"] == "ok"] if len(stored) else stored
    scale = cands.meta.get("ERRSCALE", 1.0)
    summary = replace(
        s,
        n_candidates=len(kept),
        n_rejected=len(stored) - len(kept),
        kernel_scale=res.scale,
        diff_psf=diff_psf.to_dict(),
        diff_error_scale=float(scale[0]) if isinstance(scale, tuple) else float(scale),
        done=[*s.done, "subtraction"],
    )
    # the background maps are not needed after the subtraction: a sequence's results do not
    # keep two full frames each
    return replace(result, summary=summary, difference=diff, candidates=stored, background=None)


def forced_difference_photometry(result: ImageResult, ra: float, dec: float) -> dict[str, float]:
    """Measure a source on an image's difference at (ra, dec): position, flux, error (forced PSF)."""
    s = result.summary
    diff = result.difference
    if diff is None or s.diff_psf is None:
        raise InputDataError(f"{s.stem}: no difference image")
    psf = PSFModel(**s.diff_psf)
    h = int(np.ceil(3 * psf.fwhm)) + 4  # the fit box is a few FWHM wide: a cutout only
    wcs = celestial_wcs(diff.header)
    if wcs is None:
        raise InputDataError(f"{s.stem}: the difference image has no WCS")
    x, y = (float(v) for v in wcs.world_to_pixel_values(ra, dec))
    out = {"x": x, "y": y, "flux": math.nan, "flux_err": math.nan}
    ny, nx = diff.data.shape
    if not (5 <= x < nx - 5 and 5 <= y < ny - 5):
        return out
    i0, j0 = max(round(x) - h, 0), max(round(y) - h, 0)
    d = np.array(diff.data[j0 : round(y) + h + 1, i0 : round(x) + h + 1], dtype=float)
    nz = np.array(diff.noise[j0 : round(y) + h + 1, i0 : round(x) + h + 1], dtype=float)
    bad = ~np.isfinite(d) | ~np.isfinite(nz)
    ph = fit_psf_photometry(
        np.where(bad, 0.0, d),
        np.array([x - i0]),
        np.array([y - j0]),
        psf,
        error=np.where(bad, 1e30, nz),
        config=PhotometryConfig(fit_positions=False),
        mask=bad,
    )
    scale = float(s.diff_error_scale if s.diff_error_scale is not None else 1.0)
    out["flux"] = float(ph["FLUX_PSF"][0])
    out["flux_err"] = float(ph["FLUXERR_PSF"][0]) * scale
    return out


def cone_table(table: Table, ra: float, dec: float, radius_arcsec: float) -> Table:
    """Return the rows of ``table`` (ALPHA_J2000/DELTA_J2000) within a radius of (ra, dec)."""
    if len(table) == 0:
        return table
    d = (
        np.hypot(
            (np.asarray(table["ALPHA_J2000"]) - ra) * np.cos(np.deg2rad(dec)),
            np.asarray(table["DELTA_J2000"]) - dec,
        )
        * 3600
    )
    return table[d < radius_arcsec]
