"""A damaged MXT pass (NaN times, broken GTI rows) is read with its rows dropped and flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.flows.mxt import input_flags
from svomflow.tasks.xray.events import read_pass


def _write_pass(path: Path, times: np.ndarray, gti: np.ndarray) -> Path:
    inst = load_instrument("mxt")
    n = times.size
    cols = [
        fits.Column(name="TIME", format="D", array=times),
        fits.Column(name="FRAME", format="J", array=np.arange(n)),
        fits.Column(name="RAWX", format="I", array=np.full(n, 10)),
        fits.Column(name="RAWY", format="I", array=np.full(n, 20)),
        fits.Column(name="PHA", format="J", array=np.full(n, 300)),
    ]
    ev = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    ev.header["INSTRUME"] = str(inst.instrument)
    g = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", array=gti[:, 0]),
            fits.Column(name="STOP", format="D", array=gti[:, 1]),
        ],
        name="GTI",
    )
    fits.HDUList([fits.PrimaryHDU(), ev, g]).writeto(path)
    return path


def test_nan_times_and_bad_gti_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    times = np.linspace(0.0, 99.0, 100)
    times[[3, 50, 77]] = [np.nan, np.inf, -np.inf]
    gti = np.array([[0.0, 40.0], [np.nan, 60.0], [70.0, 65.0], [60.0, 100.0]])
    p = read_pass(_write_pass(tmp_path / "p.fits", times, gti), load_instrument("mxt"))
    assert p.n_corrupted == 3
    assert p.events["TIME"].size == 97
    assert p.n_bad_gti == 2
    np.testing.assert_array_equal(p.gti, [[0.0, 40.0], [60.0, 100.0]])
    flags = input_flags({"n_corrupted": p.n_corrupted, "n_bad_gti": p.n_bad_gti})
    assert len(flags) == 2 and flags[0].startswith("3 corrupted") and flags[1].startswith("2 GTI")


def test_a_gti_without_any_usable_row_is_refused(tmp_path: Path) -> None:
    gti = np.array([[np.nan, 10.0], [5.0, 1.0]])
    path = _write_pass(tmp_path / "p.fits", np.arange(10.0), gti)
    with pytest.raises(InputDataError, match="no GTI row"):
        read_pass(path, load_instrument("mxt"))


def test_a_clean_pass_has_no_flags() -> None:
    assert input_flags({"n_corrupted": 0, "n_bad_gti": 0, "n_no_attitude": 0}) == []


def test_a_pass_without_gti_extension_is_flagged(tmp_path: Path) -> None:
    """Dropping the GTI HDU changed the counts of an MXT run without a flag (corpus mxt-059)."""
    path = _write_pass(tmp_path / "p.fits", np.arange(10.0, 20.0), np.array([[10.0, 19.0]]))
    with fits.open(path) as hdul:
        fits.HDUList([hdul[0].copy(), hdul["EVENTS"].copy()]).writeto(tmp_path / "nogti.fits")
    whole = read_pass(path, load_instrument("mxt"))
    assert not whole.gti_from_events
    p = read_pass(tmp_path / "nogti.fits", load_instrument("mxt"))
    assert p.gti_from_events
    np.testing.assert_array_equal(p.gti, [[10.0, 19.0]])
    (flag,) = input_flags({"n_passes_without_gti": int(p.gti_from_events)})
    assert flag.startswith("1 pass file(s) without a GTI extension")


def test_source_light_curve_of_events_all_at_one_time() -> None:
    """Every event of a GTI at one time tag (corpus mxt-094): one block over the GTI."""
    from svomflow.products.ogip import TimeReference
    from svomflow.tasks.xray.lightcurve import source_lightcurve

    t = np.full(30, 105.0)
    lc = source_lightcurve(
        t,
        np.ones(t.size, dtype=bool),
        np.array([[100.0, 110.0]]),
        psf_fraction=0.5,
        background_rate=1.0,
        timeref=TimeReference(mjdref=59945.0),
    )
    np.testing.assert_array_equal([lc.blocks_lo, lc.blocks_hi], [[100.0], [110.0]])
    np.testing.assert_allclose(lc.blocks_rate, [(30 - 1.0 * 10.0) / (10.0 * 0.5)])


def test_an_empty_gti_extension_is_not_a_missing_one(tmp_path: Path) -> None:
    """An empty GTI table is read as no time at all (refused at the merge), not guessed."""
    path = _write_pass(tmp_path / "p.fits", np.arange(10.0, 20.0), np.empty((0, 2)))
    p = read_pass(path, load_instrument("mxt"))
    assert not p.gti_from_events and p.gti.size == 0
