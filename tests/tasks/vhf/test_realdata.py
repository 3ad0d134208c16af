"""Real public data: GRB 080916C (GBM TTE through the GRM-like path) and GRB 090217A spectra."""

from __future__ import annotations

import math

import numpy as np
import pytest
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.products.ogip_spectra import read_pha, read_response
from svomflow.tasks.spectral.quick_spectrum import QuickSpectrumConfig, quick_spectrum
from svomflow.tasks.step import run_plain
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.inputs import VHFRequest
from svomflow.tasks.vhf.outcome import summary
from svomflow.tasks.vhf.pipeline import VHF_PIPELINE

pytestmark = pytest.mark.realdata

CATALOG_T90_080916C = 62.977  # GBM catalog (sum of triggered detectors, 50-300 keV)


def test_grb080916c_n3_t90_against_the_catalog(shared_data) -> None:
    """n3 alone, 50-300 keV, default options: T90 within 3 sigma of the catalog.

    Measured here: 81.9 +- 14.6 s (6 Dec 2026), of which 13.7 s is the background-choice
    systematic (67.3 s with the post-burst plateau where the cumulative curve flattens
    instead of past the fixed gap: the n3 background sits 2 % higher at 100-170 s than at
    170-300 s). The catalog value sums several detectors with hand-picked background
    intervals; single detectors differ by up to tens of percent, so the method's own error
    is the yardstick.
    """
    tte = shared_data / "gbm/bn080916009/glg_tte_n3_bn080916009_v01.fit.gz"
    cfg = VHFConfig(band_kev=(50.0, 300.0))
    # a foreign instrument: no CALDB calibration, its file carries its channels and dead time
    assert VHF_PIPELINE.needs(VHF_PIPELINE.observe(VHFRequest.of([tte])), cfg) == []
    outcome, _ = run_plain(VHF_PIPELINE, VHFRequest.of([tte]), cfg, calibration=CalibrationSet())
    s = summary(outcome)
    assert s["instruments"] == ["GBM"] and s["position"] is None  # no imaging instrument
    assert s["t0"] == pytest.approx(243216766.613542)
    assert abs(s["t90"] - CATALOG_T90_080916C) < 2 * math.hypot(s["t90_err"], 0.810)
    assert s["t90_err"] > 10.0  # the 100-170 s ambiguity is in the error, not hidden
    assert s["classification"]["class"] == "long"
    assert any("sorted on read" in f for f in s["flags"])  # GBM TTE is not strictly ordered
    assert s["peak_flux"]["1.024"]["rate"] > 0


@pytest.mark.slow
def test_grb080916c_n3_b0_t90_within_its_error_of_the_catalog(shared_data) -> None:
    """n3 + b0 events, 50-300 keV, default options: 67.5 +- 5.9 s against 62.977 +- 0.81 s."""
    d = shared_data / "gbm/bn080916009"
    files = [d / f"glg_tte_{det}_bn080916009_v01.fit.gz" for det in ("n3", "b0")]
    cfg = VHFConfig(band_kev=(50.0, 300.0))
    outcome, _ = run_plain(VHF_PIPELINE, VHFRequest.of(files), cfg, calibration=CalibrationSet())
    s = summary(outcome)
    assert abs(s["t90"] - CATALOG_T90_080916C) < math.hypot(s["t90_err"], 0.810)
    assert s["t90_err"] < 10.0


def test_grb090217a_quick_spectrum_against_gcn(shared_data) -> None:
    """GRM-style quick CPL fit of n6 + n9 + b1 (one energy range for every detector).

    GCN 8902: CPL Epeak 626 +- 29 keV, index -0.85 +- 0.02. The quick fit, without the
    per-detector ranges and the iodine K-edge exclusion of the full fit, gives here
    Epeak = 749 +- 46 keV, index -0.93 +- 0.02: within 3 combined sigma, not 2.
    """
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
    cfg = QuickSpectrumConfig(model="cpl", energy_range_kev=(8.0, 38000.0), n_flux_samples=100)
    q = quick_spectrum(counts, bkgs, resps, expo, config=cfg, names=["n6", "n9", "b1"])
    ep = q.parameters["epeak"]
    assert q.converged and np.isfinite(ep["error"])
    assert abs(ep["value"] - 626.0) < 3 * math.hypot(ep["error"], 29.0)
    assert abs(q.parameters["index"]["value"] + 0.85) < 3 * math.hypot(
        q.parameters["index"]["error"], 0.02
    )
