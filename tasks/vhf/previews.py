"""PNG previews of the VHF products: light curves (T90, background, peak marked), sky image.

Each preview is a :class:`~svomflow.products.catalogue.FigureModel`: the data to draw and a
function that draws them on a :class:`matplotlib.figure.Figure` (no pyplot state, so several
threads of one flow run can draw), rendered when the catalogue publishes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.patches import Circle
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FigureModel
from svomflow.tasks.coded_mask.imaging import MaskModel, make_shadowgram, sky_image
from svomflow.tasks.coded_mask.quick_position import QuickPosition
from svomflow.tasks.timing import BinnedCounts
from svomflow.tasks.vhf.curves import BandCurve, InstrumentTiming

__all__ = ["lightcurve_figure", "sky_image_figure"]

_DPI = 90


def _rebin(b: BinnedCounts, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sum ``factor`` consecutive bins (display only; a gap ends a group)."""
    n = b.lo.size // factor * factor
    if n == 0:
        return b.lo, b.hi, b.counts, b.exposure
    lo = b.lo[:n:factor]
    hi = b.hi[factor - 1 : n : factor]
    c = np.add.reduceat(np.asarray(b.counts[:n], float), np.arange(0, n, factor))
    e = np.add.reduceat(b.exposure[:n], np.arange(0, n, factor))
    return lo, hi, c, e


def _panel(ax: Any, c: BandCurve, factor: int, label: str) -> None:
    lo, hi, cnt, exp = _rebin(c.bins, factor)
    ok = exp > 0
    rate = np.where(ok, cnt / np.where(ok, exp, 1), np.nan)
    err = np.where(ok, np.sqrt(np.maximum(cnt, 1)) / np.where(ok, exp, 1), np.nan)
    mid = 0.5 * (lo + hi)
    ax.errorbar(mid, rate, yerr=err, fmt="none", ecolor="0.6", lw=0.6)
    ax.step(lo, rate, where="post", color="k", lw=0.8, label=label)
    if c.background is not None:
        t = np.linspace(c.bins.lo[0], c.bins.hi[-1], 400)
        ax.plot(t, c.background.rate(t), color="tab:blue", lw=1.2, label="background model")
    # data gaps shaded
    gaps = np.flatnonzero(~c.bins.contiguous)
    for g in gaps:
        ax.axvspan(c.bins.hi[g - 1], c.bins.lo[g], color="0.85", label="data gap")
    ax.set_ylabel("count/s")


def lightcurve_figure(timing: InstrumentTiming, *, title: str) -> FigureModel:
    """Light curve of the T90 band with T90/T50, background and peak; other bands below."""
    curves = [timing.curve] + [c for c in timing.light_curves if c.band_kev != timing.band_kev]
    dt = float(np.median(timing.curve.bins.hi - timing.curve.bins.lo))
    factor = max(1, round(0.256 / dt))
    d = timing.durations
    # the peak window shown: 1.024 s, else the longest timescale measured
    peak = next(
        (p for p in timing.peaks if abs(p.timescale_s - 1.024) < 1e-6 or p is timing.peaks[-1]),
        None,
    )

    def draw(fig: Any) -> None:
        fig.set_layout_engine("constrained")
        axes = fig.subplots(len(curves), 1, sharex=True, squeeze=False)[:, 0]
        for ax, c in zip(axes, curves, strict=True):
            _panel(ax, c, factor, f"{c.band_kev[0]:g}-{c.band_kev[1]:g} keV")
            ax.legend(loc="upper right", fontsize=7)
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
        ax0.set_title(title)
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
        fig.set_layout_engine("constrained")
        a1, a2 = fig.subplots(1, 2)
        m = a1.imshow(snr.T, origin="lower", extent=ext, cmap="magma", aspect="equal")
        fig.colorbar(m, ax=a1, label="S/N")
        a1.plot(pos.tan_y, pos.tan_z, "c+", ms=12)
        a1.set_xlabel("tan(y)")
        a1.set_ylabel("tan(z)")
        a1.set_title(title)
        a2.imshow(snr.T, origin="lower", extent=ext, cmap="magma", aspect="equal")
        a2.add_patch(Circle((pos.tan_y, pos.tan_z), r90_tan, fill=False, color="c", lw=1.5))
        a2.plot(pos.tan_y, pos.tan_z, "c+", ms=10)
        a2.set_xlim(pos.tan_y - half, pos.tan_y + half)
        a2.set_ylim(pos.tan_z - half, pos.tan_z + half)
        a2.set_title(
            f"RA {pos.ra_deg:.3f} Dec {pos.dec_deg:.3f}  r90 {pos.r90_arcmin:.1f}'  "
            f"S/N {pos.snr:.1f}"
        )
        a2.set_xlabel("tan(y)")

    return FigureModel(draw=draw, size_in=(10.0, 4.6), dpi=_DPI)
