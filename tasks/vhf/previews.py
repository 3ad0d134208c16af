"""PNG previews of the VHF products: light curves (T90, background, peak marked), sky image.

Each preview is a :class:`~svomflow.products.catalogue.FigureModel`: the data to draw and a
function that draws them on a :class:`matplotlib.figure.Figure` (no pyplot state, so several
threads of one flow run can draw), rendered when the catalogue publishes it. Drawing costs
what the reader sees, not what the analysis used: curves are binned for display (about
0.256 s, at most 800 bins) and each series is one artist (a step line, a one-sigma band,
one collection of gaps), with fixed margins instead of a layout engine. Most of what remains
is matplotlib's ticks and text: only the bottom panel has time ticks, one legend explains
the styles every panel shares (the other panels name their band in a corner) and titles sit
at a fixed place (about a third less CPU than shared axes and a legend per panel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FigureModel
from svomflow.tasks.coded_mask.imaging import MaskModel, make_shadowgram, sky_image
from svomflow.tasks.coded_mask.quick_position import QuickPosition
from svomflow.tasks.timing import BinnedCounts
from svomflow.tasks.vhf.curves import BandCurve, InstrumentTiming

__all__ = ["DisplayBins", "display_bins", "lightcurve_figure", "sky_image_figure"]

_DPI = 90
#: Width of a displayed bin (s) and most bins drawn per curve: a 8-inch panel at 90 dpi is
#: about 650 pixels wide, so finer bins add drawing time and no visible information.
_DISPLAY_DT_S = 0.256
_MAX_DISPLAY_BINS = 800
# fixed margins (inches): constrained layout measured every tick label of every panel and
# took more than half of the drawing time
_LEFT_IN, _RIGHT_IN, _TOP_IN, _BOTTOM_IN = 0.75, 0.15, 0.35, 0.5


@dataclass(frozen=True)
class DisplayBins:
    """Bins of a light curve as drawn: edges (s), rate and its 1-sigma error (counts/s).

    ``rate``/``error`` are NaN where a bin has no exposure; ``gaps`` holds the
    ``(start, stop)`` of each data gap between consecutive bins.
    """

    lo: np.ndarray
    hi: np.ndarray
    rate: np.ndarray
    error: np.ndarray
    gaps: np.ndarray


def display_bins(b: BinnedCounts, dt_s: float = _DISPLAY_DT_S) -> DisplayBins:
    """Sum consecutive bins to about ``dt_s`` (at most ``_MAX_DISPLAY_BINS``), never across a gap.

    Parameters
    ----------
    b : BinnedCounts
        The light curve (1-D counts).
    dt_s : float
        Wanted display bin width (s); the curve's own bins are kept when wider.

    Returns
    -------
    DisplayBins
        Display bins with the Poisson error ``sqrt(max(n, 1)) / exposure`` of each.
    """
    n = b.lo.size
    counts = np.asarray(b.counts, dtype=float)
    if n == 0:
        empty = np.zeros(0)
        return DisplayBins(empty, empty, empty, empty, np.zeros((0, 2)))
    dt = float(np.median(b.hi - b.lo))
    span = float(b.hi[-1] - b.lo[0])
    factor = max(1, round(dt_s / dt) if dt > 0 else 1, int(np.ceil(n / _MAX_DISPLAY_BINS)))
    if span > 0 and dt > 0:
        factor = max(factor, int(np.ceil(span / dt / _MAX_DISPLAY_BINS)))
    cont = b.contiguous
    # a group starts every ``factor`` bins of a contiguous run and at every gap
    run_start = np.flatnonzero(~cont)
    run_id = np.cumsum(~cont)
    first_of_run = np.concatenate([[0], run_start])[run_id]
    starts = np.flatnonzero(((np.arange(n) - first_of_run) % factor) == 0)
    stops = np.concatenate([starts[1:], [n]]) - 1
    c = np.add.reduceat(counts, starts)
    e = np.add.reduceat(np.asarray(b.exposure, dtype=float), starts)
    ok = e > 0
    safe = np.where(ok, e, 1.0)
    rate = np.where(ok, c / safe, np.nan)
    err = np.where(ok, np.sqrt(np.maximum(c, 1.0)) / safe, np.nan)
    gaps = np.column_stack([b.hi[run_start - 1], b.lo[run_start]]) if run_start.size else None
    return DisplayBins(
        lo=b.lo[starts],
        hi=b.hi[stops],
        rate=rate,
        error=err,
        gaps=gaps if gaps is not None else np.zeros((0, 2)),
    )


def _steps(d: DisplayBins) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return x, rate and error of the step outline (a NaN breaks the line at each gap)."""
    x = np.column_stack([d.lo, d.hi]).ravel()
    y = np.repeat(d.rate, 2)
    e = np.repeat(d.error, 2)
    brk = np.flatnonzero(d.lo[1:] > d.hi[:-1] + 1e-9) + 1
    if brk.size:
        at = 2 * brk
        x = np.insert(x, at, np.nan)
        y = np.insert(y, at, np.nan)
        e = np.insert(e, at, np.nan)
    return x, y, e


