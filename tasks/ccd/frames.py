"""Reading raw CCD frames and their header values, with clear errors for bad input.

Frames may be plain, gzip'd or fpack'd: :mod:`svomflow.tasks.ccd.fitsio` finds the image HDU.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.tasks.ccd.camera import CameraModel
from svomflow.tasks.ccd.fitsio import read_image, read_image_header

__all__ = ["RawFrameInfo", "parse_date_obs", "read_frame_info", "read_raw"]


def parse_date_obs(value: object, *, path: str | Path = "") -> _dt.datetime:
    """Parse a FITS DATE-OBS value (ISO, UTC assumed when no zone is given)."""
    text = str(value).strip()
    try:
        t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputDataError(f"{path}: DATE-OBS {text!r} is not an ISO date-time") from None
    return t.replace(tzinfo=_dt.UTC) if t.tzinfo is None else t.astimezone(_dt.UTC)


@dataclass(frozen=True)
class RawFrameInfo:
    """Header values of one raw frame that grouping, validation and reduction need."""

    path: Path
    exposure_type: str
    camera: str
    filter: str
    exptime: float
    temperature: float
    binning: str
    date_obs: _dt.datetime
    observer: str
    shape: tuple[int, int]

    @property
    def mjd(self) -> float:
        """Modified Julian date (UTC) of the start of the exposure."""
        epoch = _dt.datetime(1858, 11, 17, tzinfo=_dt.UTC)
        return (self.date_obs - epoch).total_seconds() / 86400.0


def read_frame_info(path: str | Path, camera: CameraModel) -> RawFrameInfo:
    """Read the header values of a raw frame (no pixel data; a ``.fz`` is not decompressed).

    Raises
    ------
    InputDataError
        If the file is not a readable FITS image or a required keyword is missing.
    """
    p = Path(path)
    h = read_image_header(p)
    naxis = (int(h.get("NAXIS2", 0)), int(h.get("NAXIS1", 0)))
    if int(h["NAXIS"]) != 2:
        raise InputDataError(f"{p}: the image has {h['NAXIS']} axes, not 2")

    def val(name: str, default: object = ...) -> object:
        try:
            return camera.header_value(h, name, default)
        except InputDataError as exc:
            raise InputDataError(f"{p}: {exc}") from None

    try:
        exptime = float(val("exposure_time"))  # type: ignore[arg-type]
        temp = float(val("temperature", np.nan))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputDataError(f"{p}: exposure time or temperature is not a number") from None
    bx = val("binning_x", 1)
    by = val("binning_y", 1)
    return RawFrameInfo(
        path=p,
        exposure_type=str(val("exposure_type")).strip().lower(),
        camera=str(val("camera")).strip(),
        filter=str(val("filter", "NONE")).strip() or "NONE",
        exptime=exptime,
        temperature=temp,
        binning=f"{bx}x{by}",
        date_obs=parse_date_obs(val("date_obs"), path=p),
        observer=str(val("observer", "")).strip(),
        shape=naxis,
    )


def read_raw(path: str | Path, camera: CameraModel) -> tuple[np.ndarray, fits.Header]:
    """Read a raw frame's pixels (as stored, usually uint16) and merged header.

    Raises
    ------
    InputDataError
        If the file is unreadable or truncated, or its width leaves no overscan strip.
    """
    p = Path(path)
    data, header = read_image(p)
    if data.ndim != 2 or data.shape[1] <= camera.overscan_columns:
        raise InputDataError(
            f"{p}: image of shape {data.shape} has no room for the "
            f"{camera.overscan_columns} overscan columns of {camera.name}"
        )
    return data, header
