"""Binned OGIP light curves as input: RATE with errors (Gaussian), COUNTS (Poisson), the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.products.ogip import (
    LightCurve,
    TimeReference,
    gti_hdu,
    lightcurve_hdu,
    primary_hdu,
    read_lightcurve,
)
from svomflow.tasks.timing.binning import from_lightcurve
from svomflow.tasks.vhf.lightcurve_input import analyse_lightcurve, is_lightcurve_file

TRIG = 1000.0  # mission s
DT = 0.064


def _fred(t: np.ndarray, tau1: float = 1.0, tau2: float = 4.0) -> np.ndarray:
    out = np.zeros_like(t)
    ok = t > 0
    out[ok] = np.exp(2 * np.sqrt(tau1 / tau2)) * np.exp(-tau1 / t[ok] - t[ok] / tau2)
    return out


def _truth_t90(tau1: float = 1.0, tau2: float = 4.0) -> float:
    g = np.linspace(0.0, 200.0, 400001)
    c = np.cumsum(_fred(g, tau1, tau2))
    c /= c[-1]
    return float(np.interp(0.95, c, g) - np.interp(0.05, c, g))


def _write(path: Path, lc: LightCurve, *, counts: bool = False) -> Path:
    ref = lc.timeref
    hdu = lightcurve_hdu(lc, telescope="SWIFT", instrument="BAT")
    if counts:  # an OGIP COUNTS curve: integer counts, no ERROR column
        cols = [
            fits.Column("TIME", "D", unit="s", array=lc.time),
            fits.Column("COUNTS", "J", array=np.rint(lc.rate * lc.timedel).astype(np.int32)),
        ]
        h = hdu.header.copy()
        hdu = fits.BinTableHDU.from_columns(cols, name="RATE")
        for key in ("TIMEDEL", "MJDREFI", "MJDREFF", "TIMESYS", "TIMEUNIT", "TIMEZERO"):
            hdu.header[key] = h[key]
    hdr = {"TRIGTIME": TRIG}
    g = lc.gti
    fits.HDUList(
        [
            primary_hdu(telescope="SWIFT", instrument="BAT", extra=hdr),
            hdu,
            gti_hdu(g[:, 0], g[:, 1], timeref=ref, telescope="SWIFT", instrument="BAT"),
        ]
    ).writeto(path)
    return path


def _mask_weighted(rng: np.random.Generator, peak: float = 0.4, sigma: float = 0.1) -> LightCurve:
    """A BAT-like mask-weighted, background-subtracted curve (count/s/detector): half the bins < 0."""
    t = TRIG + np.arange(-40.0, 120.0, DT)
    rate = peak * _fred(t - TRIG + 0.0 - 0.5 * DT) + sigma * rng.standard_normal(t.size)
    return LightCurve(
        time=t,
        timedel=np.full(t.size, DT),
        rate=rate,
        error=np.full(t.size, sigma),
        fracexp=np.ones(t.size),
        gti=np.array([[t[0], t[-1] + DT]]),
        timeref=TimeReference(51910.0),
        band_kev=(15.0, 150.0),
    )


def test_mask_weighted_rates_are_not_rounded_to_zero(tmp_path: Path) -> None:
    """The old ``from_lightcurve`` rounded RATE x TIMEDEL (about 0.03 here) to 0 counts."""
    lc = _mask_weighted(np.random.default_rng(1))
    bins = from_lightcurve(read_lightcurve(_write(tmp_path / "lc.fits", lc)))
    assert bins.gaussian
    assert np.mean(bins.counts < 0) > 0.3  # negative bins kept, not clipped
    np.testing.assert_allclose(bins.counts, lc.rate * DT, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.sqrt(bins.variance), 0.1 * DT, rtol=1e-6)


def test_counts_curve_stays_poisson_and_forcing_poisson_on_rates_fails(tmp_path: Path) -> None:
    lc = _mask_weighted(np.random.default_rng(2))
    lc_counts = LightCurve(
        lc.time,
        lc.timedel,
        np.random.default_rng(3).poisson(300 * DT, lc.time.size) / DT,
        lc.error,
        lc.fracexp,
        lc.gti,
        lc.timeref,
    )
    b = from_lightcurve(read_lightcurve(_write(tmp_path / "c.fits", lc_counts, counts=True)))
    assert not b.gaussian and np.all(b.counts == np.rint(b.counts))
    with pytest.raises(InputDataError, match="not non-negative integers"):
        from_lightcurve(lc, statistic="poisson")
    bad = LightCurve(
        lc.time, lc.timedel, lc.rate, np.zeros(lc.time.size), lc.fracexp, lc.gti, lc.timeref
    )
    with pytest.raises(InputDataError, match="positive ERROR"):
        from_lightcurve(bad)


def test_t90_from_a_mask_weighted_curve_recovers_the_truth(tmp_path: Path) -> None:
    """Over 12 noise draws T90 is unbiased and its error covers the truth about 68 % of the time."""
    truth = _truth_t90()
    rows = []
    for seed in range(12):
        path = _write(tmp_path / f"lc{seed}.fits", _mask_weighted(np.random.default_rng(seed)))
        assert is_lightcurve_file(path)
        r = analyse_lightcurve(path)
        assert r.statistic == "gaussian" and r.durations is not None
        rows.append((r.durations.t90, r.durations.t90_err))
    a = np.array(rows)
    pull = (a[:, 0] - truth) / a[:, 1]
    assert abs(np.mean(a[:, 0]) / truth - 1) < 0.1
    assert 0.4 <= np.mean(np.abs(pull) < 1) <= 0.95


def test_cli_takes_a_light_curve_and_refuses_event_options(tmp_path: Path) -> None:
    """``svomflow vhf --events LC.fits`` used to fail with "no EVENTS table with a TIME column"."""
    import json

    from svomflow.cli.main import app
    from typer.testing import CliRunner

    path = _write(tmp_path / "lc.fits", _mask_weighted(np.random.default_rng(5)))
    res = CliRunner().invoke(app, ["vhf", "--events", str(path), "--json"])
    assert res.exit_code == 0, res.stdout + res.stderr
    (s,) = json.loads(res.stdout)
    assert s["statistic"] == "gaussian" and s["t0"] == TRIG
    assert 0.6 < s["t90"] / _truth_t90() < 1.4  # one draw; the statistics: the test above
    res = CliRunner().invoke(app, ["vhf", "--events", str(path), "--band", "15", "50"])
    assert res.exit_code == 2 and "a light curve has its one band" in res.stderr


def test_a_pha2_spectrum_is_not_taken_for_a_light_curve(shared_data: Path) -> None:
    assert not is_lightcurve_file(shared_data / "gbm/bn080916009/glg_cspec_n3_bn080916009_v01.pha")
