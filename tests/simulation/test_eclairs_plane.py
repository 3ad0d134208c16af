"""The ECLAIRs plane simulator: layout, drifts, line positions, counts, seeds, scenario."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
from svomflow.products.eic_calibration_files import read_pixel_gain, read_pixel_spectra
from svomflow.simulation.eclairs_plane import (
    GROUND_LINES,
    expected_spectra,
    make_plane,
    simulate_spectra,
)
from svomflow.simulation.scenario import load_scenario, run_scenario


def test_same_seed_same_plane_and_spectra() -> None:
    a, b = make_plane(5), make_plane(5)
    np.testing.assert_array_equal(a.gain0, b.gain0)
    np.testing.assert_array_equal(a.threshold0_kev, b.threshold0_kev)
    sa = simulate_spectra(a, a.epoch, 600, np.random.default_rng(1))
    sb = simulate_spectra(b, b.epoch, 600, np.random.default_rng(1))
    np.testing.assert_array_equal(sa.counts, sb.counts)
    assert not np.array_equal(make_plane(6).gain0, a.gain0)


def test_gains_scatter_by_module_and_drift_linearly() -> None:
    t = make_plane(7)
    assert t.gain0.shape == (80, 80) and int(t.module.max()) == 199
    rel = t.gain0 / np.median(t.gain0) - 1
    assert 0.025 < np.std(rel) < 0.035  # 3 % in total
    means = np.array([rel[t.module == m].mean() for m in range(200)])
    assert 0.015 < np.std(means) < 0.025  # 2 % shared by a module's 32 pixels
    d100 = t.epoch + _dt.timedelta(days=100)
    drift = t.gain(d100) / t.gain0 - 1
    assert abs(np.mean(drift) - 0.1) < 0.005  # 1e-3 per day
    np.testing.assert_allclose(
        t.gain(t.epoch + _dt.timedelta(days=50)), t.gain0 * (1 + t.gain_rate * 50)
    )


def test_lines_sit_at_their_true_channels_with_the_expected_counts() -> None:
    t = make_plane(8)
    hours = 2.0
    mu = expected_spectra(t, t.epoch, hours * 3600)
    counts = simulate_spectra(t, t.epoch, hours * 3600, np.random.default_rng(9)).counts
    for line in GROUND_LINES:
        x = (line.energy_kev - t.offset(t.epoch)) / t.gain(t.epoch)  # continuous ADC coordinate
        lo = np.floor(x - 8).astype(int)
        idx = lo[..., None] + np.arange(17)
        window = np.take_along_axis(mu, idx, -1)
        centre = (window * (idx + 0.5)).sum(-1) / window.sum(-1)
        assert np.max(np.abs(centre - x)) < 0.3  # channels (continuum slope only)
    total = counts.sum()
    # Poisson: the total within 5 sigma of its expectation
    assert abs(total - mu.sum()) < 5 * np.sqrt(mu.sum())
    # nothing below the thresholds (beyond the 0.15 keV edge width)
    e_mid = t.gain0[..., None] * (np.arange(1024) + 0.5) + t.offset0[..., None]
    below = e_mid < (t.threshold_kev()[..., None] - 1.0)
    assert counts[below].sum() == 0


def test_scenario_writes_spectra_and_truth(tmp_path: Path) -> None:
    sc = load_scenario(
        "eic_plane",
        [
            "instrument_options.eclairs_plane.days=[0, 30]",
            "instrument_options.eclairs_plane.exposure_h=0.1",
        ],
    )
    truth = run_scenario(sc, tmp_path, seed=4)
    info = json.loads((tmp_path / "truth.json").read_text())
    assert info is not None and truth is not None
    files = sorted((tmp_path / "eic_plane").glob("spectra_*.fits"))
    gains = sorted((tmp_path / "eic_plane").glob("truth_pixgain_*.fits"))
    assert len(files) == 2 and len(gains) == 2
    s0, s30 = (read_pixel_spectra(f) for f in files)
    assert (s30.start - s0.start).days == 30 and s0.exposure_s == 360.0
    g0, g30 = (read_pixel_gain(f) for f in gains)
    # 30 days of drift (+3 %) on top of the scenario's +10 % jump from day 21
    assert 1.12 < np.median(g30.gain / g0.gain) < 1.145
