"""Module dead times fitted from count rates against the simulator's true dead time."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.products.calibration_files import read_dead_time
from svomflow.products.eic_pixel_files import dead_time_hdus, read_dead_time_fit
from svomflow.products.ogip import write_hdulist
from svomflow.simulation.eclairs_pixel_health import DeadTimeScenario, simulate_dead_time_rates
from svomflow.tasks.eic.dead_time import (
    DeadTimeConfig,
    choose_model,
    fit_module,
    module_dead_time,
)


def test_fit_is_exact_on_noise_free_counts():
    f = np.geomspace(1, 3000, 8)
    t = np.full(f.size, 2.0)
    r0, tau = 11.0, 8e-6
    n = t * r0 * f / (1 + r0 * f * tau)
    fit = fit_module(n, t, f)
    assert fit.tau == pytest.approx(tau, rel=1e-6)
    assert fit.rate0 == pytest.approx(r0, rel=1e-8)
    assert fit.chi2 == pytest.approx(0.0, abs=1e-8)


def test_fit_cannot_constrain_a_single_level():
    fit = fit_module(np.array([10.0, 12.0, 11.0]), np.ones(3), np.ones(3))
    assert np.isnan(fit.tau)


@pytest.fixture(scope="module")
def nonparalyzable():
    return simulate_dead_time_rates(np.random.default_rng(4), DeadTimeScenario())


def test_dead_times_recovered_within_their_errors(nonparalyzable):
    rates, truth = nonparalyzable
    res = module_dead_time(rates, config=DeadTimeConfig())
    pull = (res.fit.tau - truth.tau) / res.fit.tau_err
    n = pull.size
    assert abs(pull.mean()) < 5 / np.sqrt(n)
    # the recorded counts of a dead-time-limited chain are sub-Poisson (renewal process,
    # variance m / (1 + R tau)^2): Poisson errors are slightly conservative, never too small
    assert 0.75 < pull.std() < 1.0 + 5 / np.sqrt(2 * n)
    figs = {f.name: f.value for f in res.figures}
    assert figs["model_p_value"] > 1e-3
    assert figs["plane_dead_time"] == pytest.approx(truth.tau.mean() / 200, rel=0.02)


def test_paralyzable_truth_biases_the_non_paralyzable_fit_high():
    """A paralyzable chain fitted as non-paralyzable: tau ~15 % too long, chi-square fine."""
    rates, truth = simulate_dead_time_rates(
        np.random.default_rng(6), DeadTimeScenario(model="paralyzable")
    )
    res = module_dead_time(rates, config=DeadTimeConfig(model="nonparalyzable"))
    bias = float(np.mean(res.fit.tau / truth.tau) - 1.0)
    assert 0.08 < bias < 0.25
    assert {f.name: f.value for f in res.figures}["model_p_value"] > 1e-3


def test_noise_free_paralyzable_counts_are_fitted_exactly():
    f = np.geomspace(1, 3000, 8)
    t = np.full(f.size, 200.0)
    r0, tau = 11.0, 8e-6
    n = t * r0 * f * np.exp(-r0 * f * tau)
    fit = fit_module(n, t, f, model="paralyzable")
    assert fit.tau == pytest.approx(tau, rel=1e-6)
    assert fit.deviance == pytest.approx(0.0, abs=1e-6)
    # the other model cannot describe them: its deviance is what the likelihood ratio sees
    # (0.37 per second of exposure at each of these 8 rates, up to R tau = 0.26)
    assert fit_module(n, t, f, model="nonparalyzable").deviance == pytest.approx(37.3, rel=0.02)


@pytest.mark.parametrize(("truth_model", "seed"), [("nonparalyzable", 11), ("paralyzable", 12)])
def test_likelihood_ratio_chooses_the_true_model(truth_model, seed):
    """The plane's summed deviance difference picks the simulated chain; tau is then unbiased."""
    rates, truth = simulate_dead_time_rates(
        np.random.default_rng(seed), DeadTimeScenario(model=truth_model)
    )
    res = module_dead_time(rates, config=DeadTimeConfig())
    figs = {f.name: f.value for f in res.figures}
    assert res.fit.model == truth_model.upper()
    assert figs["model_decided"] == 1.0
    assert figs["paralyzable"] == (1.0 if truth_model == "paralyzable" else 0.0)
    # measured on 3 seeds each: |delta| 25-50, far beyond the 9 of the decision
    assert abs(figs["delta_deviance"]) > 15.0
    pull = (res.fit.tau - truth.tau) / res.fit.tau_err
    assert abs(pull.mean()) < 5 / np.sqrt(pull.size)
    assert abs(float(np.mean(res.fit.tau / truth.tau) - 1.0)) < 0.02
    # both models' dead times are kept in the file
    assert set(res.fit.tau_by_model) == {"NONPARALYZABLE", "PARALYZABLE"}


