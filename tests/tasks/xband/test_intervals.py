"""Timing of the X-band flow: the bin width follows the burst, a truncated tail is flagged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from svomflow.simulation.xband_mc import read_burst
from svomflow.tasks.xband.config import XbandAnalysisConfig
from svomflow.tasks.xband.intervals import common_intervals, instrument_timing
from svomflow.tasks.xband.t90 import timing

CFG = XbandAnalysisConfig()


def test_truncated_tail_is_flagged_not_measured(burst_factory: Any, tmp_path: Path) -> None:
    """Data stop 6 s after a burst with a 3 s decay constant: no post-burst plateau.

    Both instruments still see the burst (light curve and background kept, common intervals
    built with no post-burst interval), no T90 number is given, and the T90 products carry
    QUALITY = TAIL_AT_DATA_END with the reason.
    """
    b = burst_factory(tmp_path / "sim", 5, span=(-15.0, 6.0))
    ev = read_burst(b)
    timings = [instrument_timing(e, CFG.intervals) for e in ev.instruments.values()]
    for tm in timings:
        assert tm.durations is None and tm.status.quality == "TAIL_AT_DATA_END", tm.instrument
        # the excess reaches (GRM) or nearly reaches (ECLAIRs, fainter) the end of the data
        assert float(tm.bins.hi[-1]) - tm.background.source[1] < 1.0
    ci = common_intervals(timings, ev.instruments, CFG.intervals)
    assert ci.post_burst is None and ci.pre_burst[1] < 0.5
    res = timing(ev.instruments, ev.t0, config=CFG.intervals)
    for name, row in res.t90_rows().items():
        assert "t90" not in row and row["quality"] == "TAIL_AT_DATA_END", name
        assert "end of the data" in row["quality_reason"]
    t90 = [p for p in res.products if p.type_code == "T90"]
    assert len(t90) == 2
    for p in t90:
        h = p.model.to_fits()
        assert h[0].header["QUALITY"] == "TAIL_AT_DATA_END"
        assert "no post-burst" in h[0].header["QUALREAS"]


def test_bin_width_follows_the_burst(bright_burst: dict[str, Any]) -> None:
    """A ~10 s burst gets a clock of extent/64 rounded down to 1 ms * 2^k (64-256 ms)."""
    ev = read_burst(bright_burst)
    for e in ev.instruments.values():
        tm = instrument_timing(e, CFG.intervals)
        extent = tm.background.source[1] - tm.background.source[0]
        k = np.log2(tm.dt_s / 0.001)
        assert abs(k - round(k)) < 1e-9 and tm.dt_s <= extent / 64 < 2 * tm.dt_s
        assert 0.032 <= tm.dt_s <= 0.512 and tm.status.measured
        assert np.allclose(np.diff(tm.bins.lo[:10]), tm.dt_s)
