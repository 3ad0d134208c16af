"""Reduction of a raw science frame to L1a: overscan, bias, dark, flat, gain, masks, cosmic rays.

Pure functions: the masters arrive as data (selected from the CALDB by the frame's time,
filter, temperature and exposure in a flow's first task, see
:mod:`svomflow.tasks.ccd.master_selection`). The L1a image holds the image in electrons
(SCI), its variance (VAR, electrons^2) and a data-quality mask (DQ) whose bits are
:data:`DQ_BITS`; :func:`l1a_hdus` lays it out as FITS for a product.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from pydantic import Field
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.ccd_frames import parse_date_obs
from svomflow.products.ccd_masters import MasterFrame, set_card
from svomflow.tasks.ccd._kernels import calibrate_pixels, lacosmic_candidates
from svomflow.tasks.ccd.master_selection import MasterSelection, master_selection, pick_master
from svomflow.tasks.ccd.overscan import OverscanConfig, subtract_overscan

__all__ = [
    "DQ_BITS",
    "MasterSet",
    "ReducedFrame",
    "ReductionConfig",
    "cosmic_ray_boxes",
    "frame_master_selections",
    "l1a_hdus",
    "masters_for_frame",
    "reduce_frame",
]

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
    cr_prescreen: bool = Field(
        True,
        description="Run L.A.Cosmic only on tiles around pixels a fast pre-screen flags as "
        "possible detections (same mask there as on the whole frame); False: whole frame",
    )
    cr_tile_px: int = Field(
        16, ge=4, description="[pixel] side of the tiles the cleaned regions are made of"
    )
    cr_reach_px: int | None = Field(
        None,
        ge=0,
        description="[pixel] distance from a pre-screen detection within which L.A.Cosmic "
        "can still flag pixels; None: 2 (the growth of the first iteration) plus 11 per "
        "later iteration",
    )
    cr_margin_px: int | None = Field(
        None,
        ge=0,
        description="[pixel] context around each region so that L.A.Cosmic's filters see the "
        "same pixels as on the whole frame; None: 10 for one iteration (9 needed) plus 11 "
        "per later iteration",
    )
    cr_full_frame_fraction: float = Field(
        0.6,
        gt=0,
        le=1,
        description="Clean the whole frame at once when the tiles to clean (with their "
        "context) cover more than this fraction of it",
    )

    def cr_reach(self) -> int:
        """Return the reach of L.A.Cosmic beyond a first-iteration detection (pixel)."""
        if self.cr_reach_px is not None:
            return self.cr_reach_px
        return 2 + 11 * (self.cr_niter - 1)

    def cr_margin(self) -> int:
        """Return the context each cleaned region needs on every side (pixel)."""
        if self.cr_margin_px is not None:
            return self.cr_margin_px
        return 10 + 11 * (self.cr_niter - 1)


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


def frame_master_selections(header: fits.Header, camera: CameraModel) -> dict[str, MasterSelection]:
    """Return the selections of the bias, dark and flat of a raw frame, by code name.

    Raises
    ------
    InputDataError
        When the date, exposure time or filter is missing or unreadable.
    """
    time = parse_date_obs(camera.header_value(header, "date_obs"))
    filt = str(camera.header_value(header, "filter", "NONE")).strip() or "NONE"
    try:
        temp = float(camera.header_value(header, "temperature", np.nan))
        exptime = float(camera.header_value(header, "exposure_time"))
    except (TypeError, ValueError):
        raise InputDataError("exposure time or temperature is not a number") from None
    return {
        "BIAS": master_selection(camera, "bias", time),
        "DARK": master_selection(camera, "dark", time, temperature=temp, exptime=exptime),
        "FLAT": master_selection(camera, "flat", time, filter=filt),
    }


def masters_for_frame(
    selections: dict[str, MasterSelection], calibration: CalibrationSet
) -> tuple[MasterSet | None, list[str]]:
    """Return the masters of a frame from the calibration set, or what is missing.

    Returns
    -------
    masters, missing
        The :class:`MasterSet` (``None`` when any master is missing) and the descriptions
        of the missing ones (:meth:`MasterSelection.describe`).
    """
    found: dict[str, MasterFrame] = {}
    records: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for code in ("BIAS", "DARK", "FLAT"):
        picked = pick_master(calibration, selections[code])
        if picked is None:
            missing.append(selections[code].describe())
            continue
        found[code], records[code] = picked
    if missing:
        return None, missing
    return MasterSet(found["BIAS"], found["DARK"], found["FLAT"], records), []


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
    dq = np.zeros(shape, dtype=np.uint16)
    f = 1.0
    if masters.dark is not None:
        t_ref = masters.dark.meta.get("CCDTEMP")
        if config.dark_temperature_scaling and t_ref is not None and np.isfinite(temp):
            f = camera.dark_scale(temp, float(t_ref))
    none = np.zeros((0, 0), np.float32)
    dark, flat = masters.dark, masters.flat
    lo, hi = config.flat_valid_range
    sci = np.empty(shape, np.float32)
    var = np.empty(shape, np.float32)
    calibrate_pixels(
        np.ascontiguousarray(img), _c32(masters.bias.data), _c32(masters.bias.error),
        none if dark is None else _c32(dark.data), none if dark is None else _c32(dark.error),
        float(f), exptime, float(config.hot_pixel_e_per_s),
        none if flat is None else _c32(flat.data), none if flat is None else _c32(flat.error),
        np.zeros((0, 0), np.int16) if flat is None else np.ascontiguousarray(flat.count, np.int16),
        float(lo), float(hi), float(g), float(rn_e), DQ_BITS["BAD"], DQ_BITS["NO_FLAT"],
        sci, var, dq,
    )  # fmt: skip
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
    return ReducedFrame(sci, var, dq, h)


def _c32(a: np.ndarray) -> np.ndarray:
    """Return a master's array as the kernel takes it (C-contiguous float32, no copy if it is)."""
    return np.ascontiguousarray(a, np.float32)


