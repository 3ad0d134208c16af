"""PNG previews of the VHF flow: light curves (T90, background, peak marked) and the sky image.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state), so previews can
be drawn from several threads of one flow run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.tasks.coded_mask.imaging import MaskModel, make_shadowgram, sky_image
from svomflow.tasks.coded_mask.quick_position import QuickPosition
from svomflow.tasks.timing import BinnedCounts
from svomflow.tasks.vhf.inputs import InstrumentData
from svomflow.tasks.vhf.timing import BandCurve, InstrumentTiming

__all__ = ["plot_lightcurves", "plot_sky_image"]


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


def _panel(ax, c: BandCurve, factor: int, label: str) -> None:  # type: ignore[no-untyped-def]
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


def plot_lightcurves(timing: InstrumentTiming, path: str | Path, *, title: str) -> Path:
    """Light curve of the T90 band with T90/T50, background and peak; other bands below."""
    curves = [timing.curve] + [c for c in timing.light_curves if c.band_kev != timing.band_kev]
    fig = Figure(figsize=(8, 2.2 + 1.6 * len(curves)), layout="constrained")
    axes = fig.subplots(len(curves), 1, sharex=True, squeeze=False)[:, 0]
    dt = float(np.median(timing.curve.bins.hi - timing.curve.bins.lo))
    factor = max(1, round(0.256 / dt))
    for ax, c in zip(axes, curves, strict=True):
        _panel(ax, c, factor, f"{c.band_kev[0]:g}-{c.band_kev[1]:g} keV")
        ax.legend(loc="upper right", fontsize=7)
    ax0 = axes[0]
    d = timing.durations
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
    for p in timing.peaks:
        if abs(p.timescale_s - 1.024) < 1e-6 or p is timing.peaks[-1]:
            ax0.axvspan(
                p.start,
                p.start + p.timescale_s,
                color="tab:green",
                alpha=0.5,
                label=f"peak {p.timescale_s:g} s: {p.rate:.4g} count/s",
            )
            break
    ax0.legend(loc="upper right", fontsize=7)
    ax0.set_title(title)
    axes[-1].set_xlabel("time since T0 (s)")
    out = Path(path)
    fig.savefig(out, dpi=90, format="png")
    return out


def plot_sky_image(
    data: InstrumentData, qp: QuickPosition, path: str | Path, *, title: str
) -> Path:
    """Sky image (S/N) of the burst interval with the position and its 90 % circle."""
    im = data.imaging
    defn = data.definition
    assert im is not None and defn is not None
    geom = MaskGeometry.from_instrument(defn)
    model = MaskModel.from_geometry(geom)
    sg = make_shadowgram(
        im.time,
        im.y,
        im.z,
        im.energy_kev,
        shape=geom.shape,
        band_kev=qp.band_kev,
        interval=qp.interval,
        background_interval=qp.background_interval,
        gti=im.gti,
        usable=~(qp.noisy_pixels | qp.dead_pixels),
    )
    img = sky_image(sg, model)
    snr = img.snr
    ext = [img.tan_y[0], img.tan_y[-1], img.tan_z[0], img.tan_z[-1]]
    pos = qp.position
    r90_tan = np.tan(np.radians(pos.r90_arcmin / 60.0))
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    m = a1.imshow(snr.T, origin="lower", extent=ext, cmap="magma", aspect="equal")
    fig.colorbar(m, ax=a1, label="S/N")
    a1.plot(pos.tan_y, pos.tan_z, "c+", ms=12)
    a1.set_xlabel("tan(y)")
    a1.set_ylabel("tan(z)")
    a1.set_title(title)
    half = max(6 * r90_tan, 3 * abs(img.tan_y[1] - img.tan_y[0]))
    a2.imshow(snr.T, origin="lower", extent=ext, cmap="magma", aspect="equal")
    a2.add_patch(Circle((pos.tan_y, pos.tan_z), r90_tan, fill=False, color="c", lw=1.5))
    a2.plot(pos.tan_y, pos.tan_z, "c+", ms=10)
    a2.set_xlim(pos.tan_y - half, pos.tan_y + half)
    a2.set_ylim(pos.tan_z - half, pos.tan_z + half)
    a2.set_title(
        f"RA {pos.ra_deg:.3f} Dec {pos.dec_deg:.3f}  r90 {pos.r90_arcmin:.1f}'  S/N {pos.snr:.1f}"
    )
    a2.set_xlabel("tan(y)")
    out = Path(path)
    fig.savefig(out, dpi=90, format="png")
    return out
