"""The MXT processing steps with their file I/O (what the ``mxt_analysis`` flow's tasks call).

Each function reads its inputs from files, calls the pure steps and writes its products
atomically, returning small references (paths and numbers), never arrays.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from pydantic import Field
from svomflow.config import load_instrument
from svomflow.config.base import StepConfig
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.products.ogip import (
    TimeReference,
    gti_hdu,
    lightcurve_hdu,
    primary_hdu,
    write_hdulist,
)
from svomflow.tasks.xray.calibrate import CALIBRATION_CODES, calibrate_events, load_calibration
from svomflow.tasks.xray.detect import DetectConfig, band_images, detect_sources, sky_to_pixel
from svomflow.tasks.xray.events import merge_passes, read_attitude, read_pass, read_saa
from svomflow.tasks.xray.lightcurve import arf_hdu, rmf_hdu, source_lightcurve, source_spectrum
from svomflow.tasks.xray.preview import plot_image, plot_lightcurve

__all__ = [
    "MXTAnalysisConfig",
    "calibration_requirements",
    "mission_time_to_utc",
    "step_calibrate",
    "step_detect",
    "step_merge",
    "step_products",
]

log = logging.getLogger(__name__)


class MXTAnalysisConfig(StepConfig):
    """Configuration of the ``mxt_analysis`` flow."""

    detect: DetectConfig = Field(default_factory=DetectConfig, description="Source detection")
    lc_min_counts: int = Field(20, description="Minimum counts per light-curve bin")
    extraction_radius_arcmin: float = Field(3.0, description="Source extraction radius (arcmin)")
    blocks_p0: float = Field(
        0.05, description="Bayesian-blocks false-positive rate per change point"
    )


def mission_time_to_utc(t: float, mjdref: float) -> str:
    """Return the ISO UTC date of a mission time (TT seconds since MJDREF)."""
    return Time(mjdref + t / 86400.0, format="mjd", scale="tt").utc.isot


def calibration_requirements(instrument: str = "MXT") -> list[dict[str, Any]]:
    """Return the CALDB requirements of the flow (GAIN, CTI, PATTERN, PSF)."""
    return [
        {"name": k, "codename": v, "instrument": instrument} for k, v in CALIBRATION_CODES.items()
    ]


def _columns_hdu(cols: Mapping[str, tuple[str, Any, str | None]], name: str) -> fits.BinTableHDU:
    return fits.BinTableHDU.from_columns(
        [fits.Column(k, fmt, unit=unit, array=arr) for k, (fmt, arr, unit) in cols.items()],
        name=name,
    )


def step_merge(
    l1_files: Sequence[str], attitude_file: str, saa_file: str, out_dir: str
) -> dict[str, Any]:
    """Merge the pass files into one time-sorted pixel-event file with GTIs and labelled gaps."""
    inst = load_instrument("mxt")
    passes = [read_pass(f, inst) for f in l1_files]
    merged = merge_passes(passes, read_attitude(attitude_file), read_saa(saa_file))
    ev = merged.events
    h = _columns_hdu(
        {
            "TIME": ("D", ev["TIME"], "s"), "FRAME": ("K", ev["FRAME"], None),
            "RAWX": ("I", ev["RAWX"].astype(np.int16), "pixel"),
            "RAWY": ("I", ev["RAWY"].astype(np.int16), "pixel"), "PHA": ("J", ev["PHA"].astype(np.int32), "adu"),
        },
        "EVENTS",
    )  # fmt: skip
    for k, v, c in merged.header_cards():
        h.header[k] = (v, c)
    tref = TimeReference(float(inst.get("time_reference.mjdref")))
    gaps = merged.gaps
    gap_h = _columns_hdu(
        {
            "START": ("D", np.array([g[0] for g in gaps], dtype=float), "s"),
            "STOP": ("D", np.array([g[1] for g in gaps], dtype=float), "s"),
            "CAUSE": ("12A", np.array([g[2] for g in gaps], dtype="U12"), None),
        },
        "GAPS",
    )
    path = Path(out_dir) / "mxt_evt_merged.fits"
    write_hdulist(
        [
            primary_hdu(telescope=inst.telescope, instrument=inst.instrument),
            h,
            gti_hdu(
                merged.gti[:, 0],
                merged.gti[:, 1],
                timeref=tref,
                telescope=inst.telescope,
                instrument=inst.instrument,
            ),
            gap_h,
        ],
        path,
    )
    return {
        "path": str(path),
        "counts": merged.counts,
        "tstart": merged.tstart,
        "tstop": merged.tstop,
    }


def step_calibrate(
    merged_file: str, calibration: Mapping[str, str], out_dir: str
) -> dict[str, Any]:
    """Calibrate the merged pixel events (gain/offset, CTI, patterns) into an event file."""
    inst = load_instrument("mxt")
    with fits.open(merged_file) as hdul:
        d = hdul["EVENTS"].data
        ev = {c: np.asarray(d[c]) for c in ("TIME", "FRAME", "RAWX", "RAWY", "PHA")}
        hdr = hdul["EVENTS"].header.copy()
        gti = hdul["GTI"].copy()
        gaps = hdul["GAPS"].copy()
    cal = load_calibration(dict(calibration), int(inst.get("ccd.npix_x")))
    ce = calibrate_events(
        ev, cal, channel_width_kev=float(inst.get("channels.channel_width_kev")),
        n_channels=int(inst.get("channels.n_channels")),
    )  # fmt: skip
    h = _columns_hdu(
        {
            "TIME": ("D", ce.time, "s"), "FRAME": ("K", ce.frame, None),
            "RAWX": ("I", ce.rawx.astype(np.int16), "pixel"), "RAWY": ("I", ce.rawy.astype(np.int16), "pixel"),
            "ENERGY": ("E", ce.energy_kev.astype(np.float32), "keV"), "PI": ("J", ce.pi.astype(np.int32), None),
            "PATTERN": ("I", ce.pattern.astype(np.int16), None), "MULTI": ("I", ce.multiplicity.astype(np.int16), None),
        },
        "EVENTS",
    )  # fmt: skip
    for k in hdr:
        if (
            k.startswith(("N", "RA_", "DEC_", "PA_", "TST"))
            and k not in h.header
            and not k.startswith("NAXIS")
        ):
            h.header[k] = (hdr[k], hdr.comments[k])
    h.header["NINVPAT"] = (ce.counts["n_invalid_pattern"], "events dropped: invalid pattern")
    h.header["NEVENTS"] = (ce.counts["n_calibrated"], "calibrated X-ray events")
    for i, (k, v) in enumerate(sorted(cal.files.items()), start=1):
        h.header[f"CALFIL{i:02d}"] = (Path(v).name[:60], f"{k} calibration file")
    path = Path(out_dir) / "mxt_evt_cal.fits"
    write_hdulist(
        [primary_hdu(telescope=inst.telescope, instrument=inst.instrument), h, gti, gaps], path
    )
    return {"path": str(path), "counts": ce.counts}


def _read_cal_events(
    path: str,
) -> tuple[dict[str, np.ndarray], fits.Header, np.ndarray, list[tuple[float, float, str]]]:
    try:
        with fits.open(path) as hdul:
            d = hdul["EVENTS"].data
            ev = {c: np.asarray(d[c]) for c in ("TIME", "RAWX", "RAWY", "ENERGY", "PI")}
            h = hdul["EVENTS"].header.copy()
            g = hdul["GTI"].data
            gti = np.column_stack([g["START"], g["STOP"]]).astype(float)
            gp = hdul["GAPS"].data
            gaps = [
                (float(a), float(b), str(c).strip())
                for a, b, c in zip(gp["START"], gp["STOP"], gp["CAUSE"], strict=True)
            ]
    except (OSError, KeyError) as exc:
        raise InputDataError(f"{path}: not a calibrated MXT event file ({exc})") from None
    return ev, h, gti, gaps


def step_detect(
    cal_file: str,
    psf_file: str,
    out_dir: str,
    cfg: DetectConfig,
    prior_radec: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Run both detection stages and write the source list (FITS table)."""
    from svomflow.tasks.xray.psf import PSFModel

    inst = load_instrument("mxt")
    ev, h, gti, _ = _read_cal_events(cal_file)
    shape = (int(inst.get("ccd.npix_y")), int(inst.get("ccd.npix_x")))
    scale = float(inst.get("ccd.pixel_scale_arcsec"))
    bands = [tuple(b) for b in inst.get("bands_kev.detection")]
    imgs = band_images(
        ev["RAWX"].astype(np.int64), ev["RAWY"].astype(np.int64), ev["ENERGY"], bands, shape
    )
    att = Attitude(float(h["RA_PNT"]), float(h["DEC_PNT"]), float(h["PA_PNT"]))
    exposure = float(np.diff(gti, axis=1).sum())
    prior_xy = None
    if prior_radec is not None:
        px, py = sky_to_pixel(prior_radec[0], prior_radec[1], att, scale, shape)
        prior_xy = (float(px), float(py))
    srcs, cands, _fits = detect_sources(
        imgs,
        PSFModel.from_fits(psf_file),
        att,
        pixel_scale_arcsec=scale,
        exposure_s=exposure,
        cfg=cfg,
        prior_xy=prior_xy,
    )
    nb = len(bands)
    cols = {
        "RA": ("D", np.array([s.ra_deg for s in srcs]), "deg"),
        "DEC": ("D", np.array([s.dec_deg for s in srcs]), "deg"),
        "RADEC_ERR90": ("E", np.array([s.r90_arcsec for s in srcs]), "arcsec"),
        "X": ("E", np.array([s.x for s in srcs]), "pixel"),
        "Y": ("E", np.array([s.y for s in srcs]), "pixel"),
        "COUNTS": ("E", np.array([s.counts for s in srcs]), "count"),
        "COUNTS_ERR": ("E", np.array([s.counts_err for s in srcs]), "count"),
        "RATE": ("E", np.array([s.rate for s in srcs]), "count/s"),
        "RATE_ERR": ("E", np.array([s.rate_err for s in srcs]), "count/s"),
        "DET_ML": ("E", np.array([s.ml for s in srcs]), None),
        "BAND_COUNTS": (f"{nb}E", np.array([s.band_counts for s in srcs]).reshape(-1, nb), "count"),
        "BAND_COUNTS_ERR": (
            f"{nb}E",
            np.array([s.band_counts_err for s in srcs]).reshape(-1, nb),
            "count",
        ),
        "GROUP": ("J", np.array([s.group for s in srcs], dtype=np.int32), None),
    }
    hdu = _columns_hdu(cols, "SRCLIST")
    hdu.header["EXPOSURE"] = (exposure, "[s] GTI exposure")
    hdu.header["NCAND"] = (len(cands), "stage-1 candidates")
    hdu.header["MLTHRESH"] = (cfg.ml_threshold, "detection likelihood threshold")
    for i, (lo, hi) in enumerate(bands, start=1):
        hdu.header[f"BAND{i}"] = (f"{lo}-{hi}", "[keV] band of BAND_COUNTS")
    hdu.header["PRIOR"] = (prior_radec is not None, "burst mode: ECLAIRs prior used")
    for k in (
        "RA_PNT",
        "DEC_PNT",
        "PA_PNT",
        "NBADROW",
        "NDUPLIC",
        "NNOATT",
        "NEARTH",
        "NSAA",
        "NINVPAT",
    ):
        if k in h:
            hdu.header[k] = (h[k], h.comments[k])
    path = Path(out_dir) / "mxt_srclist.fits"
    write_hdulist([primary_hdu(telescope=inst.telescope, instrument=inst.instrument), hdu], path)
    return {
        "path": str(path),
        "n_sources": len(srcs),
        "sources": [
            {
                "ra_deg": s.ra_deg,
                "dec_deg": s.dec_deg,
                "r90_arcsec": s.r90_arcsec,
                "counts": s.counts,
                "ml": s.ml,
            }
            for s in srcs
        ],
    }


