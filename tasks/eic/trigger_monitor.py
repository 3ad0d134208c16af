"""On-board trigger monitoring: the ground re-analysis of the rate stream vs the on-board log.

The ground re-runs the count-rate trigger on the same data (the on-board rate stream: counts
per clock tick in disjoint energy sub-bands) with the same threshold table (CALDB
``TRIGTHR`` valid at the stream's start) through the project's rate trigger,
:func:`svomflow.tasks.timing.trigger.rate_trigger` (Li & Ma significance of each window over
the background just before it). That search reports the best window of each (band,
timescale) of its input, so the day is cut into chunks (``chunk_s`` of window starts each,
with the background window and the longest timescale around them) and every row at or
above its own threshold is a detection. Detections closer than ``merge_s`` are one trigger
(the on-board software also holds off after a trigger).

Each on-board trigger (reported time = the end of its window plus the downlink/processing
latency) is matched one-to-one with the nearest ground trigger whose span
``[first window start - match_before_s, last window end + match_after_s]`` contains it.
The outcome lists, for the day: ``MATCHED`` triggers, ``MISSED`` ones (the ground finds
them, the on-board log does not have them), ``SPURIOUS`` ones (on board only) and
``KNOWN`` ones (on board, attributed to a source of the on-board catalogue ``OBSRCCAT``
in force: expected, not bursts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import CalibrationOverride, StepConfig
from svomflow.errors import InputDataError
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.eic_saa_files import (
    OnboardCatalogue,
    TriggerLog,
    TriggerStream,
    TriggerThresholds,
)
from svomflow.tasks.step import step
from svomflow.tasks.timing.trigger import TriggerConfig, rate_trigger

__all__ = [
    "ComparisonRow",
    "GroundTrigger",
    "TriggerComparison",
    "TriggerMonitorConfig",
    "compare_triggers",
    "ground_triggers",
    "monitor_triggers",
    "thresholds_from_instrument",
]

PRODUCT_INSTRUMENT = "ECL"


class TriggerMonitorConfig(StepConfig):
    """Step ``trigger-monitor``: chunking of the ground re-analysis and matching tolerances."""

    chunk_s: float = Field(
        60.0, gt=0, description="[s] window starts searched per rate-trigger call"
    )
    merge_s: float = Field(
        60.0, gt=0, description="[s] detections closer than this are one trigger (hold-off)"
    )
    match_before_s: float = Field(
        2.0, ge=0, description="[s] an on-board time may precede the ground window by this"
    )
    match_after_s: float = Field(
        30.0, ge=0, description="[s] latency tolerated after the end of the ground window"
    )
    override_trigthr: CalibrationOverride = Field(
        None, description="TRIGTHR file used instead of the CALDB's"
    )
    override_obsrccat: CalibrationOverride = Field(
        None, description="OBSRCCAT file used instead of the CALDB's"
    )


@dataclass(frozen=True)
class GroundTrigger:
    """A trigger of the ground re-analysis: first window start, last window end, best row.

    ``first_end`` is the earliest end of a window over threshold (when the trigger was
    known); ``snr`` and ``threshold`` are those of the detection with the highest S/N over
    its threshold; ``band_kev`` and ``timescale_s`` its criterion.
    """

    start: float
    end: float
    first_end: float
    band_kev: tuple[float, float]
    timescale_s: float
    snr: float
    threshold: float


def _chunk_events(
    stream: TriggerStream, i0: int, i1: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Events of bins ``i0:i1``: each count at its bin's centre, at its sub-band's middle energy.

    The rate trigger bins events on the same clock, so it sees exactly the stream's counts.
    """
    res = stream.resolution_s
    centres = stream.t_start + (np.arange(i0, i1) + 0.5) * res
    edges = np.asarray(stream.band_edges_kev, float)
    times, energies = [], []
    for k in range(len(edges) - 1):
        c = stream.counts[i0:i1, k]
        times.append(np.repeat(centres, c))
        energies.append(np.full(int(c.sum()), 0.5 * (edges[k] + edges[k + 1])))
    t = np.concatenate(times)
    order = np.argsort(t, kind="stable")
    return t[order], np.concatenate(energies)[order]


def _chunk_gti(stream: TriggerStream, a: float, b: float) -> NDArray[np.float64]:
    """GTIs within ``[a, b)`` snapped inwards to the stream's clock."""
    res = stream.resolution_s
    g = np.asarray(stream.gti, float).reshape(-1, 2)
    lo = np.maximum(g[:, 0], a)
    hi = np.minimum(g[:, 1], b)
    lo = stream.t_start + np.ceil((lo - stream.t_start) / res - 1e-6) * res
    hi = stream.t_start + np.floor((hi - stream.t_start) / res + 1e-6) * res
    keep = hi - lo >= res
    return np.column_stack([lo[keep], hi[keep]])


