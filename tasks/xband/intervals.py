"""Timing per instrument (light curve, background, T90) and the common spectral intervals.

Per instrument, on its T90 band: :func:`svomflow.tasks.timing.durations_from_events` finds
the burst's extent on fine bins, chooses the light-curve bin width from it (extent / 64
within [1 ms, 1 s], a power-of-two multiple of 1 ms so that the instruments' clocks nest),
fits a Poisson polynomial background and measures T90/T50 (Koshut plateaus, simulated
errors). A burst found whose T90 cannot be measured (the tail reaches the end of the data:
no post-burst plateau) keeps its light curve and background, and its status says why.

Common intervals, shared by the two instruments so that joint fits use the same photons:

* ``main``: from the earliest to the latest edge of the instruments' source regions (the span
  each background fit excluded, burst plus margins), so the whole burst is in it and the
  fluence is the total one;
* ``pre_burst`` and ``post_burst``: the data before and after ``main`` (the background
  intervals of the spectra);
* ``peak``: the ``peak_timescale_s`` window of highest net S/N over the instruments
  (:func:`svomflow.tasks.timing.peak_flux`);
* ``resolved``: Bayesian blocks (or constant-S/N bins) of the summed light curve inside
  ``main``, merged left to right until each interval reaches ``min_snr``
  (net / sqrt(total)); at most ``max_resolved`` intervals (the weakest neighbours merge).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from svomflow.errors import InputDataError
from svomflow.products.burst_events import InstrumentEvents
from svomflow.tasks.timing import (
    BackgroundModel,
    BinnedCounts,
    Durations,
    PeakFluxConfig,
    adaptive_curve,
    bayesian_blocks_binned,
    durations,
    peak_flux,
)
from svomflow.tasks.timing.t90_status import T90Status, t90_status
from svomflow.tasks.xband.config import IntervalsConfig
from svomflow.tasks.xband.selection import default_band, per_instrument, source_file, times_in_band

__all__ = [
    "CommonIntervals",
    "InstrumentTiming",
    "common_intervals",
    "instrument_timing",
]


@dataclass
class InstrumentTiming:
    """Light curve, background model and durations of one instrument in its T90 band."""

    instrument: str
    band_kev: tuple[float, float]
    bins: BinnedCounts
    background: BackgroundModel
    durations: Durations | None
    flags: list[str] = field(default_factory=list)
    dt_s: float = 0.128
    status: T90Status = field(default_factory=lambda: T90Status("GOOD"))

    @property
    def excluded(self) -> tuple[float, float]:
        """The span the background fit left out (burst plus margins), s since t0."""
        iv = np.asarray(self.background.intervals, float).reshape(-1, 2)
        s0, s1 = self.background.source
        before = iv[iv[:, 1] <= s0 + 1e-9]
        after = iv[iv[:, 0] >= s1 - 1e-9]
        lo = float(before[:, 1].max()) if before.size else float(self.bins.lo[0])
        hi = float(after[:, 0].min()) if after.size else float(self.bins.hi[-1])
        return lo, hi


def instrument_timing(
    ev: InstrumentEvents, config: IntervalsConfig, band_kev: Sequence[float] | None = None
) -> InstrumentTiming:
    """Light curve on a clock chosen from the burst, background and T90/T50 of one instrument.

    Raises
    ------
    InputDataError
        No events in the band, or no burst found in it.
    """
    given = band_kev if band_kev is not None else per_instrument(config, "band_kev", ev.key)
    band = default_band(ev, given, "t90")
    t = times_in_band(ev, band)
    gti = ev.events.gti
    if t.size == 0:
        raise InputDataError(
            f"{source_file(ev)}: no events in the {band[0]:g}-{band[1]:g} keV band"
        )
    flags: list[str] = []
    dur = None
    why = None
    # the clock and background first (no burst: an error), then T90 on them; a T90 that
    # cannot be measured keeps the light curve and its background (t90_status says why)
    try:
        c = adaptive_curve(t, gti, config.background, config.binning)
    except InputDataError as exc:
        raise InputDataError(
            f"{source_file(ev)}: background of the {band[0]:g}-{band[1]:g} keV light curve: {exc}"
        ) from None
    bins, bkg, dt = c.bins, c.background, c.dt_s
    try:
        dur = durations(bins, bkg, config.duration, band_kev=band)
        flags.extend(dur.flags)
    except InputDataError as exc:
        why = str(exc)
    flags.extend(bkg.flags)
    g = np.asarray(gti, float).reshape(-1, 2)
    status = t90_status(bkg, (float(g[0, 0]), float(g[-1, 1])), dt, config.duration, why, flags)
    if not status.measured:
        dur = None  # a duration measured without a plateau is not reported (t90_status)
        flags.append(f"T90 not measured ({status.quality}): {status.reason}")
    return InstrumentTiming(ev.key, band, bins, bkg, dur, flags, float(dt), status)


@dataclass
class CommonIntervals:
    """Intervals in s since t0 shared by the instruments' spectra and fluxes."""

    pre_burst: tuple[float, float]
    post_burst: tuple[float, float] | None
    main: tuple[float, float]
    peak: tuple[float, float]
    resolved: list[tuple[float, float]]
    method: str
    peak_instrument: str

    @property
    def off_source(self) -> list[tuple[float, float]]:
        """The background intervals of the spectra and fluxes: pre- (and post-) burst."""
        return [self.pre_burst] + ([self.post_burst] if self.post_burst is not None else [])

    def fitted(self) -> list[tuple[str, tuple[float, float]]]:
        """Name the intervals whose spectra are fitted: main, peak, then the time-resolved ones."""
        resolved = [(f"resolved_{k + 1:02d}", iv) for k, iv in enumerate(self.resolved)]
        return [("main", self.main), ("peak", self.peak), *resolved]

    def summary(self) -> dict[str, Any]:
        """Return the intervals as JSON-ready lists (s since t0)."""
        return {
            "pre_burst": list(self.pre_burst),
            "post_burst": list(self.post_burst) if self.post_burst else None,
            "main": list(self.main),
            "peak": list(self.peak),
            "resolved": [list(x) for x in self.resolved],
            "method": self.method,
        }

    def all_named(self) -> list[tuple[str, tuple[float, float]]]:
        """Every interval with its name (``resolved_NN`` for the time-resolved ones)."""
        out = [("pre_burst", self.pre_burst), ("main", self.main), ("peak", self.peak)]
        if self.post_burst is not None:
            out.insert(1, ("post_burst", self.post_burst))
        out += [(f"resolved_{k + 1:02d}", iv) for k, iv in enumerate(self.resolved)]
        return out


