"""Fits of real public spectra against published reference values (skip without the data)."""

from __future__ import annotations

import math

import pytest
from svomflow.tasks import spectral as sp

pytestmark = pytest.mark.realdata


def test_asca_sis0_chi2_gehrels_power_law(shared_data):
    ds = sp.load(shared_data / "xray/asca/s0_mar24_bin.pha")
    ds.select_channels("41-167")
    assert ds.prepare().n_bins == 46
    res = sp.fit(ds, "pl", stat="chi2-gehrels", pivot=1.0, compute_errors=True)
    assert res.stat == pytest.approx(19.0311, abs=2e-4)
    assert res.dof == 44
    # XSPEC/sherpa PhoIndex Gamma = 1.83531 is our signed index -Gamma.
    assert res.parameters["index"].value == pytest.approx(-1.83531, abs=5e-5)
    assert res.parameters["K"].value == pytest.approx(3.02545e-4, rel=5e-5)
    assert res.parameters["index"].error == pytest.approx(0.104, abs=0.002)
    assert res.parameters["K"].error == pytest.approx(2.52e-5, rel=0.02)


def test_gbm_n6_power_law_matches_threeml(shared_data):
    d = shared_data / "gbm/bn090217206"
    n6 = sp.load(d / "bn090217206_n6_srcspectra.pha")  # background and response from the header
    n6.select_energy("10-30,40-950")  # threeML's test: PG-stat, these energies, pivot 1 keV
    res = sp.fit(n6, "pl", stat="pgstat", pivot=1.0)
    assert res.statistic == "pgstat"
    assert res.parameters["K"].value == pytest.approx(2.571, abs=0.002)
    assert res.parameters["index"].value == pytest.approx(-1.185, abs=0.001)


@pytest.fixture(scope="module")
def grb090217(shared_data):
    d = shared_data / "gbm/bn090217206"
    out = []
    for det in ("n6", "n9", "b1"):
        ds = sp.load(d / f"bn090217206_{det}_srcspectra.pha", name=det)
        ds.select_energy("8-30,40-900" if det.startswith("n") else "250-38000")
        out.append(ds)
    return out


def _within(value, err, ref, ref_err, nsig=2.0):
    return abs(value - ref) <= nsig * math.hypot(err, ref_err)


def test_grb090217_cpl_and_band_recover_gcn(grb090217):
    cpl = sp.errors(sp.fit(grb090217, "cpl", stat="pgstat", cross_norm=False))
    ep = cpl.parameters["epeak"]
    assert cpl.converged
    assert _within(ep.value, max(-ep.error_low, ep.error_high), 626.0, 29.0)
    assert _within(cpl.parameters["index"].value, cpl.parameters["index"].error, -0.85, 0.02)
    band = sp.errors(sp.fit(grb090217, "band", stat="pgstat", cross_norm=False))
    assert _within(band.parameters["epeak"].value, band.parameters["epeak"].error_high, 610.0, 32.0)
    assert _within(
        band.parameters["alpha"].value, band.parameters["alpha"].error_high, -0.845, 0.023
    )
    beta = band.parameters["beta"]
    assert _within(beta.value, beta.error_high, -2.86, 0.36)
    fl = sp.flux(cpl, (8.0, 1000.0), "fluence", n_samples=300)
    err = max(-fl.error_low, fl.error_high)
    assert _within(fl.value, err, 3.08e-5, 0.03e-5, nsig=3.0)
    cmp = sp.compare(cpl, band)
    assert cmp[1]["lrt_p_value"] is not None and cmp[1]["lrt_p_value"] > 0.05  # Band not needed


def test_joint_fit_cross_normalisation_is_free(grb090217):
    res = sp.fit(grb090217, "cpl", stat="pgstat")
    assert set(res.free) == {"K", "index", "epeak", "norm_n9", "norm_b1"}
    assert 0.8 < res.parameters["norm_n9"].value < 1.3
