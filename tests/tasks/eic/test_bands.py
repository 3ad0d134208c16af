"""On-board band table: channel bounds per pixel hold exactly the band's energies."""

from __future__ import annotations

import datetime as _dt

import numpy as np
from svomflow.simulation.eclairs_plane import make_plane, true_gain_table
from svomflow.tasks.eic.bands import BandConfig, band_figures, band_table


def test_bounds_select_the_channels_whose_middle_is_in_the_band() -> None:
    truth = make_plane(51)
    gain = true_gain_table(truth, truth.epoch + _dt.timedelta(days=5))
    cfg = BandConfig()
    table = band_table(gain, cfg)
    mid = lambda ch: gain.gain[..., None] * (ch + 0.5) + gain.offset[..., None]  # noqa: E731
    lo, hi = mid(table.chan_lo.astype(float)), mid(table.chan_hi.astype(float))
    assert np.all(lo >= table.e_min) and np.all(mid(table.chan_lo - 1.0) < table.e_min)
    assert np.all(hi < table.e_max) and np.all(mid(table.chan_hi + 1.0) >= table.e_max)
    # one module-wide bound would not do: pixels of a module differ by many channels at 120 keV
    top = table.chan_hi[..., list(table.names).index("trig_50_120")]
    spread = [np.ptp(top[truth.module == m]) for m in range(200)]
    assert np.median(spread) > 5
    figs = {f.name: f.value for f in band_figures(table)}
    assert figs["empty_band_fraction"] == 0.0