def _cosmic_rays(
    sci: np.ndarray, dq: np.ndarray, rn_e: float, config: ReductionConfig
) -> np.ndarray:
    """Return the COSMIC_RAY bits: L.A.Cosmic on the tiles that can hold a detection."""
    data = np.nan_to_num(sci, nan=0.0).astype(np.float32)
    inmask = (dq & (DQ_BITS["SATURATED"] | DQ_BITS["NONFINITE"])) > 0
    if config.cr_prescreen:
        boxes = cosmic_ray_boxes(data, rn_e, config)
    else:
        boxes = [(0, data.shape[0], 0, data.shape[1], 0, data.shape[0], 0, data.shape[1])]
    mask = np.zeros(data.shape, dtype=bool)
    from threadpoolctl import threadpool_limits

    # astroscrappy's OpenMP threads cost more than they save on a small region (and spin
    # when the cores are busy); one limit around all of them (each limit looks up the loaded
    # libraries, milliseconds per call)
    small = [b for b in boxes if (b[1] - b[0]) * (b[3] - b[2]) < 512 * 512]
    large = [b for b in boxes if (b[1] - b[0]) * (b[3] - b[2]) >= 512 * 512]
    for group, threads in ((small, 1), (large, None)):
        if not group:
            continue
        with threadpool_limits(threads, user_api="openmp"):
            for y0, y1, x0, x1, cy0, cy1, cx0, cx1 in group:
                sub = _lacosmic(data[y0:y1, x0:x1], inmask[y0:y1, x0:x1], rn_e, config)
                mask[cy0:cy1, cx0:cx1] = sub[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return np.where(mask, DQ_BITS["COSMIC_RAY"], 0).astype(np.uint16)


def _lacosmic(data: np.ndarray, inmask: np.ndarray, rn_e: float, config: ReductionConfig) -> Any:
    import astroscrappy

    mask, _ = astroscrappy.detect_cosmics(
        np.ascontiguousarray(data),
        inmask=np.ascontiguousarray(inmask),
        gain=1.0,
        readnoise=rn_e,
        satlevel=np.inf,
        sigclip=config.cr_sigclip,
        objlim=config.cr_objlim,
        niter=config.cr_niter,
        sepmed=True,
        cleantype="meanmask",
    )
    return mask


def cosmic_ray_boxes(
    data: np.ndarray, rn_e: float, config: ReductionConfig
) -> list[tuple[int, int, int, int, int, int, int, int]]:
    """Return the regions L.A.Cosmic must run on: ``(y0, y1, x0, x1)`` and their kept cores.

    The pre-screen (:func:`~svomflow.tasks.ccd._kernels.lacosmic_candidates`) flags every
    pixel L.A.Cosmic detects in its first iteration (its own arithmetic in float64, with
    thresholds 0.1 % lower). Growth and later iterations only flag pixels within
    :meth:`ReductionConfig.cr_reach` of those, so the tiles of ``cr_tile_px`` within that
    distance form the cores; each connected group of tiles is run with
    :meth:`ReductionConfig.cr_margin` of context on every side (the reach of the filters
    over the iterations), so its core gets the mask that
    L.A.Cosmic gives on the whole frame. One exception, rare: a pixel whose 5x5
    neighbourhood is all flagged is cleaned with the median of the region instead of the
    frame's. Falls back to one box, the whole frame, when the boxes would cover more than
    ``cr_full_frame_fraction`` of it.

    Returns
    -------
    list of tuple
        ``(y0, y1, x0, x1, cy0, cy1, cx0, cx1)``: the box run on and the core kept.
    """
    from scipy import ndimage

    ny, nx = data.shape
    whole = [(0, ny, 0, nx, 0, ny, 0, nx)]
    t, m = config.cr_tile_px, config.cr_margin()
    # thresholds 0.1 % low: the pre-screen runs in float64, astroscrappy in float32
    cand = lacosmic_candidates(
        data, rn_e**2, config.cr_sigclip * (1 - 1e-3), config.cr_objlim * (1 - 1e-3)
    )
    ys, xs = np.nonzero(cand)
    tiles = np.zeros((-(-ny // t), -(-nx // t)), dtype=bool)
    tiles[ys // t, xs // t] = True
    k = -(-config.cr_reach() // t)
    if k > 0 and ys.size:
        tiles = ndimage.binary_dilation(tiles, structure=np.ones((2 * k + 1, 2 * k + 1), bool))
    labels, _ = ndimage.label(tiles)
    boxes = []
    area = 0
    for sl in ndimage.find_objects(labels):
        cy0, cy1 = sl[0].start * t, min(ny, sl[0].stop * t)
        cx0, cx1 = sl[1].start * t, min(nx, sl[1].stop * t)
        y0, y1, x0, x1 = max(0, cy0 - m), min(ny, cy1 + m), max(0, cx0 - m), min(nx, cx1 + m)
        boxes.append((y0, y1, x0, x1, cy0, cy1, cx0, cx1))
        area += (y1 - y0) * (x1 - x0)
    if area > config.cr_full_frame_fraction * ny * nx:
        return whole
    return boxes


def l1a_hdus(frame: ReducedFrame, masters: MasterSet | None = None) -> list[Any]:
    """Return the HDUs of an L1a image (primary header, SCI, VAR, DQ) naming its masters."""
    prim = fits.PrimaryHDU(header=frame.header.copy())
    prim.header["DATE"] = (_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "file creation")
    if masters is not None:
        for code, rec in masters.records.items():
            if rec.get("path"):
                set_card(
                    prim.header,
                    f"CAL{code[:5]}",
                    Path(rec["path"]).name[:68],
                    f"master {code.lower()}",
                )
            if rec.get("sha256"):
                set_card(prim.header, f"SHA{code[:5]}", str(rec["sha256"]), "sha256")
    wcs_cards = WCS(frame.header).to_header() if "CTYPE1" in frame.header else fits.Header()
    sci = fits.ImageHDU(frame.sci, header=wcs_cards, name="SCI")
    sci.header["BUNIT"] = "electron"
    var = fits.ImageHDU(frame.var, name="VAR")
    var.header["BUNIT"] = "electron2"
    dq = fits.ImageHDU(frame.dq, name="DQ")
    for name, bit in DQ_BITS.items():
        dq.header[f"DQ_{name[:5]}"] = (bit, f"bit value of {name}")
    return [prim, sci, var, dq]