def _net_bins(
    timings: Sequence[InstrumentTiming],
    events: Mapping[str, InstrumentEvents],
    main: tuple[float, float],
    dt: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum the counts and background on one clock over ``main`` (edges, counts, background)."""
    n = max(int(np.ceil((main[1] - main[0]) / dt - 1e-9)), 1)
    edges = main[0] + dt * np.arange(n + 1)
    edges[-1] = main[1]
    counts = np.zeros(n)
    bkg = np.zeros(n)
    for tm in timings:
        t = times_in_band(events[tm.instrument], tm.band_kev)
        counts += np.histogram(t, edges)[0]
        one = BinnedCounts(edges[:-1], edges[1:], np.zeros(n), np.diff(edges))
        bkg += tm.background.counts(one)[0]
    return edges, counts, bkg


def _merge_to_snr(
    edges: np.ndarray,
    counts: np.ndarray,
    bkg: np.ndarray,
    cut: np.ndarray,
    min_snr: float,
    max_n: int,
) -> list[tuple[float, float]]:
    """Merge the pieces between ``cut`` indices left to right until each reaches ``min_snr``."""
    csum = np.concatenate([[0.0], np.cumsum(counts)])
    bsum = np.concatenate([[0.0], np.cumsum(bkg)])

    def snr(i: int, j: int) -> float:
        n = csum[j] - csum[i]
        return (n - (bsum[j] - bsum[i])) / np.sqrt(max(n, 1.0))

    bounds = [int(cut[0])]
    for c in cut[1:]:
        if snr(bounds[-1], int(c)) >= min_snr:
            bounds.append(int(c))
    if bounds[-1] != int(cut[-1]):
        if len(bounds) > 1:
            bounds[-1] = int(cut[-1])  # the weak remainder joins the last interval
        else:
            bounds.append(int(cut[-1]))
    while len(bounds) - 1 > max_n:
        vals = [snr(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]
        k = int(np.argmin(vals))
        # merge the weakest interval with its weaker neighbour
        if k == 0:
            del bounds[1]
        elif k == len(vals) - 1:
            del bounds[-2]
        else:
            del bounds[k if vals[k - 1] < vals[k + 1] else k + 1]
    return [(float(edges[a]), float(edges[b])) for a, b in itertools.pairwise(bounds)]


def common_intervals(
    timings: Sequence[InstrumentTiming],
    events: Mapping[str, InstrumentEvents],
    config: IntervalsConfig,
) -> CommonIntervals:
    """Build the common intervals from the instruments' timing results.

    Raises
    ------
    InputDataError
        When no instrument is given or the burst leaves no pre-burst background.
    """
    if not timings:
        raise InputDataError("no instrument timing to build intervals from")
    lo = min(tm.excluded[0] for tm in timings)
    hi = max(tm.excluded[1] for tm in timings)
    start = max(float(events[tm.instrument].events.gti[0, 0]) for tm in timings)
    stop = min(float(events[tm.instrument].events.gti[-1, 1]) for tm in timings)
    main = (max(lo, start), min(hi, stop))
    if not main[1] > main[0]:
        raise InputDataError("empty main interval: the instruments' data do not overlap the burst")
    if main[0] - start <= 0:
        raise InputDataError("no pre-burst data: the burst starts at the beginning of the data")
    pre = (start, main[0])
    post = (main[1], stop) if stop > main[1] else None
    best = None
    for tm in timings:
        ev = events[tm.instrument]
        res = config.peak_timescale_s / 8.0
        try:
            pf = peak_flux(
                times_in_band(ev, tm.band_kev),
                ev.events.gti,
                tm.background,
                PeakFluxConfig(timescales_s=[config.peak_timescale_s], resolution_s=res),
                window=main,
            )[0]
        except InputDataError:
            continue
        score = pf.rate / pf.rate_err if pf.rate_err > 0 else 0.0
        if best is None or score > best[0]:
            best = (score, pf.start, tm.instrument)
    if best is None:
        raise InputDataError("no peak found in the main interval")
    peak = (float(best[1]), float(best[1] + config.peak_timescale_s))
    # the finest of the instruments' T90 clocks (power-of-two multiples of one width: nested)
    dt = min(tm.dt_s for tm in timings)
    edges, counts, bkg = _net_bins(timings, events, main, dt)
    if config.resolved_method == "blocks":
        be = bayesian_blocks_binned(edges, counts, ncp_prior=config.ncp_prior)
        cut = np.searchsorted(edges, be)
    else:
        cut = np.arange(edges.size)
    resolved = _merge_to_snr(edges, counts, bkg, cut, config.min_snr, config.max_resolved)
    return CommonIntervals(
        pre_burst=pre,
        post_burst=post,
        main=main,
        peak=peak,
        resolved=resolved,
        method=config.resolved_method,
        peak_instrument=str(best[2]),
    )