def ground_triggers(
    stream: TriggerStream, thresholds: TriggerThresholds, config: TriggerMonitorConfig
) -> list[GroundTrigger]:
    """Re-run the rate trigger over the stream with the on-board thresholds (see module doc)."""
    bands = sorted({r.band_kev for r in thresholds.rows})
    scales = sorted({r.timescale_s for r in thresholds.rows})
    lead = thresholds.background_window_s + thresholds.gap_s
    cfg = TriggerConfig(
        timescales_s=scales,
        bands_kev=bands,
        resolution_s=stream.resolution_s,
        bkg_s=thresholds.background_window_s,
        gap_s=thresholds.gap_s,
        threshold_sigma=min(r.threshold_sigma for r in thresholds.rows),
    )
    res = stream.resolution_s
    hits: list[GroundTrigger] = []
    first = stream.t_start + lead
    n_chunks = max(int(np.ceil((stream.t_stop - first) / config.chunk_s)), 0)
    for k in range(n_chunks):
        a = first + k * config.chunk_s - lead
        b = min(first + (k + 1) * config.chunk_s + max(scales), stream.t_stop)
        gti = _chunk_gti(stream, a, b)
        if gti.size == 0:
            continue
        i0 = round((float(gti[0, 0]) - stream.t_start) / res)
        i1 = round((float(gti[-1, 1]) - stream.t_start) / res)
        t, e = _chunk_events(stream, i0, i1)
        try:
            result = rate_trigger(t, e, gti, cfg)
        except InputDataError:
            continue  # no window with its background in good time (an SAA passage)
        for row in result.table:
            thr = thresholds.threshold(row.band_kev, row.timescale_s)
            if thr is not None and row.significance >= thr:
                hits.append(
                    GroundTrigger(
                        row.start, row.start + row.timescale_s, row.start + row.timescale_s,
                        row.band_kev, row.timescale_s, row.significance, thr,
                    )
                )  # fmt: skip
    return _merge(hits, config.merge_s)


def _merge(hits: list[GroundTrigger], merge_s: float) -> list[GroundTrigger]:
    """Join detections whose starts are within ``merge_s`` of the previous one (one trigger)."""
    out: list[GroundTrigger] = []
    group: list[GroundTrigger] = []
    for h in sorted(hits, key=lambda h: h.start):
        if group and h.start - group[-1].start > merge_s:
            out.append(_join(group))
            group = []
        group.append(h)
    if group:
        out.append(_join(group))
    return out


def _join(group: list[GroundTrigger]) -> GroundTrigger:
    best = max(group, key=lambda h: h.snr / h.threshold)
    return GroundTrigger(
        start=min(h.start for h in group),
        end=max(h.end for h in group),
        first_end=min(h.first_end for h in group),
        band_kev=best.band_kev,
        timescale_s=best.timescale_s,
        snr=best.snr,
        threshold=best.threshold,
    )


@dataclass(frozen=True)
class ComparisonRow:
    """One line of the comparison: status, times, criterion, S/N and on-board id.

    ``time`` is the ground trigger's first window start (or the on-board time for an
    on-board-only trigger); ``latency_s`` the on-board reported time minus the earliest end
    of a ground window over threshold (NaN when one side is missing).
    """

    status: str
    time: float
    onboard_time: float
    latency_s: float
    band_kev: tuple[float, float]
    timescale_s: float
    snr: float
    threshold: float
    onboard_id: int
    source: str


@dataclass(frozen=True)
class TriggerComparison:
    """The day's comparison and its product (TRIGCMP with its plot)."""

    rows: tuple[ComparisonRow, ...]
    ground: tuple[GroundTrigger, ...]
    thresholds_label: str
    catalogue_label: str
    products: tuple[Product, ...] = ()

    def of(self, status: str) -> list[ComparisonRow]:
        """Return the rows of one status."""
        return [r for r in self.rows if r.status == status]


def compare_triggers(
    onboard: TriggerLog,
    ground: list[GroundTrigger],
    thresholds: TriggerThresholds,
    catalogue: OnboardCatalogue,
    config: TriggerMonitorConfig,
) -> list[ComparisonRow]:
    """Match on-board triggers with ground triggers one to one (nearest first); label the rest."""
    known = catalogue.names
    pairs: list[tuple[float, int, int]] = []
    for i, ob in enumerate(onboard.triggers):
        for j, g in enumerate(ground):
            if g.start - config.match_before_s <= ob.time <= g.end + config.match_after_s:
                pairs.append((abs(ob.time - g.first_end), i, j))
    used_ob: set[int] = set()
    used_g: set[int] = set()
    rows: list[ComparisonRow] = []
    for _, i, j in sorted(pairs):
        if i in used_ob or j in used_g:
            continue
        used_ob.add(i)
        used_g.add(j)
        ob, g = onboard.triggers[i], ground[j]
        status = "KNOWN" if ob.source and ob.source in known else "MATCHED"
        rows.append(
            ComparisonRow(
                status, g.start, ob.time, ob.time - g.first_end, g.band_kev,
                g.timescale_s, g.snr, g.threshold, ob.trigger_id, ob.source,
            )
        )  # fmt: skip
    for j, g in enumerate(ground):
        if j not in used_g:
            rows.append(
                ComparisonRow(
                    "MISSED", g.start, float("nan"), float("nan"), g.band_kev, g.timescale_s,
                    g.snr, g.threshold, -1, "",
                )
            )  # fmt: skip
    for i, ob in enumerate(onboard.triggers):
        if i not in used_ob:
            thr = thresholds.threshold(ob.band_kev, ob.timescale_s)
            status = "KNOWN" if ob.source and ob.source in known else "SPURIOUS"
            rows.append(
                ComparisonRow(
                    status, ob.time, ob.time, float("nan"), ob.band_kev, ob.timescale_s, ob.snr,
                    float("nan") if thr is None else thr, ob.trigger_id, ob.source,
                )
            )  # fmt: skip
    rows.sort(key=lambda r: r.time)
    return rows


