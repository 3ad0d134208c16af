"""An on-board rate stream with bursts of known peak rate and duration, and its trigger log.

* :func:`simulate_stream`: counts on the on-board clock (10 ms) in the disjoint sub-bands of
  the trigger bands (4-20, 20-50, 50-120 keV) over hours to a day: a background per
  sub-band (assumption: 1500, 800 and 400 counts/s, about the plane's 2700/s of
  ``config/instruments/eclairs.yaml``) with an orbital modulation, SAA passages of the
  orbit as gaps (detectors off), and top-hat bursts of known peak rate (counts/s on the
  plane, 4-120 keV; split over the sub-bands by ``burst_fractions``) and duration.
* :func:`onboard_log`: the "on-board" trigger log. Its own trigger (not the ground's): each
  (band, timescale) of the threshold table is searched on a clock of a quarter of the
  timescale, windows of four ticks against the background window before them (Li & Ma),
  like :func:`svomflow.simulation.eclairs.onboard_rate_trigger`; the first window over its
  threshold is the trigger, then the software holds off. Then its imperfections, kept as
  truth: a latency added to every reported time, ``n_missed`` real triggers dropped from
  the log, ``n_spurious`` triggers added where there is nothing. A trigger inside a burst
  of a catalogue source is attributed to it.
* :func:`burst_grid`, :func:`default_thresholds`, :func:`default_catalogue`,
  :func:`efficiency_table`: the bench (trigger efficiency vs peak rate and duration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from svomflow.products.eic_saa_files import (
    KnownSource,
    OnboardCatalogue,
    OnboardTrigger,
    ThresholdRow,
    TriggerLog,
    TriggerStream,
    TriggerThresholds,
)
from svomflow.simulation.orbit import Orbit, load_bright_sources, load_orbit, saa_intervals
from svomflow.tasks.eic.trigger_monitor import thresholds_from_instrument
from svomflow.tasks.timing.trigger import li_ma

__all__ = [
    "SUB_BAND_EDGES_KEV",
    "InjectedBurst",
    "OnboardTruth",
    "burst_grid",
    "default_catalogue",
    "default_thresholds",
    "efficiency_bench",
    "efficiency_table",
    "onboard_log",
    "run_onboard_trigger_sim",
    "simulate_stream",
    "write_day",
]

SUB_BAND_EDGES_KEV = (4.0, 20.0, 50.0, 120.0)
#: Background per sub-band (counts/s): an assumption, ~2700/s over the plane in total.
BACKGROUND_RATES = (1500.0, 800.0, 400.0)
#: Share of a burst's counts per sub-band (an assumption: a typical long GRB, Epeak ~100 keV).
BURST_FRACTIONS = (0.45, 0.35, 0.20)


@dataclass(frozen=True)
class InjectedBurst:
    """A top-hat burst: start (s), duration (s), peak rate (counts/s, 4-120 keV), source name."""

    start: float
    duration_s: float
    peak_rate: float
    source: str = ""

    @property
    def stop(self) -> float:
        """Return the end of the burst."""
        return self.start + self.duration_s


@dataclass(frozen=True)
class OnboardTruth:
    """What the simulated on-board log got wrong, on purpose.

    ``missed`` are the true trigger times (window ends) dropped from the log; ``spurious``
    the log ids of triggers added without a counterpart; ``latency_s`` the delay added to
    each logged trigger, by id; ``true_times`` the true window end of each real trigger.
    """

    missed: tuple[float, ...]
    spurious: tuple[int, ...]
    latency_s: dict[int, float] = field(default_factory=dict)
    true_times: dict[int, float] = field(default_factory=dict)


def default_thresholds(label: str = "TT-sim-1") -> TriggerThresholds:
    """Return the threshold table of the instrument file (every trigger band x timescale)."""
    return thresholds_from_instrument("eclairs", label)


def default_catalogue(label: str = "CAT-sim-1") -> OnboardCatalogue:
    """Return an on-board catalogue of the packaged bright sources."""
    return OnboardCatalogue(
        tuple(KnownSource(s.name, s.ra_deg, s.dec_deg) for s in load_bright_sources()), label
    )


def burst_grid(
    peak_rates: Sequence[float],
    durations_s: Sequence[float],
    *,
    repeats: int,
    t_start: float,
    spacing_s: float = 240.0,
    seed: int = 0,
) -> list[InjectedBurst]:
    """Return ``repeats`` bursts of every (peak rate, duration), shuffled, ``spacing_s`` apart.

    Each burst starts at a random offset within its slot, so bursts never overlap.
    """
    rng = np.random.default_rng(seed)
    combos = [(r, d) for r in peak_rates for d in durations_s for _ in range(repeats)]
    order = rng.permutation(len(combos))
    out = []
    for slot, k in enumerate(order):
        r, d = combos[int(k)]
        jitter = rng.uniform(0.0, max(spacing_s - d - 60.0, 0.0))
        out.append(InjectedBurst(t_start + slot * spacing_s + 60.0 + jitter, float(d), float(r)))
    return out


def simulate_stream(
    *,
    duration_s: float,
    seed: int,
    bursts: Sequence[InjectedBurst] = (),
    t_start: float = 0.0,
    resolution_s: float = 0.01,
    background_rates: Sequence[float] = BACKGROUND_RATES,
    burst_fractions: Sequence[float] = BURST_FRACTIONS,
    modulation: float = 0.1,
    saa: bool = True,
    orbit: Orbit | None = None,
) -> TriggerStream:
    """Simulate the on-board rate stream (see the module docstring)."""
    orbit = orbit or load_orbit()
    rng = np.random.default_rng(seed)
    n = round(duration_s / resolution_s)
    k = len(SUB_BAND_EDGES_KEV) - 1
    if len(background_rates) != k or len(burst_fractions) != k:
        raise ValueError(f"background_rates and burst_fractions need {k} values")
    gaps = saa_intervals(t_start, t_start + duration_s, orbit=orbit) if saa else np.empty((0, 2))
    live = np.ones(n, dtype=bool)
    for a, b in gaps:
        live[
            max(int(np.floor((a - t_start) / resolution_s)), 0) : int(
                np.ceil((b - t_start) / resolution_s)
            )
        ] = False
    counts = np.zeros((n, k), dtype=np.int32)
    block = 1_000_000  # bins per block: bounded memory over a day
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        t = t_start + (np.arange(i0, i1) + 0.5) * resolution_s
        mod = 1.0 + modulation * np.cos(2.0 * np.pi * t / orbit.period_s)
        src = np.zeros(i1 - i0)
        lo_t = t_start + i0 * resolution_s
        for b in bursts:
            if b.stop <= lo_t or b.start >= lo_t + (i1 - i0) * resolution_s:
                continue
            edges_lo = t - 0.5 * resolution_s
            overlap = np.clip(
                np.minimum(edges_lo + resolution_s, b.stop) - np.maximum(edges_lo, b.start), 0, None
            )
            src += b.peak_rate * overlap / resolution_s
        for j in range(k):
            mu = (background_rates[j] * mod + burst_fractions[j] * src) * resolution_s
            counts[i0:i1, j] = rng.poisson(mu * live[i0:i1])
    gti_mask = live
    d = np.diff(np.concatenate([[0], gti_mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    gti = np.column_stack([t_start + starts * resolution_s, t_start + stops * resolution_s])
    return TriggerStream(t_start, resolution_s, SUB_BAND_EDGES_KEV, counts, gti.reshape(-1, 2))


def _onboard_hits(
    stream: TriggerStream, thresholds: TriggerThresholds
) -> list[tuple[float, ThresholdRow, float]]:
    """Every window over its threshold: (window end, criterion, S/N), by criterion."""
    res = stream.resolution_s
    live = np.zeros(stream.n_bins)
    for a, b in stream.gti:
        live[round((a - stream.t_start) / res) : round((b - stream.t_start) / res)] = 1.0
    out: list[tuple[float, ThresholdRow, float]] = []
    for row in thresholds.rows:
        c = stream.band_counts(row.band_kev).astype(np.float64)
        tick = max(round(row.timescale_s / 4.0 / res), 1)
        nw = max(round(row.timescale_s / (tick * res)), 1)
        m = stream.n_bins // tick
        cc = c[: m * tick].reshape(m, tick).sum(axis=1)
        ll = live[: m * tick].reshape(m, tick).sum(axis=1) * res
        csum = np.concatenate([[0.0], np.cumsum(cc)])
        lsum = np.concatenate([[0.0], np.cumsum(ll)])
        step = tick * res
        nb = max(round(thresholds.background_window_s / step), 1)
        ng = round(thresholds.gap_s / step)
        end = np.arange(nw + ng + nb, m + 1)
        n_src = csum[end] - csum[end - nw]
        t_src = lsum[end] - lsum[end - nw]
        b_end = end - nw - ng
        n_bkg = csum[b_end] - csum[b_end - nb]
        t_bkg = lsum[b_end] - lsum[b_end - nb]
        valid = (t_src > 0.999 * nw * step) & (t_bkg > 0.999 * nb * step) & (n_bkg > 0)
        alpha = np.where(valid, t_src / np.where(valid, t_bkg, 1.0), 1.0)
        snr = np.where(valid, li_ma(n_src, n_bkg, alpha), -np.inf)
        for i in np.flatnonzero(snr >= row.threshold_sigma):
            out.append((stream.t_start + float(end[i]) * step, row, float(snr[i])))
    return out


def onboard_log(
    stream: TriggerStream,
    thresholds: TriggerThresholds,
    *,
    seed: int,
    bursts: Sequence[InjectedBurst] = (),
    holdoff_s: float = 60.0,
    latency_s: tuple[float, float] = (0.5, 8.0),
    n_missed: int = 0,
    n_spurious: int = 0,
) -> tuple[TriggerLog, OnboardTruth]:
    """Return the on-board trigger log of a stream and what it got wrong (see module doc)."""
    rng = np.random.default_rng(seed)
    hits = sorted(_onboard_hits(stream, thresholds), key=lambda h: (h[0], -h[2]))
    accepted: list[tuple[float, ThresholdRow, float]] = []
    for h in hits:
        if not accepted or h[0] >= accepted[-1][0] + holdoff_s:
            accepted.append(h)

    def source_at(t: float) -> str:
        for b in bursts:
            if b.source and b.start <= t <= b.stop + 30.0:
                return b.source
        return ""

    real = [(t, row, snr, source_at(t)) for t, row, snr in accepted]
    droppable = [i for i, r in enumerate(real) if not r[3]]
    drop = (
        set(rng.choice(droppable, size=min(n_missed, len(droppable)), replace=False).tolist())
        if droppable
        else set()
    )
    missed = tuple(real[i][0] for i in sorted(drop))
    kept = [r for i, r in enumerate(real) if i not in drop]
    # spurious triggers: in good time, far from every real one (and from each other)
    fakes: list[tuple[float, ThresholdRow, float, str]] = []
    taken = [r[0] for r in real]
    tries = 0
    while len(fakes) < n_spurious and tries < 10_000:
        tries += 1
        g = stream.gti[rng.integers(len(stream.gti))]
        t = float(rng.uniform(g[0] + 60.0, g[1])) if g[1] - g[0] > 120.0 else None
        if t is None or any(abs(t - x) < 3 * holdoff_s for x in taken):
            continue
        row = thresholds.rows[int(rng.integers(len(thresholds.rows)))]
        fakes.append((t, row, row.threshold_sigma * float(rng.uniform(1.05, 1.5)), ""))
        taken.append(t)
    entries = sorted([(*r, False) for r in kept] + [(*f, True) for f in fakes], key=lambda e: e[0])
    triggers, spurious, lat, true_t = [], [], {}, {}
    for tid, (t, row, snr, src, fake) in enumerate(entries, start=1):
        delay = float(rng.uniform(*latency_s))
        triggers.append(OnboardTrigger(tid, t + delay, row.band_kev, row.timescale_s, snr, src))
        lat[tid] = delay
        if fake:
            spurious.append(tid)
        else:
            true_t[tid] = t
    return TriggerLog(tuple(triggers), stream.mjdref), OnboardTruth(
        missed, tuple(spurious), lat, true_t
    )


def efficiency_table(
    bursts: Sequence[InjectedBurst], detected_times: Sequence[tuple[float, float]]
) -> list[dict[str, float]]:
    """Return the detected fraction per (peak rate, duration): a trigger span overlapping the burst.

    ``detected_times`` are (start, end) spans of triggers (ground windows, or on-board
    reported times as zero-length spans). Each row: peak_rate, duration_s, n, detected,
    efficiency and its binomial standard error.
    """
    spans = np.asarray(detected_times, float).reshape(-1, 2)
    keyed: dict[tuple[float, float], list[bool]] = {}
    for b in bursts:
        hit = bool(np.any((spans[:, 1] >= b.start) & (spans[:, 0] <= b.stop + 10.0)))
        keyed.setdefault((b.peak_rate, b.duration_s), []).append(hit)
    rows = []
    for (rate, dur), hits in sorted(keyed.items()):
        n, k = len(hits), int(sum(hits))
        p = k / n
        rows.append(
            {
                "peak_rate": rate,
                "duration_s": dur,
                "n": float(n),
                "detected": float(k),
                "efficiency": p,
                "error": float(np.sqrt(max(p * (1 - p), 1.0 / n) / n)),
            }
        )
    return rows


def efficiency_bench(
    peak_rates: Sequence[float] = (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0),
    durations_s: Sequence[float] = (0.1, 1.0, 10.0, 50.0),
    *,
    repeats: int = 10,
    seed: int = 2026,
) -> dict[str, list[dict[str, float]]]:
    """Measure the trigger efficiency vs peak rate and duration, ground and on board.

    Bursts of every (peak rate, duration) are injected ``repeats`` times into one stream
    (no SAA: the efficiency of the trigger itself, not the duty cycle); the ground
    re-analysis (:func:`svomflow.tasks.eic.trigger_monitor.ground_triggers`) and the
    simulated on-board trigger (without injected imperfections) are run on it with the
    instrument file's thresholds. Returns ``{"ground": rows, "onboard": rows}``
    (:func:`efficiency_table`).
    """
    from svomflow.tasks.eic.trigger_monitor import TriggerMonitorConfig, ground_triggers

    thresholds = default_thresholds()
    bursts = burst_grid(peak_rates, durations_s, repeats=repeats, t_start=0.0, seed=seed)
    stream = simulate_stream(
        duration_s=max(b.stop for b in bursts) + 300.0, seed=seed, bursts=bursts, saa=False
    )
    ground = ground_triggers(stream, thresholds, TriggerMonitorConfig())
    _, truth = onboard_log(stream, thresholds, seed=seed + 1, bursts=bursts)
    onboard = [(t - 0.01, t) for t in truth.true_times.values()]
    return {
        "ground": efficiency_table(bursts, [(g.start, g.end) for g in ground]),
        "onboard": efficiency_table(bursts, onboard),
    }


def write_day(
    out: Path, *, hours: float, seed: int, t_start: float, name: str, missed: int, spurious: int
) -> dict[str, Any]:
    """Write a simulated day: stream, on-board log, threshold table, catalogue and truth.

    Files: ``<name>_stream.fits`` (rate stream), ``<name>_triglog.fits`` (on-board log),
    ``thresholds.fits`` (TRIGTHR), ``catalogue.fits`` (OBSRCCAT) and ``<name>_truth.json``.
    Returns the truth with the file names.
    """
    import json

    from svomflow.products.eic_saa_files import (
        write_onboard_catalogue,
        write_trigger_log,
        write_trigger_stream,
        write_trigger_thresholds,
    )

    out.mkdir(parents=True, exist_ok=True)
    duration = hours * 3600.0
    n_slots = max(int((duration - 300.0) // 240.0), 1)
    rates = [300.0, 600.0, 1000.0, 3000.0]
    durs = [0.1, 1.0, 10.0, 30.0]
    bursts = burst_grid(rates, durs, repeats=1, t_start=t_start, seed=seed)[:n_slots]
    thresholds, catalogue = default_thresholds(), default_catalogue()
    stream = simulate_stream(duration_s=duration, seed=seed, bursts=bursts, t_start=t_start)
    log, truth = onboard_log(
        stream, thresholds, seed=seed + 1, bursts=bursts, n_missed=missed, n_spurious=spurious
    )
    files = {
        "stream": write_trigger_stream(out / f"{name}_stream.fits", stream).name,
        "triglog": write_trigger_log(out / f"{name}_triglog.fits", log).name,
        "TRIGTHR": write_trigger_thresholds(out / "thresholds.fits", thresholds).name,
        "OBSRCCAT": write_onboard_catalogue(out / "catalogue.fits", catalogue).name,
    }
    result: dict[str, Any] = {
        "bursts": [b.__dict__ for b in bursts],
        "missed_true_times": list(truth.missed),
        "spurious_ids": list(truth.spurious),
        "latency_s": truth.latency_s,
        "n_logged": len(log.triggers),
    }
    (out / f"{name}_truth.json").write_text(json.dumps(result, indent=2))
    return {**result, "files": files}


def run_onboard_trigger_sim(ctx: Any, rng: np.random.Generator) -> dict[str, Any]:
    """Scenario runner (``svomflow simulate eic_triggers``): a day of triggers and their tables.

    Options (``instrument_options.onboard_trigger``): ``hours`` (2), ``name`` (``day1``),
    ``missed`` (1) and ``spurious`` (2) imperfections of the on-board log. Stream start: the
    scenario's ``epoch_s``. Writes ``eic_triggers/`` (see :func:`write_day`) and registers
    the threshold table (``TRIGTHR``) and the catalogue (``OBSRCCAT``) in the home CALDB,
    as configuration in force from before the data, unless the run says not to.
    """
    from svomflow.config import load_instrument
    from svomflow.simulation.calibration import register_calibration

    opts = dict(ctx.options)
    out = Path(ctx.out_dir) / "eic_triggers"
    day = write_day(
        out,
        hours=float(opts.get("hours", 2.0)),
        seed=int(rng.integers(0, 2**31 - 1)),
        t_start=float(ctx.t0),
        name=str(opts.get("name", "day1")),
        missed=int(opts.get("missed", 1)),
        spurious=int(opts.get("spurious", 2)),
    )
    inst = load_instrument("eclairs")
    codes = {c: out / day["files"][c] for c in ("TRIGTHR", "OBSRCCAT")}
    registered = register_calibration(codes, inst) if ctx.register_calibration else {}
    return {"folder": "eic_triggers", **day, "registered": registered}


def _main(argv: Sequence[str] | None = None) -> None:
    """Write a simulated day: ``python -m svomflow.simulation.onboard_trigger OUTDIR``.

    Files: ``<name>_stream.fits`` (rate stream), ``<name>_triglog.fits`` (on-board log),
    ``thresholds.fits`` (TRIGTHR), ``catalogue.fits`` (OBSRCCAT) and ``<name>_truth.json``.
    """
    import argparse

    p = argparse.ArgumentParser(description=_main.__doc__)
    p.add_argument("out", help="output directory")
    p.add_argument("--hours", type=float, default=2.0, help="length of the stream (h)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--t-start", type=float, default=0.0, help="mission time of the start (s)")
    p.add_argument("--name", default="day", help="file name prefix")
    p.add_argument("--missed", type=int, default=1, help="real triggers dropped from the log")
    p.add_argument("--spurious", type=int, default=2, help="triggers added to the log")
    args = p.parse_args(argv)
    out = Path(args.out)
    day = write_day(
        out, hours=args.hours, seed=args.seed, t_start=args.t_start, name=args.name,
        missed=args.missed, spurious=args.spurious,
    )  # fmt: skip
    bursts, n_logged = day["bursts"], day["n_logged"]
    print(f"{out}: {len(bursts)} bursts, {n_logged} on-board triggers logged")


if __name__ == "__main__":
    _main()
