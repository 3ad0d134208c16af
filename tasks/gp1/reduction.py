"""GP1 reduction module: raw frame -> reduced image (L1a) with a bad-pixel mask.

The CCD steps belong to :mod:`svomflow.tasks.ccd.reduce` (overscan, bias, dark scaled by
exposure and temperature, flat, gain, saturation and bad-pixel masks, cosmic rays), with the
masters selected from the CALDB by observation time or given as path overrides. GP1 works
on its output in electrons (``GAIN = 1``), with the data-quality mask as bad pixels.

When no master is valid for the frame's date, the module either fails with the CALDB's
clear error (``require_masters: true``) or falls back to the overscan correction and trim
only and flags the image (``REDLEVEL = 'overscan'``), so that an alert is still analysed
(photometry then carries the flat-field error; the products say so).

Frames already reduced (``REDLEVEL`` present) pass through. Input frames may be plain,
gzip'd (``.fits.gz``) or fpack'd (``.fits.fz``; see :mod:`svomflow.tasks.ccd.fitsio`); the
reduced image is always written uncompressed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from svomflow.errors import CalibrationNotFoundError, InputDataError
from svomflow.tasks.ccd.camera import CameraModel
from svomflow.tasks.ccd.fitsio import READ_ERRORS, image_header, open_image, read_image_header
from svomflow.tasks.ccd.frames import read_raw
from svomflow.tasks.ccd.overscan import subtract_overscan
from svomflow.tasks.gp1.config import ReductionModule

__all__ = ["ReducedImage", "read_reduced", "reduce_frame", "write_reduced"]


@dataclass
class ReducedImage:
    """A reduced image (electrons, or ADU when only overscan-corrected), mask and header."""

    data: np.ndarray
    mask: np.ndarray
    header: fits.Header
    calibration: list[dict[str, Any]] = field(default_factory=list)


def reduce_frame(path: str | Path, camera: CameraModel, config: ReductionModule) -> ReducedImage:
    """Reduce one raw frame for GP1 (see the module docstring for what is applied).

    Raises
    ------
    InputDataError
        Unreadable or truncated file, missing header keywords, an image with no finite
        pixel, or a frame mostly saturated.
    CalibrationNotFoundError
        No master for the date and ``require_masters`` is set.
    """
    from svomflow.tasks.ccd import reduce as ccd

    p = Path(path)
    with_header = read_image_header(p)
    if "REDLEVEL" in with_header:
        return read_reduced(p)
    raw, header = read_raw(p, camera)
    if raw.dtype.kind == "f" and not np.isfinite(raw).any():
        raise InputDataError(f"{p}: the frame has no finite pixel (all NaN)")
    for logical in ("exposure_time", "date_obs", "filter", "camera"):
        camera.header_value(header, logical)  # a clear error naming the missing keyword
    if not config.enabled:
        data = raw.astype(np.float32)
        header["REDLEVEL"] = ("none", "GP1 reduction level")
        return _check(ReducedImage(data, ~np.isfinite(data), header), p, camera)
    rcfg = ccd.ReductionConfig(overrides=dict(config.overrides), cosmic_rays=config.cosmic_rays)
    try:
        masters = ccd.resolve_masters(
            header, camera, caldb=_open_caldb(config.caldb), overrides=rcfg.overrides
        )
    except CalibrationNotFoundError as exc:
        if config.require_masters:
            raise CalibrationNotFoundError(f"{p}: {exc}") from None
        return _overscan_only(raw, header, camera, p, reason=str(exc))
    frame = ccd.reduce_frame(raw, header, camera, masters, rcfg)
    h = frame.header
    h["REDLEVEL"] = ("full", "GP1 reduction level")
    h["GAIN"] = (1.0, "[e-/unit] data are in electrons")
    h["SATURATE"] = (float(np.nanmax(frame.sci)) + 1.0, "saturation is in the mask")
    mask = frame.dq != 0
    cal = [{"codename": k, **v} for k, v in masters.records.items()]
    return _check(ReducedImage(frame.sci, mask, h, cal), p, camera)


def _open_caldb(root: str | None) -> Any:
    if root is None:
        return None
    from svomflow.calibration.caldb import open_caldb

    return open_caldb(root)


def _overscan_only(
    raw: np.ndarray, header: fits.Header, camera: CameraModel, p: Path, *, reason: str
) -> ReducedImage:
    rawf = raw.astype(np.float64)
    img, _ = subtract_overscan(rawf, camera)
    sat = (rawf >= camera.saturation_adu)[camera.image_slice()]
    data = np.asarray(img, dtype=np.float32)
    header["REDLEVEL"] = ("overscan", "GP1 reduction level (no master available)")
    header["REDNOTE"] = reason[:68].replace("\n", " ")
    # The overscan level was removed, so saturation sits that much lower in the image.
    offset = float(np.median(rawf[camera.overscan_slice()]))
    header["SATURATE"] = (float(camera.saturation_adu - offset), "[adu] saturation in image")
    if "GAIN" not in header:
        header["GAIN"] = (camera.gain, "[e-/adu] gain")
    return _check(ReducedImage(data, sat | ~np.isfinite(data), header), p, camera)


def _check(img: ReducedImage, p: Path, camera: CameraModel) -> ReducedImage:
    finite = np.isfinite(img.data)
    if not finite.any():
        raise InputDataError(f"{p}: the frame has no finite pixel (all NaN)")
    bad_frac = float(img.mask.mean())
    img.header["BADFRAC"] = (round(bad_frac, 6), "fraction of masked pixels")
    if bad_frac > 0.5:
        raise InputDataError(
            f"{p}: {100 * bad_frac:.0f} % of the pixels are saturated or bad; frame unusable"
        )
    if "GAIN" not in img.header:
        img.header["GAIN"] = (camera.gain, "[e-/adu] gain")
    return img


def write_reduced(img: ReducedImage, path: Path) -> Path:
    """Write the reduced image (primary: data, MASK extension) atomically."""
    from svomflow.products.atomic import atomic_path

    prim = fits.PrimaryHDU(img.data.astype(np.float32), header=img.header)
    m = fits.ImageHDU(img.mask.astype(np.uint8), name="MASK")
    with atomic_path(path) as tmp:
        fits.HDUList([prim, m]).writeto(tmp)
    return path


def read_reduced(path: str | Path) -> ReducedImage:
    """Read an image written by :func:`write_reduced` (or any reduced single-HDU image)."""
    p = Path(path)
    hdul, index = open_image(p)
    with hdul:
        try:
            header = image_header(hdul, index)
            data = np.array(hdul[index].data, dtype=np.float32)
            mask = np.array(hdul["MASK"].data, dtype=bool) if "MASK" in hdul else ~np.isfinite(data)
        except READ_ERRORS as exc:
            raise InputDataError(f"{p}: cannot read the reduced image ({exc})") from None
    if data.ndim != 2:
        raise InputDataError(f"{p}: expected a 2-D image")
    return ReducedImage(data, mask | ~np.isfinite(data), header)
