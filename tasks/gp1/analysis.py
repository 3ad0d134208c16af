"""GP1 per-image modules as file-to-file steps with a small JSON state per image.

Each module reads the files the previous one wrote in the image's work directory
(``<output>/<TRIGID>/<INSTRUME>/<FILTER>/``, built with :func:`svomflow.paths.safe_join`)
and writes its own, atomically, then records its figures in ``<stem>.json``. That state is
what Prefect tasks pass along (a few hundred bytes, never arrays), and what a restarted
pipeline or the sequence step reads back. The maths lives in the ``svomflow.tasks``
photometry/astrometry/subtraction steps; this module only wires them.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning
from svomflow.errors import InputDataError
from svomflow.paths import safe_join
from svomflow.products.atomic import atomic_path, atomic_write_bytes
from svomflow.tasks.astrometry.align import align_to_reference_image
from svomflow.tasks.astrometry.solve import read_reference_catalog, solve_astrometry
from svomflow.tasks.ccd.camera import CameraModel, load_camera
from svomflow.tasks.ccd.fitsio import read_image
from svomflow.tasks.gp1.config import GP1Config
from svomflow.tasks.gp1.reduction import read_reduced, reduce_frame, write_reduced
from svomflow.tasks.photometry.extract import catalog_to_hdu, extract_sources, read_catalog
from svomflow.tasks.photometry.limits import limiting_magnitude
from svomflow.tasks.photometry.measure import fit_psf_photometry, noise_map
from svomflow.tasks.photometry.psf import PSFModel, fit_psf, select_psf_stars
from svomflow.tasks.photometry.zeropoint import (
    fit_zero_point,
    match_reference,
    reference_mag_column,
)
from svomflow.tasks.subtraction.alard_lupton import subtract_images
from svomflow.tasks.subtraction.candidates import find_candidates
from svomflow.tasks.subtraction.reference import model_reference, reproject_reference

__all__ = [
    "image_work_dir",
    "load_state",
    "run_astrometry",
    "run_findstars",
    "run_photometry",
    "run_reduction",
    "run_subtraction",
    "save_state",
]


def _wcs(header: fits.Header) -> WCS | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(header)
    return w.celestial if w.has_celestial else None


def _read_reference(path: str | Path) -> tuple[np.ndarray, fits.Header]:
    """Read a reference image (plain, ``.fits.gz`` or ``.fits.fz``) as float and its header."""
    data, header = read_image(path)
    return np.asarray(data, dtype=float), header


def save_state(state: dict[str, Any]) -> dict[str, Any]:
    """Write the image state JSON atomically next to the image products; return it."""
    path = Path(state["work_dir"]) / f"{state['stem']}.json"
    atomic_write_bytes(path, json.dumps(state, indent=1, default=float).encode())
    return state


def load_state(path: str | Path) -> dict[str, Any]:
    """Read an image state JSON."""
    return json.loads(Path(path).read_text())


def _mjd(date_obs: str) -> float:
    t = _dt.datetime.fromisoformat(str(date_obs).replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    epoch = _dt.datetime(1858, 11, 17, tzinfo=_dt.UTC)
    return (t - epoch).total_seconds() / 86400.0


def image_work_dir(
    header: fits.Header, cfg: GP1Config, camera: CameraModel
) -> tuple[Path, str, str, str]:
    """Return (work dir, trigger id, instrument, filter) from header keys, checked.

    Raises
    ------
    PathEscapeError
        When a header value would leave the output directory (``../..``, ``/``...).
    """
    trig = header.get(cfg.alert_keyword)
    trigger = str(trig).strip() if trig not in (None, "") else "no_trigger"
    instrument = str(camera.header_value(header, "camera")).strip()
    band = str(camera.header_value(header, "filter")).strip()
    return safe_join(cfg.output_dir, trigger, instrument, band), trigger, instrument, band


def run_reduction(raw_path: str | Path, cfg: GP1Config) -> dict[str, Any]:
    """Reduce a raw frame into its work directory; return the new image state."""
    camera = load_camera(cfg.instrument)
    p = Path(raw_path)
    red = reduce_frame(p, camera, cfg.steps.reduction)
    h = red.header
    work, trigger, instrument, band = image_work_dir(h, cfg, camera)
    stem = p.name.split(".")[0]
    exptime = float(camera.header_value(h, "exposure_time"))
    if not exptime > 0:
        raise InputDataError(f"{p}: exposure time must be positive, got {exptime}")
    date_obs = str(camera.header_value(h, "date_obs"))
    alert = cfg.alert_keyword in h and str(h[cfg.alert_keyword]).strip() != ""
    reduced = work / f"{stem}.red.fits"
    write_reduced(red, reduced)
    state = {
        "raw": str(p.resolve()),
        "stem": stem,
        "work_dir": str(work),
        "reduced": str(reduced),
        "trigger": trigger,
        "instrument": instrument,
        "filter": band,
        "object": str(h.get(camera.kw("object"), "")),
        "exptime": exptime,
        "date_obs": date_obs,
        "mjd_mid": _mjd(date_obs) + 0.5 * exptime / 86400.0,
        "alert": bool(alert),
        "gain": float(h.get("GAIN", camera.gain)),
        "saturation": float(h.get("SATURATE", camera.saturation_adu)),
        "redlevel": str(h.get("REDLEVEL", "")),
        "bad_fraction": float(h.get("BADFRAC", 0.0)),
        "calibration": red.calibration,
        "done": ["reduction"],
    }
    return save_state(state)


def run_findstars(state: dict[str, Any], cfg: GP1Config) -> dict[str, Any]:
    """Extract sources from the reduced image; write ``<stem>.cat.fits``."""
    img = read_reduced(state["reduced"])
    ex = extract_sources(
        img.data,
        cfg.steps.findstars.extract,
        mask=img.mask,
        wcs=_wcs(img.header),
        gain=state["gain"],
        saturation=state["saturation"],
    )
    cat_path = Path(state["work_dir"]) / f"{state['stem']}.cat.fits"
    with atomic_path(cat_path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), catalog_to_hdu(ex.catalog)]).writeto(tmp)
    clean = ex.catalog[(ex.catalog["FLAGS"] == 0) & (ex.catalog["FLUX_AUTO"] > 0)]
    snr = clean["FLUX_AUTO"] / np.maximum(clean["FLUXERR_AUTO"], 1e-30)
    fwhm = float(np.median(clean["FWHM_IMAGE"][snr > 20])) if np.any(snr > 20) else float("nan")
    state.update(
        catalog=str(cat_path),
        n_sources=len(ex.catalog),
        back_level=ex.global_back,
        back_rms=ex.global_rms,
        fwhm_sep=fwhm,
    )
    state["done"].append("findstars")
    return save_state(state)


def _reference_catalog_path(cfg: GP1Config, state: dict[str, Any]) -> Path | None:
    ref = cfg.steps.astrometry.reference_catalog
    if ref is None:
        return None
    p = Path(ref)
    if p.is_dir():
        name = state.get("object") or state["trigger"]
        cand = p / f"{name}.fits"
        if not cand.is_file():
            raise InputDataError(f"no reference catalog {cand} for field {name!r}")
        return cand
    return p


def run_astrometry(state: dict[str, Any], cfg: GP1Config) -> dict[str, Any]:
    """Solve the WCS; update the reduced image header and the catalog sky positions."""
    mod = cfg.steps.astrometry
    img = read_reduced(state["reduced"])
    cat = read_catalog(state["catalog"])
    guess = _wcs(img.header)
    if guess is None:
        raise InputDataError(f"{state['reduced']}: no WCS in the header to start from")
    if mod.reference_image:
        rdata, rheader = _read_reference(mod.reference_image)
        rwcs = _wcs(rheader)
        if rwcs is None:
            raise InputDataError(f"reference image {mod.reference_image} has no WCS")
        rcat = extract_sources(rdata, cfg.steps.findstars.extract, wcs=rwcs).catalog
        sol = align_to_reference_image(cat, rcat, guess, img.data.shape, mod.astrometry)
    else:
        refp = _reference_catalog_path(cfg, state)
        if refp is None:
            raise InputDataError("astrometry: no reference_catalog or reference_image set")
        ref = read_reference_catalog(refp)
        try:
            mcol = reference_mag_column(ref, state["filter"])
        except InputDataError:
            mcol = None
        sol = solve_astrometry(cat, ref, guess, img.data.shape, mod.astrometry, reference_mag=mcol)
        state["reference_catalog"] = str(refp)
    # Replace the WCS keywords of the header by the fitted solution.
    h = img.header
    for key in [*list(guess.to_header(relax=True).keys()), "CD1_1", "CD1_2", "CD2_1", "CD2_2"]:
        h.remove(key, ignore_missing=True, remove_all=True)
    h.update(sol.wcs.to_header(relax=True))
    for key, val, com in sol.header_cards():
        h[key] = (val, com)
    from svomflow.tasks.gp1.reduction import ReducedImage

    write_reduced(
        ReducedImage(img.data, img.mask, h, state.get("calibration", [])), Path(state["reduced"])
    )
    ra, dec = sol.wcs.pixel_to_world_values(cat["XWIN_IMAGE"] - 1.0, cat["YWIN_IMAGE"] - 1.0)
    cat["ALPHA_J2000"] = np.asarray(ra) % 360.0
    cat["DELTA_J2000"] = np.asarray(dec)
    with atomic_path(state["catalog"]) as tmp:
        fits.HDUList([fits.PrimaryHDU(), catalog_to_hdu(cat)]).writeto(tmp)
    state.update(
        astrometry_n=sol.n_matched,
        astrometry_rms_arcsec=sol.rms_arcsec,
        astrometry_shift_pix=list(sol.shift_pix),
        astrometry_rotation_deg=sol.rotation_deg,
    )
    state["done"].append("astrometry")
    return save_state(state)


def _psf_from_state(state: dict[str, Any]) -> PSFModel:
    return PSFModel(**state["psf"])


def run_photometry(state: dict[str, Any], cfg: GP1Config) -> dict[str, Any]:
    """PSF fit, PSF and aperture photometry of all sources, zero point, limiting magnitude."""
    mod = cfg.steps.photometry
    img = read_reduced(state["reduced"])
    cat = read_catalog(state["catalog"])
    ex_cfg = cfg.steps.findstars.extract
    from svomflow.tasks.photometry.extract import estimate_background

    data = np.where(img.mask, 0.0, img.data).astype(np.float64)
    bkg = estimate_background(data, ex_cfg, img.mask if img.mask.any() else None)
    sub = data - bkg.back()
    err = noise_map(bkg.rms(), sub, state["gain"])
    err = np.where(img.mask, 1e30, err)
    stars = select_psf_stars(
        cat,
        sub.shape,
        half_size=mod.psf_half_size,
        saturation=state["saturation"],
        max_stars=mod.psf_max_stars,
    )
    if len(stars) < 3:
        raise InputDataError(f"{state['stem']}: only {len(stars)} stars usable for the PSF")
    fit = fit_psf(sub, stars, half_size=mod.psf_half_size, noise=err, with_wings=mod.psf_wings)
    psf = fit.model
    ok = cat["FLUX_AUTO"] > 0
    pcat = cat[ok]
    ph = fit_psf_photometry(
        sub,
        np.asarray(pcat["XWIN_IMAGE"]) - 1,
        np.asarray(pcat["YWIN_IMAGE"]) - 1,
        psf,
        error=err,
        config=mod.photometry,
        mask=img.mask,
    )
    for col in ph.colnames:
        pcat[col] = ph[col]
    exptime = state["exptime"]
    with np.errstate(divide="ignore", invalid="ignore"):
        inst = -2.5 * np.log10(np.asarray(pcat["FLUX_PSF"], float) / exptime)
        inst_err = 2.5 / np.log(10) * pcat["FLUXERR_PSF"] / pcat["FLUX_PSF"]
    zp = None
    refp = state.get("reference_catalog") or _reference_catalog_path(cfg, state)
    if refp is not None and np.isfinite(pcat["ALPHA_J2000"]).any():
        ref = read_reference_catalog(refp)
        mcol = reference_mag_column(ref, state["filter"])
        si, ri = match_reference(
            np.asarray(pcat["ALPHA_J2000"], float),
            np.asarray(pcat["DELTA_J2000"], float),
            ref,
            mod.zeropoint.match_radius_arcsec,
        )
        snr = np.asarray(pcat["FLUX_PSF"])[si] / np.asarray(pcat["FLUXERR_PSF"])[si]
        good = (snr >= mod.zeropoint.min_snr) & (np.asarray(pcat["FLAGS"])[si] == 0)
        colour = None
        if mod.zeropoint.colour_term and mod.zeropoint.colour_bands:
            b1, b2 = mod.zeropoint.colour_bands
            colour = (
                np.asarray(ref[reference_mag_column(ref, b1)], float)[ri]
                - np.asarray(ref[reference_mag_column(ref, b2)], float)[ri]
            )[good]
        zp = fit_zero_point(
            inst[si][good],
            inst_err[si][good],
            np.asarray(ref[mcol], float)[ri][good],
            colour=colour,
            config=mod.zeropoint,
        )
        pcat["MAG_PSF"] = inst + zp.zp
        pcat["MAGERR_PSF"] = np.sqrt(inst_err**2 + zp.zp_err**2)
        state.update(
            zp=zp.zp,
            zp_err=zp.zp_err,
            zp_scatter=zp.scatter,
            zp_n=zp.n_used,
            zp_colour_term=zp.colour_term,
        )
        # The calibrators, for the calibration plot of the summary.
        state["zp_points"] = {
            "ref": np.asarray(ref[mcol], float)[ri][good].round(4).tolist(),
            "resid": (np.asarray(ref[mcol], float)[ri][good] - inst[si][good] - zp.zp)
            .round(4)
            .tolist(),
        }
    rms = float(np.median(bkg.rms()))
    zp_val = zp.zp if zp is not None else 0.0
    mlim = limiting_magnitude(
        rms, psf, zp_val, exptime, nsigma=mod.limit_nsigma, gain=state["gain"]
    )
    phot_path = Path(state["work_dir"]) / f"{state['stem']}.phot.fits"
    hdr = fits.Header()
    hdr["FWHM"] = (round(fit.fwhm, 4), "[pix] PSF FWHM")
    for k, v in psf.to_dict().items():
        hdr[f"PSF_{k[:4].upper()}"] = (round(v, 5), f"PSF {k}")
    if zp is not None:
        for key, val, com in zp.header_cards():
            hdr[key] = (val, com)
    hdr["MAGLIM"] = (round(mlim, 4), f"[mag] {mod.limit_nsigma:g}-sigma limiting magnitude")
    tab = catalog_to_hdu(pcat)
    tab.header.extend(hdr, update=True)
    with atomic_path(phot_path) as tmp:
        fits.HDUList([fits.PrimaryHDU(header=hdr), tab]).writeto(tmp)
    state.update(
        photometry=str(phot_path),
        psf=psf.to_dict(),
        fwhm=fit.fwhm,
        fwhm_arcsec=fit.fwhm * load_camera(cfg.instrument).pixel_scale_arcsec,
        psf_chi2=fit.reduced_chi2,
        psf_n=fit.n_stars,
        back_rms_median=rms,
        maglim=mlim,
        calibrated=zp is not None,
    )
    state["done"].append("photometry")
    return save_state(state)


def _reference_for(
    state: dict[str, Any], cfg: GP1Config, img_shape: tuple[int, int], wcs: WCS
) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (reference image on the science grid, its noise, its FWHM)."""
    mod = cfg.steps.subtraction
    psf = _psf_from_state(state)
    if mod.reference_image:
        rdata, rheader = _read_reference(mod.reference_image)
        rwcs = _wcs(rheader)
        rfwhm = float(rheader.get("FWHM", psf.fwhm))
        if rwcs is None:
            raise InputDataError(f"reference image {mod.reference_image} has no WCS")
        from svomflow.tasks.photometry.extract import ExtractConfig, estimate_background

        bk = estimate_background(np.nan_to_num(rdata), ExtractConfig())
        rsub = reproject_reference(rdata - bk.back(), rwcs, wcs, img_shape)
        rnoise = np.full(img_shape, float(bk.globalrms))
        return rsub, rnoise, rfwhm
    refp = state.get("reference_catalog")
    if not refp:
        raise InputDataError("subtraction: no reference image and no reference catalog")
    if "zp" not in state:
        raise InputDataError("subtraction: a model reference needs the zero point")
    ref = read_reference_catalog(refp)
    mcol = reference_mag_column(ref, state["filter"])
    model = model_reference(img_shape, wcs, ref, mcol, psf, state["zp"], state["exptime"])
    # A model has no pixel noise; a small floor keeps the weights finite.
    return model, np.full(img_shape, 1e-3 * state["back_rms_median"]), psf.fwhm


