"""The pixel-health simulator draws what it says: rates, bad pixels, dead time (seeded)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from svomflow.config import load_instrument
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.products.eic_pixel_files import read_dead_time_rates, read_history
from svomflow.simulation.eclairs_pixel_health import (
    DeadTimeScenario,
    PixelHealthScenario,
    expected_illumination,
    simulate_dead_time_rates,
    simulate_pixel_health,
    write_pixel_health_files,
)
from svomflow.tasks.eic.uniformity import flat_illumination


@pytest.fixture(scope="module")
def sim():
    sc = PixelHealthScenario(days=1.0, bin_s=1200.0, n_noisy=6, n_dead=4, n_intermittent=4)
    return simulate_pixel_health(np.random.default_rng(11), sc)


def test_normal_pixels_count_what_the_model_expects(sim):
    h = sim.history
    bad = np.zeros(h.shape, bool)
    for p in sim.pixels:
        bad[p.y, p.z] = True
    expected = (h.exposure * sim.modulation)[:, None, None] * (sim.illumination * sim.efficiency)
    n_obs = h.counts[:, ~bad].sum()
    n_exp = expected[:, ~bad].sum()
    assert abs(n_obs - n_exp) < 5 * np.sqrt(n_exp)
    # per pixel over the day: Poisson scatter about the expectation (chi2 / dof near 1)
    per_pix = h.counts[:, ~bad].sum(axis=0)
    exp_pix = expected[:, ~bad].sum(axis=0)
    chi2 = np.sum((per_pix - exp_pix) ** 2 / exp_pix) / per_pix.size
    assert abs(chi2 - 1.0) < 5 * np.sqrt(2.0 / per_pix.size)
    # the SAA switches the detectors off: bins with no live time have no counts
    off = h.exposure == 0
    assert off.any() and h.counts[off].sum() == 0


def test_injected_pixels_behave_as_their_truth(sim):
    h = sim.history
    expected = (h.exposure * sim.modulation)[:, None, None] * (sim.illumination * sim.efficiency)
    for p in sim.pixels:
        after = h.start >= (h.start[0] if np.isnan(p.onset) else p.onset)
        after &= h.exposure > 0
        if p.kind == "dead":
            assert h.counts[after, p.y, p.z].sum() == 0
        elif p.kind == "noisy":
            excess = h.counts[after, p.y, p.z].sum() - expected[after, p.y, p.z].sum()
            want = p.rate * h.exposure[after].sum()
            sigma = np.sqrt(expected[after, p.y, p.z].sum() + want)
            assert abs(excess - want) < 5 * sigma
        else:
            assert 0.0 <= p.duty_cycle <= 1.0 and p.episodes
            assert all(b > a for a, b in p.episodes)


def test_illumination_model_matches_the_configured_cxb_share():
    inst = load_instrument("eclairs")
    cxb = expected_illumination(inst, instrumental_weight=0.0)
    total = expected_illumination(inst)
    share = float(cxb.mean() / total.mean())
    # config/pipelines/eic_pixels.yaml states 0.86 from these same numbers
    assert abs(share - 0.86) < 0.005
    model = flat_illumination(MaskGeometry.from_instrument(inst), share)
    np.testing.assert_allclose(model, total / total.mean(), rtol=1e-12)


@pytest.mark.parametrize("model", ["nonparalyzable", "paralyzable"])
def test_dead_time_counts_follow_their_model(model):
    sc = DeadTimeScenario(n_modules=40, levels=(1.0, 300.0, 1500.0), tau_rms=0.0, model=model)
    rates, truth = simulate_dead_time_rates(np.random.default_rng(3), sc)
    for lvl in sc.levels:
        sel = rates.reference == lvl
        r = truth.rate0[rates.module[sel]] * lvl
        if model == "nonparalyzable":
            mean = r * sc.exposure_s / (1 + r * sc.tau_s)
        else:
            mean = r * sc.exposure_s * np.exp(-r * sc.tau_s)
        total, want = rates.counts[sel].sum(), mean.sum()
        assert abs(total - want) < 5 * np.sqrt(want) + 1


def test_files_round_trip(tmp_path, sim):
    dt = simulate_dead_time_rates(np.random.default_rng(1), DeadTimeScenario(n_modules=3))
    truth = write_pixel_health_files(tmp_path, sim, dt)
    back = read_history(tmp_path / truth["pixhist"][0])
    np.testing.assert_array_equal(back.counts, sim.history.counts)
    np.testing.assert_array_equal(back.exposure, sim.history.exposure)
    rates = read_dead_time_rates(tmp_path / "dtrates.fits")
    np.testing.assert_array_equal(rates.counts, dt[0].counts)
    stored = json.loads((tmp_path / "truth.json").read_text())
    assert len(stored["pixels"]) == len(sim.pixels)
