"""Broken MXT attitude and SAA files end in one input error, never a traceback or numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.tasks.xray.events import read_attitude, read_saa


def _attitude(path: Path, ra: object = None, text_ra: bool = False) -> Path:
    t = np.arange(10.0)
    ra_col = (
        fits.Column(name="RA", format="8A", array=np.array(["abc"] * 10))
        if text_ra
        else fits.Column(name="RA", format="D", array=np.full(10, 150.0) if ra is None else ra)
    )
    cols = [
        fits.Column(name="TIME", format="D", array=t),
        ra_col,
        fits.Column(name="DEC", format="D", array=np.full(10, 20.0)),
        fits.Column(name="ROLL", format="D", array=np.zeros(10)),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="ATTITUDE")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def test_good_attitude_reads(tmp_path: Path) -> None:
    att = read_attitude(_attitude(tmp_path / "a.fits"))
    assert att["RA"].shape == (10,)
    assert float(att["TIMESTEP"]) == pytest.approx(1.0)


def test_text_column_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"a\.fits"):
        read_attitude(_attitude(tmp_path / "a.fits", text_ra=True))


def test_nan_attitude_is_refused(tmp_path: Path) -> None:
    ra = np.full(10, 150.0)
    ra[3] = np.nan
    with pytest.raises(InputDataError, match="RA has NaN"):
        read_attitude(_attitude(tmp_path / "a.fits", ra=ra))


def _saa(path: Path, start: list[float], stop: list[float]) -> Path:
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", array=np.array(start)),
            fits.Column(name="STOP", format="D", array=np.array(stop)),
        ],
        name="SAA",
    )
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def test_saa_start_after_stop_is_refused(tmp_path: Path) -> None:
    assert read_saa(_saa(tmp_path / "ok.fits", [0, 100], [10, 120])).shape == (2, 2)
    with pytest.raises(InputDataError, match="START after STOP"):
        read_saa(_saa(tmp_path / "bad.fits", [0, 100], [10, 90]))


def test_saa_not_fits_is_an_input_error(tmp_path: Path) -> None:
    p = tmp_path / "saa.fits"
    p.write_text("not a fits file")
    with pytest.raises(InputDataError, match=r"saa\.fits"):
        read_saa(p)


@pytest.mark.parametrize("times", [np.arange(10.0)[::-1], np.full(10, 3.0)])
def test_attitude_times_out_of_order_are_an_input_error(tmp_path: Path, times) -> None:
    """A reversed or constant TIME column (pointings in place) was sorted and used (mxt-028)."""
    path = _attitude(tmp_path / "a.fits", ra=np.linspace(150.0, 151.0, 10))
    with fits.open(path, mode="update") as hdul:
        hdul["ATTITUDE"].data["TIME"] = times
        hdul["ATTITUDE"].header["TIMESTEP"] = 1.0  # as in the simulator's files
    with pytest.raises(InputDataError, match="not strictly increasing"):
        read_attitude(path)


def test_saa_interval_longer_than_an_orbit_is_refused(tmp_path: Path) -> None:
    """A flipped byte moved an SAA START 3 years back: 60 % of the events cut unflagged (mxt-022)."""
    assert read_saa(_saa(tmp_path / "ok.fits", [1.0e8], [1.0e8 + 600.0])).shape == (1, 2)
    with pytest.raises(InputDataError, match="longer than an orbit"):
        read_saa(_saa(tmp_path / "bad.fits", [4173594.75], [1.000012e8]))


def test_a_time_without_a_calendar_date_is_an_input_error() -> None:
    """An event time of 1.6e239 s (a damaged MXT pass, mxt-057) made ERFA raise in the summary."""
    from svomflow.tasks.xray.events import mission_time_to_utc

    assert mission_time_to_utc(1.0e8, 59945.0).startswith("2026-03-03T")
    with pytest.raises(InputDataError, match="has no UTC date"):
        mission_time_to_utc(1.5525375833890988e239, 59945.0)