def step_products(
    cal_file: str,
    srclist_file: str,
    psf_file: str,
    out_dir: str,
    cfg: MXTAnalysisConfig,
    trigger_time: float | None = None,
) -> dict[str, Any]:
    """Write per-source light curves, spectra with RMF/ARF, and the PNG previews."""
    from svomflow.instruments.mxt_response import effective_area, resolution_sigma_kev
    from svomflow.tasks.xray.psf import PSFModel

    inst = load_instrument("mxt")
    tel, ins = inst.telescope, inst.instrument
    ev, _h, gti, gaps = _read_cal_events(cal_file)
    tref = TimeReference(float(inst.get("time_reference.mjdref")))
    psf = PSFModel.from_fits(psf_file)
    scale = float(inst.get("ccd.pixel_scale_arcsec"))
    shape = (int(inst.get("ccd.npix_y")), int(inst.get("ccd.npix_x")))
    with fits.open(srclist_file) as hdul:
        src = hdul["SRCLIST"].data.copy()
    out = Path(out_dir)
    radius = cfg.extraction_radius_arcmin * 60.0 / scale
    frac = psf.fraction_in_circle(radius)
    nchan = int(inst.get("channels.n_channels"))
    width = float(inst.get("channels.channel_width_kev"))
    e_edges = np.arange(0.2, 10.0 + 1e-9, 0.01)
    e_lo, e_hi = e_edges[:-1], e_edges[1:]
    rmf_path = out / "mxt.rmf"
    write_hdulist(
        [primary_hdu(telescope=tel, instrument=ins),
         *rmf_hdu(e_lo, e_hi, nchan, width, lambda e: resolution_sigma_kev(e, inst), telescope=tel, instrument=ins)],
        rmf_path,
    )  # fmt: skip
    exposure = float(np.diff(gti, axis=1).sum())
    x = ev["RAWX"] + 0.5
    y = ev["RAWY"] + 0.5
    total_area = shape[0] * shape[1]
    t0 = trigger_time if trigger_time is not None else float(gti[0, 0])
    products: dict[str, Any] = {
        "rmf": str(rmf_path),
        "arfs": [],
        "lightcurves": [],
        "spectra": [],
        "previews": [],
    }
    for k, s in enumerate(src, start=1):
        inr = (x - s["X"]) ** 2 + (y - s["Y"]) ** 2 <= radius**2
        # background in the circle: events outside every source circle, scaled by area
        far = np.ones(x.size, bool)
        for s2 in src:
            far &= (x - s2["X"]) ** 2 + (y - s2["Y"]) ** 2 > (2 * radius) ** 2
        n_far_area = total_area - len(src) * math.pi * (2 * radius) ** 2
        bkg_rate = (
            float(far.sum()) / max(n_far_area, 1.0) * math.pi * radius**2 / max(exposure, 1e-9)
        )
        lc = source_lightcurve(
            ev["TIME"], inr, gti, psf_fraction=frac, background_rate=bkg_rate, timeref=tref,
            min_counts=cfg.lc_min_counts, band_kev=(0.3, 10.0), p0=cfg.blocks_p0,
        )  # fmt: skip
        lc_path = out / f"mxt_src{k:02d}_lc.fits"
        write_hdulist(
            [primary_hdu(telescope=tel, instrument=ins),
             lightcurve_hdu(lc.binned, telescope=tel, instrument=ins,
                            extra=[("RA_OBJ", float(s["RA"]), "[deg]"), ("DEC_OBJ", float(s["DEC"]), "[deg]")]),
             gti_hdu(gti[:, 0], gti[:, 1], timeref=tref, telescope=tel, instrument=ins)],
            lc_path,
        )  # fmt: skip
        products["lightcurves"].append(str(lc_path))
        arf_path = out / f"mxt_src{k:02d}.arf"
        write_hdulist(
            [primary_hdu(telescope=tel, instrument=ins),
             arf_hdu(e_lo, e_hi, effective_area(0.5 * (e_lo + e_hi), inst), telescope=tel, instrument=ins, psf_fraction=frac)],
            arf_path,
        )  # fmt: skip
        pha_path = out / f"mxt_src{k:02d}.pha"
        write_hdulist(
            [primary_hdu(telescope=tel, instrument=ins),
             source_spectrum(ev["PI"], inr, nchan, exposure, telescope=tel, instrument=ins,
                             respfile=rmf_path.name, ancrfile=arf_path.name, timeref=tref,
                             tstart=float(gti[0, 0]), tstop=float(gti[-1, 1]))],
            pha_path,
        )  # fmt: skip
        products["arfs"].append(str(arf_path))
        products["spectra"].append(str(pha_path))
        b = lc.binned
        png = plot_lightcurve(
            b.time, b.time + b.timedel, b.rate, b.error, gaps, out / f"mxt_src{k:02d}_lc.png", t0=t0,
            blocks=(lc.blocks_lo, lc.blocks_hi, lc.blocks_rate), title=f"MXT source {k} (0.3-10 keV)",
        )  # fmt: skip
        products["previews"].append(str(png))
    img = np.bincount(
        ev["RAWY"].astype(np.int64) * shape[1] + ev["RAWX"].astype(np.int64),
        minlength=shape[0] * shape[1],
    ).reshape(shape)
    png = plot_image(
        img, [(float(s["X"]), float(s["Y"]), float(s["RADEC_ERR90"]), f"S{k}") for k, s in enumerate(src, start=1)],
        out / "mxt_image.png", pixel_scale_arcsec=scale,
    )  # fmt: skip
    products["previews"].insert(0, str(png))
    return products
