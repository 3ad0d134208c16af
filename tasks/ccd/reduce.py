"""Reduction of a raw science frame to L1a: overscan, bias, dark, flat, gain, masks, cosmic rays.

The masters come from the CALDB, selected by the frame's observation time (and filter,
temperature, exposure), never by path unless a path override is configured. The L1a file
holds the image in electrons (SCI), its variance (VAR, electrons^2) and a data-quality mask
(DQ) whose bits are :data:`DQ_BITS`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.products.ogip import write_hdulist
from svomflow.tasks.ccd.camera import CameraModel
from svomflow.tasks.ccd.frames import parse_date_obs, read_raw
from svomflow.tasks.ccd.master_builders import MasterFrame, _set_card, read_master
from svomflow.tasks.ccd.overscan import OverscanConfig, subtract_overscan

__all__ = [
    "CALIBRATIONS_NEEDED",
    "DQ_BITS",
    "MasterSet",
    "ReducedFrame",
    "ReductionConfig",
    "reduce_file",
    "reduce_frame",
    "resolve_masters",
    "write_l1a",
]

#: CALDB code names this step needs (ARCHITECTURE.md §3).
CALIBRATIONS_NEEDED = ("BIAS", "DARK", "FLAT")

#: Data-quality bits of the DQ extension.
DQ_BITS = {"BAD": 1, "SATURATED": 2, "COSMIC_RAY": 4, "NONFINITE": 8, "NO_FLAT": 16}


class ReductionConfig(StepConfig):
    """Science-frame reduction options."""

    overscan: OverscanConfig = Field(default_factory=OverscanConfig)
    dark_temperature_scaling: bool = Field(
        True, description="Scale the master dark to the frame's CCD temperature (doubling law)"
    )
    hot_pixel_e_per_s: float = Field(
        1.0, gt=0, description="[e-/s] pixels of the master dark above this are flagged BAD"
    )
    flat_valid_range: tuple[float, float] = Field(
        (0.5, 1.5), description="Pixels whose master flat is outside this range are flagged BAD"
    )
    cosmic_rays: bool = Field(True, description="Detect cosmic rays (astroscrappy L.A.Cosmic)")
    cr_sigclip: float = Field(5.0, gt=0, description="L.A.Cosmic detection limit (sigma)")
    cr_objlim: float = Field(5.0, gt=0, description="L.A.Cosmic contrast limit against stars")
    cr_niter: int = Field(3, ge=1, description="L.A.Cosmic iterations")
    overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Code name (BIAS, DARK, FLAT) -> master file used instead of the CALDB",
    )


@dataclass
class MasterSet:
    """The masters used for one frame, with what the product records about them."""

    bias: MasterFrame
    dark: MasterFrame | None
    flat: MasterFrame | None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ReducedFrame:
    """An L1a image: electrons, variance, data-quality mask and header."""

    sci: np.ndarray
    var: np.ndarray
    dq: np.ndarray
    header: fits.Header


def resolve_masters(
    header: Mapping[str, Any] | fits.Header,
    camera: CameraModel,
    *,
    caldb: Any = None,
    overrides: Mapping[str, str] | None = None,
) -> MasterSet:
    """Select the bias, dark and flat for a frame from the CALDB by its observation time.

    Raises
    ------
    CalibrationNotFoundError
        When no bias, dark or flat is valid for the frame (the message names the file type).
    """
    from svomflow.calibration.caldb import open_caldb
    from svomflow.products.atomic import sha256_file
    from svomflow.tasks.masters.build import select_master

    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    time = parse_date_obs(camera.header_value(header, "date_obs"))
    filt = str(camera.header_value(header, "filter", "NONE"))
    temp = float(camera.header_value(header, "temperature", np.nan))
    exptime = float(camera.header_value(header, "exposure_time"))
    db = None
    found: dict[str, MasterFrame] = {}
    records: dict[str, dict[str, Any]] = {}
    for code, kind in (("BIAS", "bias"), ("DARK", "dark"), ("FLAT", "flat")):
        if code in overrides:
            path = Path(overrides[code])
            records[code] = {"path": str(path), "sha256": sha256_file(path), "source": "override"}
        else:
            if db is None:
                db = caldb if caldb is not None else open_caldb()
            entry = select_master(
                db, camera, kind, time, filter=filt, temperature=temp, exptime=exptime
            )
            path = Path(entry.path)
            records[code] = {
                "path": str(path),
                "sha256": entry.sha256,
                "source": "caldb",
                "index_version": entry.index_version,
            }
        found[code] = read_master(path)
    return MasterSet(found["BIAS"], found["DARK"], found["FLAT"], records)


def reduce_frame(
    raw: np.ndarray,
    header: fits.Header,
    camera: CameraModel,
    masters: MasterSet,
    config: ReductionConfig | None = None,
) -> ReducedFrame:
    """Reduce one raw frame (pure function: arrays in, arrays out).

    SCI = gain x (raw - overscan - bias - dark x t) / flat, in electrons. VAR holds the
    Poisson and read noise of the frame plus the propagated errors of the masters.
    """
    config = config or ReductionConfig()
    exptime = float(camera.header_value(header, "exposure_time"))
    temp = float(camera.header_value(header, "temperature", np.nan))
    raw_f = np.asarray(raw)
    nonfinite_raw = ~np.isfinite(raw_f) if raw_f.dtype.kind == "f" else None
    saturated = raw_f[camera.image_slice()] >= camera.saturation_adu
    img, _ = subtract_overscan(np.nan_to_num(raw_f, nan=0.0), camera, config.overscan)
    shape = img.shape
    g = camera.gain
    rn_e = float(masters.bias.meta.get("RDNOISE", camera.read_noise_adu)) * g
    for name, m in (("bias", masters.bias), ("dark", masters.dark), ("flat", masters.flat)):
        if m is not None and m.data.shape != shape:
            raise InputDataError(
                f"master {name} has shape {m.data.shape}, the frame {shape}: wrong camera mode?"
            )
    adu = img.astype(np.float64) - masters.bias.data
    var_adu_cal = masters.bias.error.astype(np.float64) ** 2
    dq = np.zeros(shape, dtype=np.uint16)
    if masters.dark is not None:
        f = 1.0
        t_ref = masters.dark.meta.get("CCDTEMP")
        if config.dark_temperature_scaling and t_ref is not None and np.isfinite(temp):
            f = camera.dark_scale(temp, float(t_ref))
        adu -= masters.dark.data * (f * exptime)
        var_adu_cal += (masters.dark.error.astype(np.float64) * f * exptime) ** 2
        hot = masters.dark.data * f * g > config.hot_pixel_e_per_s
        dq[hot] |= DQ_BITS["BAD"]
    electrons = adu * g
    var = np.maximum(electrons, 0.0) + rn_e**2 + var_adu_cal * g**2
    if masters.flat is not None:
        flat = masters.flat.data.astype(np.float64)
        lo, hi = config.flat_valid_range
        bad_flat = ~np.isfinite(flat) | (flat <= 0) | (masters.flat.count == 0)
        dq[bad_flat] |= DQ_BITS["NO_FLAT"]
        dq[~bad_flat & ((flat < lo) | (flat > hi))] |= DQ_BITS["BAD"]
        safe = np.where(bad_flat, 1.0, flat)
        sci = electrons / safe
        ferr = np.where(bad_flat, 0.0, masters.flat.error.astype(np.float64)) / safe
        var = var / safe**2 + (sci * ferr) ** 2
    else:
        sci = electrons
    dq[saturated] |= DQ_BITS["SATURATED"]
    if nonfinite_raw is not None:
        nf = nonfinite_raw[camera.image_slice()]
        dq[nf] |= DQ_BITS["NONFINITE"]
        sci[nf] = np.nan
        var[nf] = np.nan
    if config.cosmic_rays:
        dq |= _cosmic_rays(sci, dq, rn_e, config)
    h = fits.Header()
    for card in header.cards:
        if card.keyword in {
            "BZERO",
            "BSCALE",
            "BITPIX",
            "NAXIS",
            "NAXIS1",
            "NAXIS2",
            "SIMPLE",
            "EXTEND",
        }:
            continue
        if card.keyword in {"COMMENT", "HISTORY"} or card.keyword == "":
            continue
        h[card.keyword] = (card.value, card.comment)
    h["BUNIT"] = ("electron", "unit of SCI")
    h["PROCLEV"] = ("L1a", "processing level")
    h["NCOSMIC"] = (
        int(np.count_nonzero(dq & DQ_BITS["COSMIC_RAY"])),
        "pixels flagged as cosmic rays",
    )
    h["NSATUR"] = (int(np.count_nonzero(saturated)), "saturated pixels")
    return ReducedFrame(sci.astype(np.float32), var.astype(np.float32), dq, h)


def _cosmic_rays(
    sci: np.ndarray, dq: np.ndarray, rn_e: float, config: ReductionConfig
) -> np.ndarray:
    import astroscrappy

    data = np.nan_to_num(sci, nan=0.0).astype(np.float32)
    mask, _ = astroscrappy.detect_cosmics(
        data,
        inmask=(dq & (DQ_BITS["SATURATED"] | DQ_BITS["NONFINITE"])) > 0,
        gain=1.0,
        readnoise=rn_e,
        satlevel=np.inf,
        sigclip=config.cr_sigclip,
        objlim=config.cr_objlim,
        niter=config.cr_niter,
        sepmed=True,
        cleantype="meanmask",
    )
    return np.where(mask, DQ_BITS["COSMIC_RAY"], 0).astype(np.uint16)


def write_l1a(frame: ReducedFrame, path: str | Path, masters: MasterSet | None = None) -> Path:
    """Write an L1a FITS file (primary header, SCI, VAR, DQ) atomically."""
    prim = fits.PrimaryHDU(header=frame.header.copy())
    prim.header["DATE"] = (_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "file creation")
    if masters is not None:
        for code, rec in masters.records.items():
            _set_card(
                prim.header, f"CAL{code[:5]}", Path(rec["path"]).name[:68], f"master {code.lower()}"
            )
            if rec.get("sha256"):
                _set_card(prim.header, f"SHA{code[:5]}", str(rec["sha256"]), "sha256")
    wcs_cards = WCS(frame.header).to_header() if "CTYPE1" in frame.header else fits.Header()
    sci = fits.ImageHDU(frame.sci, header=wcs_cards, name="SCI")
    sci.header["BUNIT"] = "electron"
    var = fits.ImageHDU(frame.var, name="VAR")
    var.header["BUNIT"] = "electron2"
    dq = fits.ImageHDU(frame.dq, name="DQ")
    for name, bit in DQ_BITS.items():
        dq.header[f"DQ_{name[:5]}"] = (bit, f"bit value of {name}")
    return write_hdulist([prim, sci, var, dq], path)


def reduce_file(
    raw_path: str | Path,
    out_path: str | Path,
    camera: CameraModel,
    *,
    caldb: Any = None,
    config: ReductionConfig | None = None,
) -> Path:
    """Reduce a raw FITS file to an L1a FITS file, masters selected from the CALDB."""
    config = config or ReductionConfig()
    raw, header = read_raw(raw_path, camera)
    masters = resolve_masters(header, camera, caldb=caldb, overrides=config.overrides)
    frame = reduce_frame(raw, header, camera, masters, config)
    return write_l1a(frame, out_path, masters)