def run_subtraction(state: dict[str, Any], cfg: GP1Config) -> dict[str, Any]:
    """Subtract the reference, find and vet candidates; write difference and candidates."""
    mod = cfg.steps.subtraction
    img = read_reduced(state["reduced"])
    wcs = _wcs(img.header)
    if wcs is None:
        raise InputDataError(f"{state['reduced']}: no WCS for the subtraction")
    from svomflow.tasks.photometry.extract import estimate_background

    data = np.where(img.mask, 0.0, img.data).astype(np.float64)
    bkg = estimate_background(
        data, cfg.steps.findstars.extract, img.mask if img.mask.any() else None
    )
    sub = data - bkg.back()
    err = noise_map(bkg.rms(), sub, state["gain"])
    ref, ref_noise, ref_fwhm = _reference_for(state, cfg, sub.shape, wcs)
    psf = _psf_from_state(state)
    pcat = read_catalog(state["photometry"])
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
        science_fwhm=state["fwhm"],
        reference_fwhm=ref_fwhm,
        star_x=sx,
        star_y=sy,
        mask=bad,
        config=mod.subtraction,
    )
    diff_psf = psf if res.psf_of == "science" else PSFModel(sigma=ref_fwhm / 2.3548)
    cands = find_candidates(res.difference, res.noise, diff_psf, wcs=wcs, config=mod.candidates)
    exptime = state["exptime"]
    zp = state.get("zp")
    if zp is not None and len(cands):
        with np.errstate(divide="ignore", invalid="ignore"):
            cands["MAG_PSF"] = zp - 2.5 * np.log10(np.asarray(cands["FLUX_PSF"]) / exptime)
            cands["MAGERR_PSF"] = np.sqrt(
                (2.5 / np.log(10) * cands["FLUXERR_PSF"] / cands["FLUX_PSF"]) ** 2
                + state["zp_err"] ** 2
            )
    work = Path(state["work_dir"])
    diff_path = work / f"{state['stem']}.diff.fits"
    h = wcs.to_header(relax=True)
    h["KSCALE"] = (round(res.scale, 6), "flux scale of the subtraction kernel")
    h["KBACK"] = (round(res.background, 4), "[adu] differential background")
    h["KSTAMPS"] = (res.n_stamps, "stamps used for the kernel")
    h["CONVOLVD"] = (res.convolved, "which image was convolved")
    h["DIFFPSF"] = (res.psf_of, "PSF of point sources in the difference")
    with atomic_path(diff_path) as tmp:
        fits.HDUList(
            [
                fits.PrimaryHDU(res.difference.astype(np.float32), header=h),
                fits.ImageHDU(res.noise.astype(np.float32), header=h, name="NOISE"),
            ]
        ).writeto(tmp)
    cand_path = work / f"{state['stem']}.cand.fits"
    with atomic_path(cand_path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(cands)]).writeto(tmp)
    kept = cands[cands["REJECT"] == "ok"] if len(cands) else cands
    state.update(
        difference=str(diff_path),
        candidates=str(cand_path),
        n_candidates=len(kept),
        n_rejected=len(cands) - len(kept),
        kernel_scale=res.scale,
        diff_psf=diff_psf.to_dict(),
        diff_error_scale=float(cands.meta.get("ERRSCALE", (1.0,))[0])
        if isinstance(cands.meta.get("ERRSCALE"), tuple)
        else float(cands.meta.get("ERRSCALE", 1.0)),
    )
    state["done"].append("subtraction")
    return save_state(state)