def test_choose_model_flags_a_test_without_power():
    assert choose_model(3.0, 9.0) == ("nonparalyzable", False)
    assert choose_model(-30.0, 9.0) == ("nonparalyzable", True)
    assert choose_model(30.0, 9.0) == ("paralyzable", True)
    assert choose_model(float("nan"), 9.0) == ("nonparalyzable", False)


def test_deadtime_file_is_read_by_the_analysis_loader(tmp_path, nonparalyzable):
    rates, _ = nonparalyzable
    res = module_dead_time(rates, config=DeadTimeConfig())
    path = write_hdulist(
        dead_time_hdus(res.fit, telescope="SVOM", instrument="ECLAIRS"), tmp_path / "dt.fits"
    )
    dt = read_dead_time(path)  # what the VHF and X-band flows load
    assert dt.of("ECLAIRS") == pytest.approx(res.fit.plane_equivalent)
    assert dt.of("MOD005") == pytest.approx(res.fit.tau[5])
    back = read_dead_time_fit(path)
    np.testing.assert_allclose(back.tau_err, res.fit.tau_err)
    assert back.n_modules == 200


def _gate_cuts():
    from svomflow.config import load_config
    from svomflow.tasks.eic.pixels_pipeline import EicPixelsConfig

    return load_config(EicPixelsConfig, flow="eic_pixels").gates.deadtime.cuts


@pytest.mark.parametrize(("deaddef", "promoted"), [(5.0e-8, True), (0.0, False)])
def test_first_fit_is_compared_with_a_per_detector_file(
    tmp_path, nonparalyzable, deaddef, promoted
):
    """A simulator's DEADTIME file (DETNAM rows, DEADDEF, no module rows) is comparable.

    It used to refuse every first fitted candidate ("median_tau of the current file is
    unknown"): the gate compared a per-module figure such files cannot give and the reader
    dropped their DEADDEF. The cut is now on the plane dead time every DEADTIME file has; a
    file that says the plane has no dead time (DEADDEF 0, the burst simulator's: its events
    carry none) still refuses a fitted one, with that reason.
    """
    from svomflow.flows.eic_pixels import measure_deadtime
    from svomflow.instruments.dead_time import DeadTime
    from svomflow.products.calibration_files import write_dead_time
    from svomflow.tasks.eic.gate import judge

    current = write_dead_time(
        tmp_path / "eclairs_deadtime.fits",
        DeadTime({}, default=deaddef),
        telescope="SVOM",
        instrument="ECLAIRS",
    )
    cur = {f.name: f.value for f in measure_deadtime(current)}
    assert cur["plane_dead_time"] == deaddef
    assert cur["paralyzable"] == 0.0
    rates, _ = nonparalyzable
    res = module_dead_time(rates, config=DeadTimeConfig())
    verdict = judge("DEADTIME", res.figures, measure_deadtime(current), _gate_cuts())
    assert verdict.promote is promoted, verdict.reasons
    if not promoted:
        assert verdict.reasons == ("plane_dead_time of the current file is 0: no relative change",)


def test_model_change_needs_a_person(tmp_path):
    """A paralyzable candidate against a non-paralyzable current file is refused."""
    rates, _ = simulate_dead_time_rates(
        np.random.default_rng(12), DeadTimeScenario(model="paralyzable")
    )
    from svomflow.tasks.eic.gate import judge

    par = module_dead_time(rates, config=DeadTimeConfig())
    nonpar = module_dead_time(rates, config=DeadTimeConfig(model="nonparalyzable"))
    verdict = judge("DEADTIME", par.figures, nonpar.figures, _gate_cuts())
    assert not verdict.promote
    assert any(r.startswith("paralyzable changed by +1") for r in verdict.reasons)
    # the file keeps the model: read back, its figures say paralyzable
    path = write_hdulist(
        dead_time_hdus(par.fit, telescope="SVOM", instrument="ECLAIRS"), tmp_path / "dt.fits"
    )
    back = read_dead_time_fit(path)
    assert back.model == "PARALYZABLE" and back.model_decided is True
    assert back.delta_deviance == pytest.approx(par.fit.delta_deviance)
