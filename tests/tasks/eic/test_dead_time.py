"""Module dead times fitted from count rates against the simulator's true dead time."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.products.calibration_files import read_dead_time
from svomflow.products.eic_pixel_files import dead_time_hdus, read_dead_time_fit
from svomflow.products.ogip import write_hdulist
from svomflow.simulation.eclairs_pixel_health import DeadTimeScenario, simulate_dead_time_rates
from svomflow.tasks.eic.dead_time import DeadTimeConfig, fit_module, module_dead_time


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


def test_paralyzable_truth_biases_the_fit_high():
    """A chain that is paralyzable (not the model) gives a dead time too long by ~15 %."""
    rates, truth = simulate_dead_time_rates(
        np.random.default_rng(6), DeadTimeScenario(model="paralyzable")
    )
    res = module_dead_time(rates, config=DeadTimeConfig())
    bias = float(np.mean(res.fit.tau / truth.tau) - 1.0)
    assert 0.08 < bias < 0.25


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