def _panel(ax: Any, c: BandCurve, label: str) -> None:
    """Draw one band: the rate as one step line, its error as one band, gaps, background.

    The artists carry legend labels; only the first panel shows a legend (the same styles
    in every panel), the others name their band in a corner.
    """
    d = display_bins(c.bins)
    x, y, e = _steps(d)
    ax.fill_between(x, y - e, y + e, color="0.75", lw=0, label="1-sigma error")
    ax.plot(x, y, color="k", lw=0.8, label=label)
    if c.background is not None:
        t = np.linspace(c.bins.lo[0], c.bins.hi[-1], 400)
        ax.plot(t, c.background.rate(t), color="tab:blue", lw=1.2, label="background model")
    if d.gaps.size:
        # matplotlib is imported where drawing needs it: importing the pipeline (checking a
        # configuration, a --no-prefect run before its first figure) does not pay for it
        from matplotlib.collections import PolyCollection

        # every gap in one artist, full height of the axes
        verts = [[(a, 0), (a, 1), (b, 1), (b, 0)] for a, b in d.gaps]
        ax.add_collection(
            PolyCollection(
                verts, facecolors="0.85", edgecolors="none", transform=ax.get_xaxis_transform()
            )
        )
        ax.plot([], [], color="0.85", lw=6, label="data gap")
    ax.set_ylabel("count/s")


