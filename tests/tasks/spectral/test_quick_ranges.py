"""Per-detector energy ranges of the quick spectrum (instrument file, detector type, limits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from svomflow.config import InstrumentDefinition, load_instrument
from svomflow.errors import InputDataError
from svomflow.tasks.spectral import QuickSpectrumConfig, detector_energy_ranges, quick_spectrum
from svomflow.tasks.spectral.models import EnergyGrid, make_model
from svomflow.tasks.spectral.quick_spectrum import DetectorTypeRanges, subtract_windows


def test_subtract_windows():
    assert subtract_windows([(8.0, 900.0)], [(30.0, 40.0)]) == [(8.0, 30.0), (40.0, 900.0)]
    assert subtract_windows([(8.0, 900.0)], [(0.0, 10.0), (800.0, 1e4)]) == [(10.0, 800.0)]
    assert subtract_windows([(50.0, 60.0)], [(40.0, 70.0)]) == []


def test_detector_types_from_ebounds(synth):
    nai = synth.gaussian_response(lo=5.0, hi=2000.0)
    bgo = synth.gaussian_response(lo=110.0, hi=40000.0)
    r, src = detector_energy_ranges(nai, "n6")
    assert r == [(8.0, 30.0), (40.0, 900.0)] and "NaI" in src
    r, src = detector_energy_ranges(bgo, "b1")
    assert r == [(250.0, 38000.0)] and "BGO" in src
    # an overall limit intersects every detector's ranges
    cfg = QuickSpectrumConfig(energy_range_kev=(20.0, 500.0))
    assert detector_energy_ranges(nai, "n6", cfg)[0] == [(20.0, 30.0), (40.0, 500.0)]
    # a detector of no configured type is an error, not a silent default
    only_nai = QuickSpectrumConfig(
        detector_types=[
            DetectorTypeRanges(name="NaI", lowest_edge_kev=(0, 50), fit_ranges_kev=[(8, 900)])
        ]
    )
    with pytest.raises(InputDataError, match="lowest channel edge 110"):
        detector_energy_ranges(bgo, "b1", only_nai)


def test_ranges_from_the_instrument_definition(synth):
    grm = load_instrument("grm")
    resp = synth.gaussian_response(lo=15.0, hi=5000.0)
    r, src = detector_energy_ranges(resp, "GRD01", definition=grm)
    assert r == [(15.0, 30.0), (40.0, 5000.0)] and src == "instrument grm"
    assert grm.is_assumption("quick_spectrum.fit_ranges_kev")
    data = grm.model_dump()
    data["detectors"][1]["quick_spectrum"] = {"fit_ranges_kev": [[50.0, 1000.0]]}
    custom = InstrumentDefinition.model_validate(data)
    # the detector's own keys override the instrument's; the others are inherited
    assert detector_energy_ranges(resp, "GRD02", definition=custom)[0] == [(50.0, 1000.0)]
    data["detectors"][2]["quick_spectrum"] = {"exclude_kev": [[30.0, 45.0]]}
    custom = InstrumentDefinition.model_validate(data)
    assert detector_energy_ranges(resp, "GRD03", definition=custom)[0] == [
        (15.0, 30.0),
        (45.0, 5000.0),
    ]
    assert detector_energy_ranges(resp, "GRD01", definition=custom)[0][0] == (15.0, 30.0)


def test_quick_spectrum_excludes_a_mismodelled_edge(synth):
    """A NaI response wrong by 40 % in 30-40 keV (an edge) and a BGO response wrong below
    250 keV bias a single-range fit; the per-detector ranges recover the injected Epeak."""
    rng = np.random.default_rng(8)
    truth = {"K": 0.05, "index": -0.9, "epeak": 500.0}
    model = make_model("cpl")
    fitted = [
        synth.gaussian_response(area=120.0, lo=5.0, hi=2000.0),
        synth.gaussian_response(area=150.0, lo=110.0, hi=40000.0),
    ]
    counts, bkgs = [], []
    for k, resp in enumerate(fitted):
        wrong = resp.matrix.copy()
        # channels wholly inside the excluded windows are wrong (a straddling channel is
        # fitted, as a channel overlapping a range is)
        bad = (resp.e_min >= 30.0) & (resp.e_max <= 40.0) if k == 0 else resp.e_max <= 250.0
        wrong[:, bad] *= 1.4
        mu = model.integrate(EnergyGrid(resp.energ_lo, resp.energ_hi, 3), truth) @ wrong * 20.0
        bkg = np.full(mu.size, 10.0)
        counts.append(rng.poisson(mu + bkg).astype(float))
        bkgs.append((bkg, np.full(mu.size, 0.5)))
    cfg = QuickSpectrumConfig(n_flux_samples=0)
    q = quick_spectrum(counts, bkgs, fitted, 20.0, config=cfg, names=["n1", "b1"])
    ep = q.parameters["epeak"]
    d = truth["epeak"] - ep["value"]
    assert ep["error_low"] * 3 <= d <= ep["error_high"] * 3, ep
    assert q.energy_ranges == {"n1": [(8.0, 30.0), (40.0, 900.0)], "b1": [(250.0, 38000.0)]}
    one = quick_spectrum(
        counts, bkgs, fitted, 20.0, config=cfg, energy_ranges=[[(8.0, 38000.0)]] * 2
    )
    ep1 = one.parameters["epeak"]
    # the single range is pulled far off by the mismodelled channels (here by ~8 sigma)
    assert abs(ep1["value"] - truth["epeak"]) > 5 * max(ep1["error_high"], -ep1["error_low"])


@pytest.mark.realdata
def test_grb090217a_quick_fit_against_gcn(shared_data):
    """GCN 8902 (GBM, n6+n9+b1): CPL Epeak 626 +- 29 keV, index -0.85 +- 0.02."""
    from svomflow.products.ogip_spectra import read_pha, read_response

    d = shared_data / "gbm/bn090217206"
    counts, bkgs, resps, expo = [], [], [], []
    for det in ("n6", "n9", "b1"):
        src = read_pha(d / f"bn090217206_{det}_srcspectra.pha")
        bak = read_pha(d / f"bn090217206_{det}_bkgspectra.bak")
        scale = src.exposure / bak.exposure
        assert bak.stat_err is not None
        counts.append(src.counts)
        bkgs.append((bak.counts * scale, (bak.stat_err * scale) ** 2))
        resps.append(read_response(d / f"bn090217206_{det}_weightedrsp.rsp"))
        expo.append(src.exposure)
    q = quick_spectrum(
        counts,
        bkgs,
        resps,
        expo,
        config=QuickSpectrumConfig(n_flux_samples=100),
        names=["n6", "n9", "b1"],
    )
    assert q.converged and q.energy_ranges["b1"] == [(250.0, 38000.0)]
    ep, ix = q.parameters["epeak"], q.parameters["index"]
    assert abs(ep["value"] - 626.0) < 2 * math.hypot(max(-ep["error_low"], ep["error_high"]), 29.0)
    assert abs(ix["value"] + 0.85) < 2 * math.hypot(ix["error"], 0.02)
