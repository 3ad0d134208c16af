"""A burst seen with drifted gains: the current PIXGAIN recovers its spectrum, a stale one not.

The ECLAIRs events of a simulated burst (cut-off power law, Epeak 100 keV) get the raw ADC
channel their pixel records with the plane's gains 150 days after launch (gains drifted by
~15 %). The X-band reader turns them back into energies through the ``PIXGAIN`` of the run's
calibration: the table fitted on calibration spectra of the same day recovers Epeak and the
index within their errors; the launch table (stale) gives an Epeak ~15 % too low.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet, calibration_key
from svomflow.config import load_instrument
from svomflow.instruments.coded_mask import MaskGeometry, mask_pattern
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.products.ogip import TimeReference, write_hdulist
from svomflow.simulation.eclairs_plane import add_adc_column, make_plane, simulate_spectra
from svomflow.simulation.xband_mc import simulate_burst
from svomflow.tasks import spectral as sp
from svomflow.tasks.coded_mask.mask_weighting import mask_weights
from svomflow.tasks.coded_mask.response import eclairs_response, write_eclairs_rsp
from svomflow.tasks.eic.gain import GainFitConfig, fit_pixel_gain
from svomflow.tasks.vhf.inputs import VHFRequest
from svomflow.tasks.vhf.inputs import read as vhf_read
from svomflow.tasks.xband.datasets import FitDataset
from svomflow.tasks.xband.fitting import fit_datasets
from svomflow.tasks.xband.inputs import XbandRequest, read_inputs
from svomflow.tasks.xband.mask_spectra import extract_weighted_spectrum, weighted_spectra_hdu

CPL = {"model": "cpl", "alpha": -1.0, "epeak": 100.0}
INST = load_instrument("eclairs")
GEOM = MaskGeometry.from_instrument(INST)
DETECTOR = EclairsResponse.from_instrument(INST)
DAY = 150.0


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("drifted_burst")
    b = simulate_burst(tmp / "sim", 71, spectrum=CPL, offaxis_deg=5.0)
    truth = make_plane(72)
    when = truth.epoch + _dt.timedelta(days=DAY)
    ecl = next(f for f in b["files"] if fits.getval(f, "INSTRUME", 0) == "ECLAIRS")
    add_adc_column(ecl, truth, when)
    rng = np.random.default_rng(73)
    cfg = GainFitConfig()
    stale = fit_pixel_gain(simulate_spectra(truth, truth.epoch, 7200, rng), cfg)
    day_before = when - _dt.timedelta(days=1)
    current = fit_pixel_gain(simulate_spectra(truth, day_before, 7200, rng), cfg, prior=stale)
    return {"burst": b, "stale": stale, "current": current, "work": tmp, "truth": truth}


def _with_gain(cal: CalibrationSet, gain: Any) -> CalibrationSet:
    objects = dict(cal.objects)
    if gain is not None:
        objects[calibration_key("eclairs", "PIXGAIN")] = gain
    return CalibrationSet(entries=dict(cal.entries), objects=objects)


def _fit(b: dict[str, Any], cal: CalibrationSet, work: Path) -> dict[str, float]:
    """Mask-weighted ECLAIRs spectrum at the true position, fitted with a CPL (chi2)."""
    ev = read_inputs(XbandRequest(tuple(b["files"]), b["t0"]), cal)
    e = ev.instruments["eclairs"]
    assert e.attitude is not None
    ty, tz = e.attitude.to_projected(b["ra"], b["dec"])
    usable = ~ev.bad_pixels["eclairs"].dead
    mw = mask_weights(GEOM, mask_pattern(GEOM), float(ty), float(tz), usable=usable)
    interval = (-3.0, 18.0)
    s = extract_weighted_spectrum(e, mw, interval, min_snr=3.0, min_channels=6)
    r = eclairs_response(
        float(ty), float(tz), usable_pixels=usable, weighting="mask", detector=DETECTOR
    )
    work.mkdir(parents=True, exist_ok=True)
    rsp = write_eclairs_rsp(work / "ecl.rsp", r, validity=(b["t0"] - 1e3, b["t0"] + 1e3))
    tref = TimeReference(59945.0, "TT", "s")
    hdu = weighted_spectra_hdu(
        [s], telescope="SVOM", instrument="ECLAIRS", timeref=tref, t0=b["t0"], respfile=rsp.name
    )
    pha = write_hdulist([fits.PrimaryHDU(), hdu], work / "ecl.pha")
    ds = sp.load(str(pha), rsp=str(rsp), name="eclairs")
    f = fit_datasets(
        [FitDataset(ds, (4.0, 150.0), "eclairs", stat="chi2")],
        label="main",
        interval=interval,
        model="cpl",
        fallback_model=None,
        stat="wstat",
        cross_norm=True,
        errors=True,
        flux_bands=[(4.0, 150.0)],
        flux_samples=50,
        seed=0,
    )
    out = {}
    for name, true in (("index", CPL["alpha"]), ("epeak", CPL["epeak"])):
        p = f.result.parameters[name]
        err = p.error_high if p.value < true else -(p.error_low or 0.0)
        out[name] = (p.value - true) / err if err and err > 0 else np.inf
    out["epeak_value"] = f.result.parameters["epeak"].value
    return out


def test_readers_take_energies_from_adc_only_with_a_pixgain(drifted: dict[str, Any]) -> None:
    b = drifted["burst"]
    plain = vhf_read(VHFRequest.of(b["files"], t0=b["t0"]), b["calibration"]).burst
    cur = vhf_read(
        VHFRequest.of(b["files"], t0=b["t0"]), _with_gain(b["calibration"], drifted["current"])
    ).burst
    old = vhf_read(
        VHFRequest.of(b["files"], t0=b["t0"]), _with_gain(b["calibration"], drifted["stale"])
    ).burst
    e0, e1, e2 = (x.instruments["ECLAIRS"].events.energy for x in (plain, cur, old))
    # without PIXGAIN the file's PI (true energies) as before; with the current table the
    # same energies to a channel or two; with the stale one ~15 % lower
    assert np.median(np.abs(e1 - e0)[e0 > 20]) < 0.5
    ratio = np.median(e2[e0 > 20] / e0[e0 > 20])
    assert 0.8 < ratio < 0.9
    assert any("PIXGAIN" in f for f in cur.instruments["ECLAIRS"].events.flags)
    grm0, grm1 = (x.instruments["GRM"].events.energy for x in (plain, cur))
    np.testing.assert_array_equal(grm0, grm1)  # GRM untouched


def test_current_gain_recovers_the_spectrum_and_a_stale_one_does_not(
    drifted: dict[str, Any],
) -> None:
    b, work = drifted["burst"], drifted["work"]
    good = _fit(b, _with_gain(b["calibration"], drifted["current"]), work / "current")
    bad = _fit(b, _with_gain(b["calibration"], drifted["stale"]), work / "stale")
    # |pull| < 3.3 fails with probability 0.1 % per quantity for a correct analysis
    assert abs(good["epeak"]) < 3.3 and abs(good["index"]) < 3.3, good
    assert abs(bad["epeak"]) > 3.3, bad
    assert bad["epeak_value"] < 0.92 * CPL["epeak"]


def test_burst_pipelines_select_pixgain_for_the_pixelated_instrument_only() -> None:
    from svomflow.tasks.step import Observation
    from svomflow.tasks.vhf.pipeline import VHF_PIPELINE
    from svomflow.tasks.xband.pipeline import XBAND_PIPELINE

    obs = Observation(instruments=("eclairs", "grm"), time="2026-06-01T00:00:00")
    for pipe in (VHF_PIPELINE, XBAND_PIPELINE):
        reqs = {r.name: r for r in pipe.needs(obs, pipe.config())}
        assert reqs["eclairs:PIXGAIN"].optional and "grm:PIXGAIN" not in reqs
        assert "eclairs:EBOUNDS" in reqs  # the steps' own selections are unchanged