def _fixed_margins(fig: Any, *, right_in: float = _RIGHT_IN, hspace: float = 0.08) -> None:
    """Place the axes with fixed margins in inches (no layout engine)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=_LEFT_IN / w,
        right=1 - right_in / w,
        top=1 - _TOP_IN / h,
        bottom=_BOTTOM_IN / h,
        hspace=hspace,
    )


def lightcurve_figure(timing: InstrumentTiming, *, title: str) -> FigureModel:
    """Light curve of the T90 band with T90/T50, background and peak; other bands below.

    Each band is binned for display to about 0.256 s (never finer than its own bins) and
    drawn as one step line with a one-sigma error band, so the drawing time does not grow
    with the number of analysis bins.
    """
    curves = [timing.curve] + [c for c in timing.light_curves if c.band_kev != timing.band_kev]
    d = timing.durations
    # the peak window shown: 1.024 s, else the longest timescale measured
    peak = next(
        (p for p in timing.peaks if abs(p.timescale_s - 1.024) < 1e-6 or p is timing.peaks[-1]),
        None,
    )

    # the time axis every panel shares (without shared axes: see draw)
    edges = [(float(c.bins.lo[0]), float(c.bins.hi[-1])) for c in curves if c.bins.lo.size]
    start = min((e[0] for e in edges), default=0.0)
    stop = max((e[1] for e in edges), default=1.0)
    margin = 0.02 * (stop - start)

    def draw(fig: Any) -> None:
        from matplotlib.ticker import NullLocator  # imported when drawing, see _panel

        _fixed_margins(fig)
        # one time axis, labelled on the bottom panel only: the panels above get no x
        # ticks at all (with shared axes every panel made, laid out and drew its own,
        # hidden, tick labels: most of the drawing time)
        axes = fig.subplots(len(curves), 1, squeeze=False)[:, 0]
        for ax, c in zip(axes, curves, strict=True):
            label = f"{c.band_kev[0]:g}-{c.band_kev[1]:g} keV"
            _panel(ax, c, label)
            ax.set_xlim(start - margin, stop + margin)
            if ax is not axes[-1]:
                ax.xaxis.set_major_locator(NullLocator())
            if ax is not axes[0]:
                # one legend explains the styles shared by every panel (the first one's);
                # the others name their band, which costs a text instead of a legend
                ax.text(0.99, 0.95, label, transform=ax.transAxes, ha="right", va="top",
                        fontsize=7, bbox={"fc": "w", "ec": "0.8", "pad": 2})  # fmt: skip
        ax0 = axes[0]
        if d is not None:
            ax0.axvspan(
                d.t90_start,
                d.t90_start + d.t90,
                color="tab:orange",
                alpha=0.2,
                label=f"T90 = {d.t90:.2f} ± {d.t90_err:.2f} s",
            )
            ax0.axvspan(
                d.t50_start,
                d.t50_start + d.t50,
                color="tab:red",
                alpha=0.2,
                label=f"T50 = {d.t50:.2f} s",
            )
        if peak is not None:
            ax0.axvspan(
                peak.start,
                peak.start + peak.timescale_s,
                color="tab:green",
                alpha=0.5,
                label=f"peak {peak.timescale_s:g} s: {peak.rate:.4g} count/s",
            )
        ax0.legend(loc="upper right", fontsize=7)
        ax0.set_title(title, y=1.0)  # a fixed place: no search for tick labels above the axes
        axes[-1].set_xlabel("time since T0 (s)")

    return FigureModel(draw=draw, size_in=(8.0, 2.2 + 1.6 * len(curves)), dpi=_DPI)


def sky_image_figure(data: InstrumentEvents, qp: QuickPosition, *, title: str) -> FigureModel:
    """Sky image (S/N) of the burst interval with the position and its 90 % circle."""
    defn = data.definition
    ev = data.events
    if defn is None or ev.pixel_y is None or ev.pixel_z is None:
        raise ValueError(f"{data.name}: no imaging data for a sky image")
    geom = MaskGeometry.from_instrument(defn)
    model = MaskModel.from_geometry(geom)
    sg = make_shadowgram(
        ev.time,
        ev.pixel_y,
        ev.pixel_z,
        ev.energy,
        shape=geom.shape,
        band_kev=qp.band_kev,
        interval=qp.interval,
        background_interval=qp.background_interval,
        gti=ev.gti,
        usable=~(qp.noisy_pixels | qp.dead_pixels),
    )
    img = sky_image(sg, model)
    snr = img.snr
    ext = [img.tan_y[0], img.tan_y[-1], img.tan_z[0], img.tan_z[-1]]
    pos = qp.position
    r90_tan = np.tan(np.radians(pos.r90_arcmin / 60.0))
    half = max(6 * r90_tan, 3 * abs(img.tan_y[1] - img.tan_y[0]))

    def draw(fig: Any) -> None:
        from matplotlib.patches import Circle  # imported when drawing, see _panel

        _fixed_margins(fig, right_in=0.2)
        fig.subplots_adjust(wspace=0.3)
        a1, a2 = fig.subplots(1, 2)
        m = a1.imshow(snr.T, origin="lower", extent=ext, cmap="magma", aspect="equal")
        fig.colorbar(m, ax=a1, label="S/N")
        a1.plot(pos.tan_y, pos.tan_z, "c+", ms=12)
        a1.set_xlabel("tan(y)")
        a1.set_ylabel("tan(z)")
        a1.set_title(title, y=1.0)  # fixed, see lightcurve_figure
        a2.imshow(snr.T, origin="lower", extent=ext, cmap="magma", aspect="equal")
        a2.add_patch(Circle((pos.tan_y, pos.tan_z), r90_tan, fill=False, color="c", lw=1.5))
        a2.plot(pos.tan_y, pos.tan_z, "c+", ms=10)
        a2.set_xlim(pos.tan_y - half, pos.tan_y + half)
        a2.set_ylim(pos.tan_z - half, pos.tan_z + half)
        a2.set_title(
            f"RA {pos.ra_deg:.3f} Dec {pos.dec_deg:.3f}  r90 {pos.r90_arcmin:.1f}'  "
            f"S/N {pos.snr:.1f}",
            y=1.0,
        )
        a2.set_xlabel("tan(y)")

    return FigureModel(draw=draw, size_in=(10.0, 4.6), dpi=_DPI)
