"""Mask-weighted ECLAIRs light curves: weighted counts per bin, and T90 from them vs from events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from svomflow.config import load_instrument
from svomflow.instruments.coded_mask import MaskGeometry, mask_pattern
from svomflow.products.catalogue import FitsModel
from svomflow.simulation.xband_mc import read_burst
from svomflow.tasks.coded_mask.mask_weighting import (
    event_weights,
    mask_weights,
    weighted_lightcurve,
)
from svomflow.tasks.timing.adaptive import durations_from_events
from svomflow.tasks.timing.background import fit_background
from svomflow.tasks.timing.binning import BinnedCounts, uniform_bins
from svomflow.tasks.timing.duration import DurationConfig, durations

GEOM = MaskGeometry.from_instrument(load_instrument("eclairs"))


def test_weighted_lightcurve_matches_a_plain_reference() -> None:
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0.0, 10.0, 5000))
    w = rng.normal(0.1, 1.0, t.size)
    lo = np.arange(0.0, 10.0, 0.25)
    hi = lo + 0.25
    c, v = weighted_lightcurve(t, w, lo, hi)
    k = np.floor(t / 0.25).astype(int)
    np.testing.assert_allclose(c, np.bincount(k, weights=w, minlength=lo.size), atol=1e-9)
    np.testing.assert_allclose(v, np.bincount(k, weights=w * w, minlength=lo.size), atol=1e-9)


def test_t90_from_mask_weighted_curve_agrees_with_events(
    burst_factory: Any, tmp_path: Path
) -> None:
    """Same burst, 4-120 keV: T90 from the events (Poisson, background fitted) and from the
    mask-weighted, background-subtracted curve (Gaussian) agree within their errors."""
    b = burst_factory(tmp_path / "sim", 5, span=(-30.0, 60.0), offaxis_deg=5.0)
    ev = read_burst(b)
    e = ev.instruments["eclairs"]
    assert e.attitude is not None
    data = e.events
    ty, tz = e.attitude.to_projected(b["ra"], b["dec"])
    usable = ~ev.bad_pixels["eclairs"].dead
    mw = mask_weights(GEOM, mask_pattern(GEOM), float(ty), float(tz), usable=usable)
    sel = data.in_band(4.0, 120.0)
    t = data.time[sel]
    assert data.pixel_y is not None and data.pixel_z is not None
    w = event_weights(mw, data.pixel_y[sel], data.pixel_z[sel])
    grid = uniform_bins(t, 0.064, data.gti)
    c, v = weighted_lightcurve(t, w, grid.lo, grid.hi)
    ok = v > 0
    wb = BinnedCounts(grid.lo[ok], grid.hi[ok], c[ok], grid.exposure[ok], v[ok])
    assert np.mean(wb.counts < 0) > 0.2  # background-subtracted: many negative bins
    d_w = durations(wb, fit_background(wb), DurationConfig(n_sims=200))
    d_e = durations_from_events(t, data.gti, DurationConfig(n_sims=200)).durations
    sigma = np.hypot(d_w.t90_err, d_e.t90_err)
    assert abs(d_w.t90 - d_e.t90) < 2.0 * sigma, (d_w.t90, d_w.t90_err, d_e.t90, d_e.t90_err)
    truth = b["truth"]["bands"]["4-120"]["t90"]
    assert abs(d_w.t90 - truth) < 3.0 * d_w.t90_err, (d_w.t90, d_w.t90_err, truth)


def test_xband_light_curve_has_time_keywords_and_gti(bright_burst: dict[str, Any]) -> None:
    """LC_ECL carries MJDREF/TIMESYS/TIMEUNIT/TSTART/TSTOP and a GTI extension (issue 13)."""
    from svomflow.tasks.xband.config import XbandAnalysisConfig
    from svomflow.tasks.xband.extraction import spectra
    from svomflow.tasks.xband.lightcurves import lightcurves
    from svomflow.tasks.xband.localise import localise
    from svomflow.tasks.xband.pipeline import fit_plans
    from svomflow.tasks.xband.responses import responses
    from svomflow.tasks.xband.spectral_fits import fit
    from svomflow.tasks.xband.t90 import timing

    cfg = XbandAnalysisConfig.model_validate(
        {"spectral": {"errors": False, "flux_samples": 50}, "intervals": {"max_resolved": 1}}
    )
    cal = bright_burst["calibration"]
    ev = read_burst(bright_burst)
    ins, t0 = ev.instruments, ev.t0
    ci = timing(ins, t0, config=cfg.intervals).intervals
    pos = localise(ins, ci, cfg.known_sources, t0, config=cfg.localise, calibration=cal)
    rsp = responses(ins, pos, config=cfg.spectral, calibration=cal)
    out = spectra(
        ins, ci.fitted(), ci.off_source, pos, rsp, cfg.known_sources, t0,
        config=cfg.spectral, calibration=cal,
    )  # fmt: skip
    plan = next(p for p in fit_plans(list(out.detectors), cfg) if p.code == "ECL")
    f = fit(
        plan.code, plan.instruments, out, plan.fluence_bands, plan.flux_bands, plan.flux_band,
        t0, cfg.seed, config=cfg.spectral,
    )  # fmt: skip
    assert f.factors is not None
    pf = lightcurves("eclairs", ins["eclairs"], ci, f.factors, t0, config=cfg.lightcurve)
    lc = next(p for p in pf.products if p.type_code == "LC")
    assert isinstance(lc.model, FitsModel)
    hdus = lc.model.to_fits()
    h = hdus["RATE"].header
    data = ins["eclairs"].events
    assert h["MJDREFI"] + h["MJDREFF"] == pytest.approx(data.mjdref)
    assert h["TIMESYS"] == data.timesys and h["TIMEUNIT"] == "s"
    assert h["TIMEZERO"] == pytest.approx(t0)
    assert h["TSTART"] == pytest.approx(float(data.gti[0, 0]), abs=1e-6)
    assert h["TSTOP"] == pytest.approx(float(data.gti[-1, 1]), abs=1e-6)
    g = hdus["GTI"].data
    np.testing.assert_allclose(g["START"], data.gti[:, 0] + t0)
    np.testing.assert_allclose(g["STOP"], data.gti[:, 1] + t0)


def test_mwlc_product_reads_as_ogip_light_curve_and_gives_the_events_t90(
    bright_burst: dict[str, Any], tmp_path: Path
) -> None:
    """MWLC_ECL (issue 13): OGIP RATE tables per band with time keywords and GTI, and
    ``svomflow vhf --events MWLC.fits`` measures the T90 the events give, within errors."""
    import json

    from svomflow.cli.main import app
    from svomflow.products.ogip import read_lightcurve
    from svomflow.tasks.xband.config import XbandAnalysisConfig
    from svomflow.tasks.xband.localise import localise
    from svomflow.tasks.xband.mask_lightcurves import mask_lightcurves
    from svomflow.tasks.xband.t90 import timing
    from typer.testing import CliRunner

    cfg = XbandAnalysisConfig()
    cal = bright_burst["calibration"]
    ev = read_burst(bright_burst)
    ins, t0 = ev.instruments, ev.t0
    ci = timing(ins, t0, config=cfg.intervals).intervals
    pos = localise(ins, ci, cfg.known_sources, t0, config=cfg.localise, calibration=cal)
    out = mask_lightcurves(
        "eclairs", ins["eclairs"], pos, t0, config=cfg.lightcurve, calibration=cal
    )
    (prod,) = out.products
    assert (prod.type_code, prod.instrument) == ("MWLC", "ECL")
    assert out.bands[0] == (4.0, 150.0) and len(out.bands) == 4
    assert isinstance(prod.model, FitsModel)
    path = tmp_path / "mwlc.fits"
    prod.model.to_fits().writeto(path)
    data = ins["eclairs"].events
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names == ["PRIMARY", "RATE_4_150", "RATE_4_20", "RATE_20_50", "RATE_50_150", "GTI"]
        h = hdul["RATE_4_150"].header
        assert h["HDUCLAS1"] == "LIGHTCURVE" and h["HDUCLAS2"] == "NET" and h["MASKWT"]
        assert h["MJDREFI"] + h["MJDREFF"] == pytest.approx(data.mjdref)
        assert h["TIMESYS"] == data.timesys and h["TIMEUNIT"] == "s"
        assert h["TIMEZERO"] == pytest.approx(t0)
        assert h["TSTART"] == pytest.approx(float(data.gti[0, 0]), abs=1e-6)
        np.testing.assert_allclose(hdul["GTI"].data["START"], data.gti[:, 0] + t0)
        # background-subtracted: the off-burst rates scatter about zero
        rate = hdul["RATE_4_150"].data["RATE"]
        pre = hdul["RATE_4_150"].data["TIME"] < -5.0
        assert abs(np.mean(rate[pre])) < 3 * np.std(rate[pre]) / np.sqrt(pre.sum())
    lc = read_lightcurve(path, "RATE_20_50")
    assert lc.band_kev == (20.0, 50.0)
    # the sum of the three narrow bands is the wide band (same events, same weights)
    parts = sum(read_lightcurve(path, f"RATE_{b}").rate for b in ("4_20", "20_50", "50_150"))
    np.testing.assert_allclose(parts, read_lightcurve(path, "RATE_4_150").rate, atol=1e-6)

    res = CliRunner().invoke(app, ["vhf", "--events", str(path), "--json"])
    assert res.exit_code == 0, res.stdout + res.stderr
    (s,) = json.loads(res.stdout)
    assert s["statistic"] == "gaussian"
    d_e = durations_from_events(
        data.time[data.in_band(4.0, 150.0)], data.gti, DurationConfig(n_sims=200)
    ).durations
    sigma = np.hypot(s["t90_err"], d_e.t90_err)
    assert abs(s["t90"] - d_e.t90) < 2.0 * sigma, (s["t90"], s["t90_err"], d_e.t90, d_e.t90_err)
