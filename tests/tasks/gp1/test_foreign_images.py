"""GP1 on images from other cameras and tools: headers, dates, names, overscan sections."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError, PathEscapeError
from svomflow.instruments.ccd_camera import load_camera
from svomflow.products.ccd_frames import (
    HeaderFixWarning,
    observation_start,
    parse_date_obs,
    read_image_header,
)
from svomflow.products.naming import header_component
from svomflow.tasks.ccd.overscan import header_sections
from svomflow.tasks.gp1.config import ReductionModule
from svomflow.tasks.gp1.inputs import calibration_kind, normalise_header, read_image_file
from svomflow.tasks.gp1.reduction import reduce_image

CAM = load_camera("colibri_ddrago_b")


def _foreign_frame(path: Path, **cards: object) -> Path:
    """Write a 64x96 frame with an ESO-style log card astropy cannot parse, and ``cards``."""
    rng = np.random.default_rng(1)
    hdu = fits.PrimaryHDU(rng.normal(500.0, 5.0, (64, 96)).astype(np.float32))
    for key, value in cards.items():
        hdu.header[key] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's complaint about the card is the point
        hdu.header.append(fits.Card.fromstring("ESO-LOG 03:04:08>-START EXPO EMMI RED / start"))
        hdu.writeto(path)
    return path


def test_invalid_card_is_kept_as_comment_with_a_warning(shared_data):
    # The ESO/MIDAS header of sep's test image: four ESO-LOG cards astropy cannot set.
    with pytest.warns(HeaderFixWarning, match="4 header card"):
        h = read_image_header(shared_data / "optical" / "sep" / "image.fits")
    logs = [c for c in h["COMMENT"] if str(c).startswith("ESO-LOG")]
    assert len(logs) == 4 and "START EXPO EMMI RED" in logs[1]
    assert h["EXPTIME"] == 1200.0 and h["INSTRUME"] == "EMMI"
    fits.Header.fromstring(h.tostring())  # the copy is a valid header


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24T00:42:00", dt.datetime(2026, 11, 24, 0, 42, tzinfo=dt.UTC)),
        ("26/10/92", dt.datetime(1992, 10, 26, tzinfo=dt.UTC)),
        ("2013-07-13", dt.datetime(2013, 7, 13, tzinfo=dt.UTC)),
    ],
)
def test_parse_date_obs_forms(value, expected):
    assert parse_date_obs(value) == expected


def test_parse_date_obs_refuses_garbage():
    with pytest.raises(InputDataError, match="not an ISO date-time"):
        parse_date_obs("Mon Oct 26")


def test_observation_start_combines_date_and_ut_or_uses_mjd():
    h = fits.Header({"DATE-OBS": "2013-07-13", "UT": "00:57:33"})
    assert observation_start(h) == dt.datetime(2013, 7, 13, 0, 57, 33, tzinfo=dt.UTC)
    h = fits.Header({"DATE-OBS": "garbage", "MJD-OBS": 48921.5})
    assert observation_start(h) == dt.datetime(1992, 10, 26, 12, 0, tzinfo=dt.UTC)
    assert observation_start(fits.Header()) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Apogee USB/Net", "Apogee_USB_Net"), ("DDRAGO-B", "DDRAGO-B"), ("r'", "r"), ("a..b", "a.b")],
)
def test_header_component_makes_names_safe(value, expected):
    assert header_component(value) == expected


@pytest.mark.parametrize("value", ["../../etc", "/etc/passwd", "  ", "//"])
def test_header_component_refuses_what_cannot_be_made_safe(value):
    with pytest.raises(PathEscapeError):
        header_component(value)


def test_foreign_header_is_normalised_and_reduced(tmp_path):
    # non-ISO date, no FILTER, a camera name with a space and a slash, an invalid card
    p = _foreign_frame(
        tmp_path / "apogee.fits",
        INSTRUME="Apogee USB/Net",
        EXPTIME=30.0,
        **{"DATE-OBS": "26/10/92", "TIME-OBS": "03:04:08"},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeaderFixWarning)
        image = read_image_file(p, CAM)
    assert image.header["DATE-OBS"] == "1992-10-26T03:04:08.000"
    assert image.header["DATEORIG"] == "26/10/92"
    assert image.header["FILTER"] == "NONE"
    res = reduce_image(
        image,
        CAM,
        "TRIGID",
        config=ReductionModule(enabled=False),
        calibration=CalibrationSet.from_files({}),
    )
    s = res.summary
    assert s.instrument == "Apogee_USB_Net" and s.filter == "NONE"
    assert res.reduced.header["INSTRUME"] == "Apogee USB/Net"  # the original is recorded
    assert s.mjd_mid == pytest.approx(48921.128 + 15.0 / 86400.0, abs=1e-3)
    assert res.reduced.data.shape == (64, 96)  # not reduced: nothing trimmed


def test_calibration_frames_are_recognised_by_foreign_keywords():
    assert calibration_kind(fits.Header({"EXPTYPE": "bias"}), CAM) == "bias"
    assert calibration_kind(fits.Header({"IMAGETYP": "zero"}), CAM) == "bias"
    assert calibration_kind(fits.Header({"IMAGETYP": "Dark Frame"}), CAM) == "dark"
    assert calibration_kind(fits.Header({"OBSTYPE": "SKYFLAT"}), CAM) == "flat"
    assert calibration_kind(fits.Header({"IMAGETYP": "object"}), CAM) is None
    assert calibration_kind(fits.Header(), CAM) is None


def test_normalise_header_without_time_leaves_it_for_a_clear_error():
    h = normalise_header(fits.Header({"EXPTIME": 1.0}), CAM)
    assert "DATE-OBS" not in h and h["FILTER"] == "NONE" and h["INSTRUME"] == "unknown"


def test_saao_overscan_sections(shared_data):
    h = read_image_header(shared_data / "optical" / "raw" / "a8280271.fits")
    sec = header_sections(h, (520, 536))
    assert sec is not None
    assert sec.overscan == (slice(0, 520), slice(3, 13))
    assert sec.image == (slice(0, 520), slice(16, 528))
    assert (
        header_sections(
            fits.Header({"BIASSEC": "[600:610,1:520]", "TRIMSEC": "[1:5,1:5]"}), (520, 536)
        )
        is None
    )
