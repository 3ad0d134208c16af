"""SBN low-threshold table: the thresholds land at the target energy on a simulated plane."""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pytest
from svomflow.products.eic_calibration_files import PixelSpectra
from svomflow.simulation.eclairs_plane import make_plane, simulate_spectra, true_gain_table
from svomflow.tasks.eic.gain import GainFitConfig, fit_pixel_gain
from svomflow.tasks.eic.thresholds import ThresholdConfig, threshold_figures, threshold_table


def test_new_dac_settings_put_thresholds_at_the_target() -> None:
    truth = make_plane(31)
    when = truth.epoch + _dt.timedelta(days=3)
    spectra = simulate_spectra(truth, when, 2 * 3600, np.random.default_rng(32))
    counts = spectra.counts.copy()
    counts[5, 7] = 0  # a dead pixel
    spectra = PixelSpectra(counts, spectra.start, spectra.exposure_s, spectra.dac)
    gain = fit_pixel_gain(spectra, GainFitConfig())
    cfg = ThresholdConfig()
    table = threshold_table(spectra, gain, cfg)
    before = truth.threshold_kev() - cfg.target_kev
    after = truth.threshold_kev(table.dac) - cfg.target_kev
    live = np.ones(after.shape, bool)
    live[5, 7] = False
    assert np.all(table.flag[gain.fallback & live] == "module gain: threshold approximate")
    live &= ~gain.fallback  # their edge in keV is only as good as the module's gain
    assert np.sqrt(np.mean(before[live] ** 2)) > 0.4  # the old settings were off
    # whole DAC steps: within half a step, plus the edge estimator's measured bias (the
    # half-maximum of the rising noise lies ~0.1 keV below the discriminator's midpoint)
    assert np.all(np.abs(after[live]) < cfg.dac_step_kev / 2 + 0.2)
    assert np.sqrt(np.mean(after[live] ** 2)) < 0.2
    assert table.flag[5, 7].startswith("no noise edge") and table.dac[5, 7] == spectra.dac[5, 7]
    assert np.isnan(table.predicted_kev[5, 7])
    pred_err = table.predicted_kev[live] - truth.threshold_kev(table.dac)[live]
    assert abs(np.mean(pred_err)) < 0.2 and np.std(pred_err) < 0.05
    figs = {f.name: f.value for f in threshold_figures(table)}
    assert figs["unset_fraction"] == pytest.approx(1 / 6400)


def test_edge_uses_the_pixel_gain() -> None:
    truth = make_plane(41)
    when = truth.epoch
    spectra = simulate_spectra(truth, when, 3600, np.random.default_rng(42))
    table = threshold_table(spectra, true_gain_table(truth, when), ThresholdConfig())
    err = table.edge_kev - truth.threshold_kev()
    assert np.std(err) < 0.05 and -0.2 < np.mean(err) < 0.0