def forced_difference_photometry(state: dict[str, Any], ra: float, dec: float) -> dict[str, float]:
    """Forced PSF photometry on an image's difference at (ra, dec): position, flux, error."""
    from svomflow.tasks.photometry.measure import PhotometryConfig

    psf = PSFModel(**state["diff_psf"])
    h = int(np.ceil(3 * psf.fwhm)) + 4  # the fit box is a few FWHM wide: read a cutout only
    with fits.open(state["difference"], memmap=True) as hdul:
        wcs = _wcs(hdul[0].header)
        if wcs is None:
            raise InputDataError(f"{state['difference']}: no WCS")
        x, y = (float(v) for v in wcs.world_to_pixel_values(ra, dec))
        out = {"x": x, "y": y, "flux": math.nan, "flux_err": math.nan}
        ny, nx = hdul[0].data.shape
        if not (5 <= x < nx - 5 and 5 <= y < ny - 5):
            return out
        i0, j0 = max(round(x) - h, 0), max(round(y) - h, 0)
        d = np.array(hdul[0].data[j0 : round(y) + h + 1, i0 : round(x) + h + 1], dtype=float)
        nz = np.array(hdul["NOISE"].data[j0 : round(y) + h + 1, i0 : round(x) + h + 1], dtype=float)
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
    scale = float(state.get("diff_error_scale", 1.0))
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
