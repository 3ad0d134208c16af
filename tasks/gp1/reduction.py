"""GP1 reduction step: raw frame -> reduced image (L1a) with a bad-pixel mask.

The CCD steps belong to :mod:`svomflow.tasks.ccd.reduce` (overscan, bias, dark scaled by
exposure and temperature, flat, gain, saturation and bad-pixel masks, cosmic rays), with the
masters the flow's first task selected from the CALDB for the frame's time, filter,
temperature and exposure (or the ``override_<code>`` files). GP1 works on its output in
electrons (``GAIN = 1``), with the data-quality mask as bad pixels.

When a master is missing for the frame, the step either fails naming every missing one
(``require_masters: true``) or falls back to the overscan correction and trim only and
flags the image (``REDLEVEL = 'overscan'``), so that an alert is still analysed
(photometry then carries the flat-field error; the products say so).

Frames already reduced (``REDLEVEL`` present) pass through.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import CalibrationNotFoundError, InputDataError
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.naming import header_component
from svomflow.tasks.ccd import reduce as ccd
from svomflow.tasks.ccd.overscan import Sections, header_sections, subtract_overscan
from svomflow.tasks.gp1.config import ReductionModule
from svomflow.tasks.gp1.images import (
    ImageResult,
    ImageSummary,
    RawImage,
    ReducedImage,
    header_as_stored,
    mjd,
)
from svomflow.tasks.step import step

__all__ = ["image_masters", "reduce_image", "reduce_pixels", "sequence_id"]


def sequence_id(trigger: str, band: str) -> str:
    """Return the identifier of an alert sequence (its products' ``obs_id``)."""
    return f"{trigger}_{band}"


def image_masters(
    image: RawImage, camera: CameraModel, calibration: CalibrationSet
) -> tuple[ccd.MasterSet | None, list[str]]:
    """Return the masters of an image from the calibration set, or the missing ones."""
    selections = ccd.frame_master_selections(image.header, camera)
    return ccd.masters_for_frame(selections, calibration)


def reduce_pixels(
    image: RawImage, camera: CameraModel, config: ReductionModule, calibration: CalibrationSet
) -> ReducedImage:
    """Reduce one raw frame's pixels (see the module docstring for what is applied).

    Raises
    ------
    InputDataError
        Missing header keywords, an image with no finite pixel, or a frame mostly
        saturated.
    CalibrationNotFoundError
        A master is missing and ``require_masters`` is set (naming every missing one).
    """
    raw, header = image.data, image.header.copy()
    if image.reduced:
        mask = image.mask if image.mask is not None else ~np.isfinite(raw)
        return ReducedImage(raw, mask | ~np.isfinite(raw), header)
    if raw.dtype.kind == "f" and not np.isfinite(raw).any():
        raise InputDataError(f"{image.path}: the frame has no finite pixel (all NaN)")
    for logical in ("exposure_time", "date_obs"):
        camera.header_value(header, logical)  # a clear error naming the missing keyword
    if not config.enabled:
        data = raw.astype(np.float32)
        header["REDLEVEL"] = ("none", "GP1 reduction level")
        return _check(ReducedImage(data, ~np.isfinite(data), header), image.path, camera)
    rcfg = ccd.ReductionConfig(
        cosmic_rays=config.cosmic_rays, cr_niter=config.cosmic_ray_iterations
    )
    masters, missing = image_masters(image, camera, calibration)
    if masters is None:
        reason = "no calibration file " + ", ".join(missing)
        if config.require_masters:
            raise CalibrationNotFoundError(f"{image.path}: {reason}")
        return _overscan_only(raw, header, camera, image.path, reason=reason)
    frame = ccd.reduce_frame(raw, header, camera, masters, rcfg)
    h = frame.header
    h["REDLEVEL"] = ("full", "GP1 reduction level")
    h["GAIN"] = (1.0, "[e-/unit] data are in electrons")
    h["SATURATE"] = (float(np.nanmax(frame.sci)) + 1.0, "saturation is in the mask")
    mask = frame.dq != 0
    cal = [{**v, "codename": k} for k, v in masters.records.items()]
    return _check(ReducedImage(frame.sci, mask, h, cal), image.path, camera)


@step(name="reduction", config=ReductionModule, calibration=("BIAS", "DARK", "FLAT"))
def reduce_image(
    image: RawImage,
    camera: CameraModel,
    alert_keyword: str,
    *,
    config: ReductionModule,
    calibration: CalibrationSet,
) -> ImageResult:
    """Reduce one image and describe it: sequence, filter, exposure, alert or not.

    Raises
    ------
    PathEscapeError
        When a header value naming the sequence (trigger, camera, filter) cannot be made a
        safe path component (``../..``, an absolute path, nothing but separators); other
        values are made safe (``Apogee USB/Net`` -> ``Apogee_USB_Net``).
    InputDataError
        As :func:`reduce_pixels`, or a non-positive exposure time.
    """
    red = reduce_pixels(image, camera, config, calibration)
    h = red.header
    trig = h.get(alert_keyword)
    trigger = str(trig).strip() if trig not in (None, "") else "no_trigger"
    # names in product paths: header values made safe (the header keeps the originals)
    trigger = header_component(trigger, what="trigger id")
    instrument = header_component(camera.header_value(h, "camera", "unknown"), what="camera")
    band = header_component(camera.header_value(h, "filter", "NONE"), what="filter")
    exptime = float(camera.header_value(h, "exposure_time"))
    if not exptime > 0:
        raise InputDataError(f"{image.path}: exposure time must be positive, got {exptime}")
    date_obs = str(camera.header_value(h, "date_obs"))
    alert = alert_keyword in h and str(h[alert_keyword]).strip() != ""
    h["IMGSTEM"] = (image.stem, "name of the input image")
    # as a reduced image file gives it back: float32 pixels, non-finite ones masked
    red = ReducedImage(
        np.asarray(red.data, dtype=np.float32),
        red.mask | ~np.isfinite(red.data),
        header_as_stored(h),
        red.calibration,
    )
    summary = ImageSummary(
        raw=image.path,
        stem=image.stem,
        sequence=sequence_id(trigger, band),
        trigger=trigger,
        instrument=instrument,
        filter=band,
        object=str(h.get(camera.kw("object"), "")),
        exptime=exptime,
        date_obs=date_obs,
        mjd_mid=mjd(date_obs) + 0.5 * exptime / 86400.0,
        alert=bool(alert),
        gain=float(h.get("GAIN", camera.gain)),
        saturation=float(h.get("SATURATE", camera.saturation_adu)),
        redlevel=str(h.get("REDLEVEL", "")),
        bad_fraction=float(h.get("BADFRAC", 0.0)),
        calibration=red.calibration,
        done=["reduction"],
    )
    return ImageResult(summary, red)


def _overscan_only(
    raw: np.ndarray, header: fits.Header, camera: CameraModel, path: str, *, reason: str
) -> ReducedImage:
    rawf = raw.astype(np.float64)
    # a foreign frame's own BIASSEC/TRIMSEC, else the camera definition's geometry
    sections = header_sections(header, rawf.shape) or Sections.of_camera(camera)
    img, _ = subtract_overscan(rawf, camera, sections=sections)
    sat = (rawf >= camera.saturation_adu)[sections.image]
    data = np.asarray(img, dtype=np.float32)
    header["REDLEVEL"] = ("overscan", "GP1 reduction level (no master available)")
    header["REDNOTE"] = reason[:68].replace("\n", " ")
    # The overscan level was removed, so saturation sits that much lower in the image.
    offset = float(np.median(rawf[sections.overscan]))
    header["SATURATE"] = (float(camera.saturation_adu - offset), "[adu] saturation in image")
    if "GAIN" not in header:
        header["GAIN"] = (camera.gain, "[e-/adu] gain")
    return _check(ReducedImage(data, sat | ~np.isfinite(data), header), path, camera)


def _check(img: ReducedImage, path: str, camera: CameraModel) -> ReducedImage:
    finite = np.isfinite(img.data)
    if not finite.any():
        raise InputDataError(f"{path}: the frame has no finite pixel (all NaN)")
    bad_frac = float(img.mask.mean())
    img.header["BADFRAC"] = (round(bad_frac, 6), "fraction of masked pixels")
    if bad_frac > 0.5:
        raise InputDataError(
            f"{path}: {100 * bad_frac:.0f} % of the pixels are saturated or bad; frame unusable"
        )
    if "GAIN" not in img.header:
        img.header["GAIN"] = (camera.gain, "[e-/adu] gain")
    return img
