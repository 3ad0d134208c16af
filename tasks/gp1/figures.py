"""GP1 sequence figures: light curve, photometric calibration, sensitivity, finding chart.

Each is a :class:`~svomflow.products.catalogue.FigureModel`, drawn once
(:meth:`~svomflow.products.catalogue.FigureModel.png`) for both the HTML summary that
embeds it and the published PNG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.table import Table
from svomflow.products.catalogue import FigureModel
from svomflow.tasks.gp1.images import ImageResult, ImageSummary, celestial_wcs

__all__ = [
    "calibration_figure",
    "finding_chart",
    "light_curve_figure",
    "sensitivity_figure",
]

_SIZE = (6.0, 4.0)
_DPI = 90


def light_curve_figure(lc: Table | None, band: str) -> FigureModel:
    """Draw the transient's light curve: detections with errors, 3-sigma limits otherwise."""
    if lc is None:
        lc = Table(
            {
                "MJD": [],
                "TIME": [],
                "MAG": [],
                "MAG_ERR": [],
                "MAG_LIM3": [],
                "DETECTED": np.zeros(0, bool),
            }
        )
    tcol = "TIME" if len(lc) and np.isfinite(lc["TIME"]).all() else "MJD"
    t = np.asarray(lc[tcol], float)
    mag = np.asarray(lc["MAG"], float)
    err = np.asarray(lc["MAG_ERR"], float)
    lim = np.asarray(lc["MAG_LIM3"], float)
    det = np.asarray(lc["DETECTED"], bool)
    n = len(lc)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        if det.any():
            ax.errorbar(t[det], mag[det], err[det], fmt="o", label="detections")
        if (~det).any():
            ax.plot(t[~det], lim[~det], "v", label="3-sigma limits")
        ax.invert_yaxis()
        ax.set_xlabel("T - T0 (s)" if tcol == "TIME" else "MJD")
        ax.set_ylabel(f"{band} (mag)")
        ax.set_title("Transient light curve")
        if tcol == "TIME" and det.any():
            ax.set_xscale("log")
        if n:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no transient", transform=ax.transAxes, ha="center")

    return FigureModel(draw=draw, size_in=_SIZE, dpi=_DPI)


def calibration_figure(summaries: list[ImageSummary]) -> FigureModel:
    """Zero-point residuals of every image's calibrators against the reference magnitude."""
    points = [(s.stem[-12:], s.zp, s.zp_points) for s in summaries if s.zp_points]

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for stem, zp, pts in points:
            ax.plot(pts["ref"], pts["resid"], ".", ms=3, label=f"{stem} ZP={zp:.3f}")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("reference magnitude")
        ax.set_ylabel("ref - (inst + ZP) (mag)")
        ax.set_title("Photometric calibration")
        if points:
            ax.legend(fontsize=6)

    return FigureModel(draw=draw, size_in=_SIZE, dpi=_DPI)


def sensitivity_figure(summaries: list[ImageSummary]) -> FigureModel:
    """Limiting magnitude and seeing of every image over the sequence."""
    t = np.array([s.mjd_mid for s in summaries])
    t = (t - t[0]) * 86400
    maglim = [np.nan if s.maglim is None else s.maglim for s in summaries]
    fwhm = [np.nan if s.fwhm_arcsec is None else s.fwhm_arcsec for s in summaries]

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(t, maglim, "o-", label="5-sigma limit")
        ax.set_xlabel("time since first image (s)")
        ax.set_ylabel("limiting magnitude")
        ax2 = ax.twinx()
        ax2.plot(t, fwhm, "s--", color="C1", label="FWHM")
        ax2.set_ylabel("FWHM (arcsec)")
        ax.invert_yaxis()
        ax.set_title("Sensitivity")

    return FigureModel(draw=draw, size_in=_SIZE, dpi=_DPI)


def finding_chart(
    chart: ImageResult, transient: dict[str, Any], width_arcmin: float
) -> FigureModel:
    """Draw a cutout of the image (the stack) around the transient, circled, with N and E arrows."""
    from matplotlib.patches import Circle

    img = chart.reduced
    w = celestial_wcs(img.header)
    if w is None:
        raise ValueError("the finding chart needs a WCS")
    s = chart.summary
    x, y = transient["X_IMAGE"] - 1, transient["Y_IMAGE"] - 1
    scale = np.sqrt(abs(np.linalg.det(w.pixel_scale_matrix))) * 3600
    half = int(width_arcmin * 30 / scale)
    j0, j1 = max(int(y) - half, 0), min(int(y) + half, img.data.shape[0])
    i0, i1 = max(int(x) - half, 0), min(int(x) + half, img.data.shape[1])
    cut = np.array(img.data[j0:j1, i0:i1])
    # North and East arrows from the WCS.
    ra0, dec0 = w.pixel_to_world_values(x, y)
    xn, yn = w.world_to_pixel_values(ra0, dec0 + 20 / 3600)
    xe, ye = w.world_to_pixel_values(ra0 + 20 / 3600 / np.cos(np.deg2rad(dec0)), dec0)
    bx, by = i0 + 0.1 * (i1 - i0), j0 + 0.1 * (j1 - j0)
    title = (
        f"{s.trigger} {s.filter}: "
        f"RA {transient['ALPHA_J2000']:.5f} Dec {transient['DELTA_J2000']:+.5f}"
    )

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        lo, hi = np.nanpercentile(cut, [5, 99.5])
        ax.imshow(
            cut,
            origin="lower",
            cmap="gray_r",
            vmin=lo,
            vmax=hi,
            extent=(i0 - 0.5, i1 - 0.5, j0 - 0.5, j1 - 0.5),
        )
        ax.add_patch(Circle((x, y), 3 / scale * 2, fill=False, color="r", lw=1.5))
        ax.set_title(title)
        for label, (px, py) in (("N", (xn, yn)), ("E", (xe, ye))):
            ax.annotate(
                label,
                xy=(bx + (px - x), by + (py - y)),
                xytext=(bx, by),
                arrowprops={"arrowstyle": "->", "color": "b"},
                color="b",
            )
        ax.set_xlabel("x (pix)")
        ax.set_ylabel("y (pix)")

    return FigureModel(draw=draw, size_in=(5.0, 5.0), dpi=_DPI)