def _comparison_hdus(
    rows: list[ComparisonRow], thresholds: TriggerThresholds, catalogue: OnboardCatalogue
) -> list[object]:
    from astropy.io import fits

    def col(name: str, fmt: str, values: list[object], unit: str | None = None) -> fits.Column:
        return fits.Column(name, fmt, unit=unit, array=np.array(values))

    cols = [
        col("STATUS", "8A", [r.status for r in rows]),
        col("TIME", "D", [r.time for r in rows], "s"),
        col("OBTIME", "D", [r.onboard_time for r in rows], "s"),
        col("LATENCY", "D", [r.latency_s for r in rows], "s"),
        col("E_MIN", "D", [r.band_kev[0] for r in rows], "keV"),
        col("E_MAX", "D", [r.band_kev[1] for r in rows], "keV"),
        col("TIMESCAL", "D", [r.timescale_s for r in rows], "s"),
        col("SNR", "D", [r.snr for r in rows]),
        col("THRESH", "D", [r.threshold for r in rows]),
        col("OBTRIGID", "J", [r.onboard_id for r in rows]),
        col("SOURCE", "24A", [r.source for r in rows]),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="TRIGCMP")
    counts = {
        s: sum(r.status == s for r in rows) for s in ("MATCHED", "MISSED", "SPURIOUS", "KNOWN")
    }
    for key, value, comment in (
        ("TRIGTHR", thresholds.label or "unnamed", "threshold table file used"),
        ("OBSRCCAT", catalogue.label or "unnamed", "on-board catalogue used"),
        ("NMATCH", counts["MATCHED"], "matched triggers"),
        ("NMISSED", counts["MISSED"], "triggers missed on board (ground only)"),
        ("NSPUR", counts["SPURIOUS"], "spurious on-board triggers (on board only)"),
        ("NKNOWN", counts["KNOWN"], "on-board triggers on catalogue sources"),
    ):
        hdu.header[key] = (value, comment)
    return [fits.PrimaryHDU(), hdu]


@step(
    name="trigger-monitor",
    config=TriggerMonitorConfig,
    calibration=("TRIGTHR", "OBSRCCAT"),
    outputs=("TRIGCMP",),
)
def monitor_triggers(
    stream: TriggerStream,
    onboard: TriggerLog,
    *,
    config: TriggerMonitorConfig,
    calibration: CalibrationSet,
) -> TriggerComparison:
    """Re-analyse the stream with the on-board thresholds and compare with the on-board log."""
    thresholds: TriggerThresholds = calibration.get("eclairs", "TRIGTHR")
    catalogue: OnboardCatalogue = calibration.get("eclairs", "OBSRCCAT")
    ground = ground_triggers(stream, thresholds, config)
    rows = compare_triggers(onboard, ground, thresholds, catalogue, config)
    model = FitsModel.from_hdus(_comparison_hdus(rows, thresholds, catalogue))
    return TriggerComparison(
        rows=tuple(rows),
        ground=tuple(ground),
        thresholds_label=thresholds.label,
        catalogue_label=catalogue.label,
        products=(Product("TRIGCMP", PRODUCT_INSTRUMENT, model),),
    )


def thresholds_from_instrument(name: str = "eclairs", label: str = "") -> TriggerThresholds:
    """Return the threshold table of an instrument file: every trigger band x timescale.

    The bands are ``bands_kev.trigger``, the timescales, threshold, background window and gap
    ``rate_trigger.*`` (the numbers the simulator's on-board trigger uses).
    """
    from svomflow.config import load_instrument
    from svomflow.products.eic_saa_files import ThresholdRow

    inst = load_instrument(name)
    thr = float(inst.get("rate_trigger.snr_threshold"))
    rows = tuple(
        ThresholdRow((float(lo), float(hi)), float(ts), thr)
        for lo, hi in inst.get("bands_kev.trigger")
        for ts in inst.get("rate_trigger.timescales_s")
    )
    return TriggerThresholds(
        rows,
        float(inst.get("rate_trigger.background_window_s")),
        float(inst.get("rate_trigger.gap_s")),
        label or f"{name}-instrument-file",
    )
