"""Readers fixed after the corpus: broken OGIP files give InputDataError naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import load_camera
from svomflow.products.ccd_frames import read_frame_info, read_raw
from svomflow.products.ogip import check_fits_sizes
from svomflow.products.ogip_spectra import read_arf, read_pha, read_response_set
from svomflow.tasks.timing.binning import normalise_gti

from .mutations import truncated_gzip, wrong_column_type
from .runner import SHARED

ASCA = SHARED / "xray" / "asca"
needs_asca = pytest.mark.skipif(not ASCA.is_dir(), reason="../shared/data/xray/asca is absent")


def _column_set(src: Path, dst: Path, ext: str, column: str, value: float) -> Path:
    """Copy ``src`` with ``value`` written into the first rows of one column."""
    with fits.open(src) as hdul:
        hdul[ext].data[column][:3] = value
        hdul.writeto(dst)
    return dst


@needs_asca
def test_read_arf_refuses_a_file_that_is_not_fits(tmp_path: Path) -> None:
    """Was an OSError traceback from astropy: now one InputDataError naming the file."""
    bad = tmp_path / "x.arf"
    bad.write_text("not a FITS file\n")
    with pytest.raises(InputDataError, match=re.escape("x.arf")):
        read_arf(bad)


@needs_asca
@pytest.mark.parametrize("value", [np.nan, np.inf, -1.0])
def test_read_arf_refuses_nan_inf_or_negative_area(value: float, tmp_path: Path) -> None:
    """An ARF with NaN, Inf or negative areas was used as it was."""
    bad = _column_set(ASCA / "s0_mar24.arf", tmp_path / "bad.arf", "SPECRESP", "SPECRESP", value)
    with pytest.raises(InputDataError, match=re.escape("bad.arf")):
        read_arf(bad)
    assert read_arf(ASCA / "s0_mar24.arf").specresp.size > 0


@needs_asca
def test_read_arf_refuses_a_text_column(tmp_path: Path) -> None:
    """A column of text where numbers are expected was a ValueError traceback."""
    for seed in range(6):
        dst = tmp_path / f"t{seed}.arf"
        wrong_column_type(ASCA / "s0_mar24.arf", dst, np.random.default_rng(seed))
        with pytest.raises(InputDataError, match=re.escape(dst.name)):
            read_arf(dst)


@needs_asca
@pytest.mark.parametrize("value", [np.nan, -np.inf])
def test_read_pha_refuses_non_finite_counts(value: float, tmp_path: Path) -> None:
    """-Inf rates reached the fit (LinAlgError); NaN counts gave an unflagged fit."""
    with fits.open(ASCA / "s0_mar24_bin.pha") as hdul:
        col = "RATE" if "RATE" in hdul["SPECTRUM"].columns.names else "COUNTS"
        data = hdul["SPECTRUM"].data
        if data[col].dtype.kind != "f":
            hdul["SPECTRUM"] = fits.BinTableHDU.from_columns(
                [
                    c
                    if c.name != col
                    else fits.Column(col, "E", array=np.asarray(data[col], float))
                    for c in data.columns
                ],
                header=hdul["SPECTRUM"].header,
            )
        hdul["SPECTRUM"].data[col][5] = value
        hdul.writeto(tmp_path / "bad.pha")
    with pytest.raises(InputDataError, match="NaN or infinite"):
        read_pha(tmp_path / "bad.pha")


@needs_asca
def test_read_response_refuses_nan_matrix(tmp_path: Path) -> None:
    """A response rewritten with NaN in ENERG_LO is refused with a user error naming it."""
    bad = _column_set(ASCA / "s0_mar24.rmf", tmp_path / "bad.rmf", "MATRIX", "ENERG_LO", np.nan)
    with pytest.raises(InputDataError, match="bad"):
        read_response_set(bad)


@needs_asca
def test_truncated_gzip_response_is_a_user_error(tmp_path: Path) -> None:
    """A cut .gz stream gives InputDataError naming the file, never zlib.error or EOFError."""
    dst = tmp_path / "cut.rmf.gz"
    truncated_gzip(ASCA / "s0_mar24.rmf", dst, np.random.default_rng(2))
    with pytest.raises(InputDataError, match=re.escape("cut.rmf.gz")):
        read_response_set(dst)


@pytest.mark.parametrize("gti", [[[0.0, -np.inf]], [[-np.inf, 5.0]], [[0.0, np.nan]], [[5.0, 1.0]]])
def test_normalise_gti_refuses_non_finite_or_reversed(gti: list[list[float]]) -> None:
    """A -Inf GTI bound crashed the binning further on; now a user error (still a ValueError)."""
    with pytest.raises(InputDataError):
        normalise_gti(np.array(gti))
    with pytest.raises(ValueError):
        normalise_gti(np.array(gti))


def _raw_frame(path: Path, data: np.ndarray, exptime: float) -> Path:
    """Write a small COLIBRI-like raw frame (48 rows, 64 + 32 overscan columns)."""
    header = fits.Header()
    for key, value in {
        "INSTRUME": "DDRAGO-B",
        "EXPTYPE": "dark",
        "IMAGETYP": "DARK",
        "EXPTIME": exptime,
        "DATE-OBS": "2026-11-24T00:42:00.125",
        "FILTER": "r",
        "CCD-TEMP": -100.0,
        "XBINNING": 1,
        "YBINNING": 1,
    }.items():
        header[key] = value
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def test_raw_frame_with_nan_pixels_is_refused(tmp_path: Path) -> None:
    """NaN pixels in a raw frame were reduced into an unflagged image."""
    cam = load_camera()
    data = np.full((48, 96), 1000.0, np.float32)
    ok = _raw_frame(tmp_path / "ok.fits", data, 10.0)
    assert read_raw(ok, cam)[0].shape == (48, 96)
    data[3, 4] = np.nan
    with pytest.raises(InputDataError, match="NaN or infinite"):
        read_raw(_raw_frame(tmp_path / "nan.fits", data, 10.0), cam)


def test_raw_frame_with_negative_exposure_is_refused(tmp_path: Path) -> None:
    """A negative EXPTIME was accepted into the nightly masters."""
    cam = load_camera()
    data = np.full((48, 96), 1000, np.uint16)
    assert read_frame_info(_raw_frame(tmp_path / "ok.fits", data, 10.0), cam).exptime == 10.0
    with pytest.raises(InputDataError, match="exposure time"):
        read_frame_info(_raw_frame(tmp_path / "neg.fits", data, -10.0), cam)


def test_negative_naxis_is_refused_not_looped_on(tmp_path: Path) -> None:
    """NAXIS2 = -5 made astropy read the same header for ever (a hang in gp1 reduction)."""
    path = _raw_frame(tmp_path / "f.fits", np.full((48, 96), 1000, np.uint16), 10.0)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"NAXIS2  ")
    raw[at : at + 80] = (b"NAXIS2  = " + b"-5".rjust(20)).ljust(80)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputDataError, match="negative"):
        check_fits_sizes(path)
    with pytest.raises(InputDataError):
        read_raw(path, load_camera())
