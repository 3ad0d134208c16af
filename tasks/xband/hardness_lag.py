"""Step ``hardness-lag``: hardness ratios and spectral lags of the main interval (HR, LAG).

Per instrument, its soft and hard bands (``temporal.<instrument>_bands_kev``, default the
instrument file's ``bands_kev.hardness``); across the instruments, ECLAIRs soft against GRM
hard (``temporal.joint_bands_kev``). Net counts over the main interval against each band's
background model (fitted on the off-source intervals) give the ratio; the cross-correlation
of the background-subtracted light curves on ``temporal.lag_bin_s`` bins gives the lag, its
error from ``temporal.lag_sims`` resamplings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.products.catalogue.xband import JOINT_CODE
from svomflow.tasks.step import step
from svomflow.tasks.timing import BinnedCounts, LagConfig, hardness_ratio, net_counts, time_lag
from svomflow.tasks.xband.config import TemporalConfig
from svomflow.tasks.xband.inputs import EVENT_CALIBRATION
from svomflow.tasks.xband.intervals import CommonIntervals
from svomflow.tasks.xband.selection import per_instrument, times_in_band
from svomflow.tasks.xband.spectra import DetectorBackground, detector_background
from svomflow.tasks.xband.tables import primary, results_table

__all__ = ["BandPair", "HardnessLag", "band_pairs", "hardness_lag"]

Band = tuple[float, float]
Interval = tuple[float, float]


@dataclass(frozen=True)
class BandPair:
    """A soft and a hard band (keV), each of one instrument (definition names)."""

    code: str
    soft_instrument: str
    soft: Band
    hard_instrument: str
    hard: Band


@dataclass
class HardnessLag:
    """Hardness ratio and lag rows (JSON-ready) per product code, and the products."""

    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    products: list[Product] = field(default_factory=list)


def band_pairs(
    instruments: Mapping[str, InstrumentEvents], config: TemporalConfig
) -> list[BandPair]:
    """List the soft/hard band pairs: each instrument's, then ECLAIRs soft against GRM hard."""
    pairs = []
    for name, ev in instruments.items():
        given = per_instrument(config, "bands_kev", name)
        assert ev.definition is not None
        bands = given if given is not None else ev.definition.get("bands_kev.hardness")
        soft, hard = _band(bands[0]), _band(bands[1])
        pairs.append(BandPair(instrument_code(name), name, soft, name, hard))
    if "eclairs" in instruments and "grm" in instruments:
        s, h = config.joint_bands_kev
        pairs.append(BandPair(JOINT_CODE, "eclairs", _band(s), "grm", _band(h)))
    return pairs


def _band(band: Sequence[float]) -> Band:
    return (float(band[0]), float(band[1]))


def _band_series(
    ev: InstrumentEvents, band: Band, off: Sequence[Interval], main: Interval, dt: float
) -> tuple[np.ndarray, np.ndarray, DetectorBackground, np.ndarray]:
    bkg = detector_background(ev, None, off, band)
    n = max(int(np.floor((main[1] - main[0]) / dt)), 1)
    edges = main[0] + dt * np.arange(n + 1)
    t = times_in_band(ev, band)
    counts = np.histogram(t, edges)[0].astype(float)
    mu = bkg.model.counts(BinnedCounts(edges[:-1], edges[1:], counts, np.diff(edges)))[0]
    return counts, mu, bkg, t


def _pair(
    p: BandPair,
    instruments: Mapping[str, InstrumentEvents],
    intervals: CommonIntervals,
    config: TemporalConfig,
    seed: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    es, eh = instruments[p.soft_instrument], instruments[p.hard_instrument]
    main, off = intervals.main, intervals.off_source
    sb, hb = p.soft, p.hard
    cs, ms, bs, ts = _band_series(es, sb, off, main, config.lag_bin_s)
    ch, mh, bh, th = _band_series(eh, hb, off, main, config.lag_bin_s)
    nh = net_counts(th, eh.events.gti, bh.model, main)
    ns = net_counts(ts, es.events.gti, bs.model, main)
    hr = hardness_ratio(nh, ns, hard_band_kev=hb, soft_band_kev=sb, interval=main)
    bands = {"hard_lo": hb[0], "hard_hi": hb[1], "soft_lo": sb[0], "soft_hi": sb[1]}
    who = {"hard_instrument": p.hard_instrument, "soft_instrument": p.soft_instrument}
    hrow = {
        "ratio": hr.ratio,
        "ratio_err": hr.ratio_err,
        **bands,
        "hard_net": nh.net,
        "hard_net_err": nh.net_err,
        "soft_net": ns.net,
        "soft_net_err": ns.net_err,
        "tstart": main[0],
        "tstop": main[1],
        **who,
        "reliable": hr.reliable,
    }
    lag = time_lag(
        ch,
        cs,
        mh,
        ms,
        config.lag_bin_s,
        LagConfig(max_lag_s=config.max_lag_s, n_sims=config.lag_sims, seed=seed),
    )
    lrow = {
        "lag": lag.lag,
        "lag_err": lag.lag_err,
        "ccf_peak": lag.ccf_peak,
        "dt": lag.dt,
        **bands,
        "tstart": main[0],
        "tstop": main[1],
        **who,
    }
    return hrow, lrow


@step(name="hardness-lag", config=TemporalConfig, outputs=("HR", "LAG"))
def hardness_lag(
    instruments: Mapping[str, InstrumentEvents],
    intervals: CommonIntervals,
    t0: float,
    seed: int,
    *,
    config: TemporalConfig,
) -> HardnessLag:
    """Measure the hardness ratios and lags of the main interval (HR and LAG products)."""
    out = HardnessLag()
    kev = {k: "keV" for k in ("hard_lo", "hard_hi", "soft_lo", "soft_hi")}
    tz = ("TIMEZERO", t0, "mission time of T0 (s)")
    for p in band_pairs(instruments, config):
        hrow, lrow = _pair(p, instruments, intervals, config, seed)
        out.rows[p.code] = {"hr": hrow, "lag": lrow}
        hr_tab = results_table(
            [hrow],
            extname="HARDNESS",
            units={
                **kev,
                "hard_net": "count",
                "hard_net_err": "count",
                "soft_net": "count",
                "soft_net_err": "count",
                "tstart": "s",
                "tstop": "s",
            },
            header=[tz],
        )
        lag_tab = results_table(
            [lrow],
            extname="LAG",
            units={**kev, "lag": "s", "lag_err": "s", "dt": "s", "tstart": "s", "tstop": "s"},
            header=[tz, ("LAGSIGN", "positive: soft lags hard", "")],
        )
        for code, tab in (("HR", hr_tab), ("LAG", lag_tab)):
            model = FitsModel.from_hdus([primary(None), tab])
            out.products.append(Product(code, p.code, model, calibration=EVENT_CALIBRATION))
    return out
