"""Profile-likelihood flux errors (XSPEC's ``cflux``) against exact and sampled references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from svomflow.tasks import spectral as sp
from svomflow.tasks.spectral.flux import FluxNormalised
from svomflow.tasks.spectral.models import EnergyGrid, make_model

BAND = (10.0, 1000.0)


@pytest.fixture(scope="module")
def cpl_fit(synth):
    rng = np.random.default_rng(5)
    truth = {"K": 0.05, "index": -0.8, "epeak": 300.0}
    ds = synth.simulate("cpl", truth, rng, synth.gaussian_response(), exposure=10.0)
    return sp.errors(sp.fit(ds, "cpl", stat="wstat"))


def test_flux_normalised_model_is_the_same_spectrum():
    base = make_model("band")
    p = [0.02, -0.7, -2.3, 250.0]
    wrapped = FluxNormalised(base, BAND, "energy")
    f = base.flux(p, BAND, "energy", n_nodes=513)
    q = [f, *p[1:]]
    np.testing.assert_allclose(wrapped.base_values(q), p, rtol=1e-12)
    grid = EnergyGrid(np.geomspace(5, 3000, 60)[:-1], np.geomspace(5, 3000, 60)[1:], 2)
    np.testing.assert_allclose(wrapped.integrate(grid, q), base.integrate(grid, p), rtol=1e-12)


def test_profile_flux_with_frozen_shape_is_the_amplitude_interval(synth):
    """Flux = K x constant when the shape is frozen: its interval is K's, scaled."""
    rng = np.random.default_rng(8)
    truth = {"K": 0.05, "index": -0.8, "epeak": 300.0}
    ds = synth.simulate("cpl", truth, rng, synth.gaussian_response(), exposure=10.0)
    res = sp.errors(sp.fit(ds, "cpl", stat="wstat", freeze={"index": -0.8, "epeak": 300.0}))
    f = sp.flux(res, BAND, "photon", method="profile")
    k = res.parameters["K"]
    unit = res.model.flux([1.0, -0.8, 300.0], BAND, "photon")
    assert f.method == "profile" and not f.at_bound
    assert f.value == pytest.approx(k.value * unit, rel=1e-6)
    assert f.error_low == pytest.approx(k.error_low * unit, rel=2e-3)
    assert f.error_high == pytest.approx(k.error_high * unit, rel=2e-3)


def test_profile_flux_interval_is_a_delta_stat_of_one(cpl_fit):
    """At the interval's ends the statistic, minimised with the flux held, is 1 above the best."""
    res = cpl_fit
    f = sp.flux(res, BAND, "energy", method="profile")
    model = res.model
    best = np.array([res.parameters[n].value for n in model.param_names])

    def profiled(target: float) -> float:
        # minimise over the shape with K set so that the flux is the target
        def stat(x: np.ndarray) -> float:
            p = np.array([1.0, x[0], np.exp(x[1])])
            p[0] = target / model.flux(p, BAND, "energy", n_nodes=513)
            return res.problem.statistic(p)

        from scipy.optimize import minimize

        x0 = [best[1], np.log(best[2])]
        return minimize(stat, x0, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-7}).fun

    for end in (f.value + f.error_low, f.value + f.error_high):
        assert profiled(end) - res.stat == pytest.approx(1.0, abs=0.02)


def test_profile_and_sampled_flux_agree_on_a_bright_gaussian_fit(cpl_fit):
    prof = sp.flux(cpl_fit, BAND, "energy", method="profile")
    samp = sp.flux(cpl_fit, BAND, "energy", n_samples=4000, seed=1)
    assert prof.value == pytest.approx(samp.value, rel=1e-3)
    # the quantiles of 4000 draws scatter by ~2 %
    assert prof.error_high - prof.error_low == pytest.approx(
        samp.error_high - samp.error_low, rel=0.1
    )


def test_fluence_scales_the_energy_flux_interval(cpl_fit):
    e = sp.flux(cpl_fit, BAND, "energy", method="profile")
    f = sp.flux(cpl_fit, BAND, "fluence", method="profile", duration=10.0)
    s = e.scaled(10.0, "fluence", "erg/cm2", 10.0)
    for a, b in ((f.value, s.value), (f.error_low, s.error_low), (f.error_high, s.error_high)):
        assert a == pytest.approx(b, rel=1e-9)
    assert f.unit == "erg/cm2" and f.to_dict()["method"] == "profile"


def test_ninety_percent_profile_interval_is_wider(cpl_fit):
    one = sp.flux(cpl_fit, BAND, "energy", method="profile")
    ninety = sp.flux(cpl_fit, BAND, "energy", method="profile", cl=0.9)
    ratio = (ninety.error_high - ninety.error_low) / (one.error_high - one.error_low)
    # a near-parabolic profile: the widths scale as the square roots of the chi2 quantiles
    assert ratio == pytest.approx(np.sqrt(stats.chi2.ppf(0.9, 1)), rel=0.05)


def test_sum_model_falls_back_to_sampling(synth):
    rng = np.random.default_rng(3)
    truth = {"K_1": 0.05, "index_1": -1.0, "epeak_1": 300.0, "K_2": 0.01, "kt_2": 20.0}
    ds = synth.simulate("cpl+bb", truth, rng, synth.gaussian_response(), exposure=10.0)
    res = sp.fit(ds, "cpl+bb", stat="wstat", start=truth)
    f = sp.flux(res, BAND, "energy", method="profile", n_samples=200)
    assert f.method == "sample" and "no single free amplitude" in f.notes[0]
    with pytest.raises(ValueError, match="method"):
        sp.flux(res, BAND, "energy", method="bootstrap")
