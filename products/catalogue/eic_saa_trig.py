"""Product types of the instrument centre's SAA contour and on-board trigger monitoring.

The SAA products have ``obs_id`` = the period measured (``saa-<first day>-<last day>``);
the trigger comparison the day of the stream (``trig-<day>``). Instrument code ``ECL``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from svomflow.products.catalogue.models import FigureModel, FitsModel, ImageBlock, TextModel
from svomflow.products.catalogue.registry import declare
from svomflow.products.catalogue.types import Keyword

__all__ = ["saa_contour_preview", "saa_map_preview", "trigger_comparison_preview"]


def _polygons(model: FitsModel) -> list[np.ndarray]:
    t = model.table("SAACONT")
    pid = t.column("POLYGON")
    verts = np.column_stack([t.column("LON"), t.column("LAT")])
    return [verts[pid == k] for k in np.unique(pid)]


def _draw_polygons(ax: Any, polys: list[np.ndarray], color: str = "tab:red") -> None:
    for i, p in enumerate(polys):
        closed = np.vstack([p, p[:1]])
        ax.plot(
            closed[:, 0], closed[:, 1], color=color, lw=1.5, label="SAA contour" if i == 0 else None
        )


def saa_contour_preview(model: FitsModel) -> FigureModel:
    """Draw the contour's polygons on longitude-latitude axes, with the latitudes covered."""
    polys = _polygons(model)
    t = model.table("SAACONT")
    lat_lo, lat_hi = float(t.card("LATMIN", -90.0)), float(t.card("LATMAX", 90.0))

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.axhspan(lat_lo, lat_hi, color="0.92", label="latitudes covered")
        _draw_polygons(ax, polys)
        ax.set_xlim(-180, 180)
        ax.set_ylim(-90, 90)
        ax.set_xlabel("longitude (deg)")
        ax.set_ylabel("latitude (deg)")
        ax.set_title(
            f"SAA contour: level {t.card('LEVEL')}, margin {t.card('MARGIN')} deg, "
            f"{len(polys)} polygon(s)"
        )
        ax.legend(loc="upper right", fontsize="small")

    return FigureModel(draw=draw, size_in=(9.0, 4.8))


def saa_map_preview(model: FitsModel) -> FigureModel:
    """Draw the smoothed relative-excess map with the contour."""
    block = model["EXCESS"]
    assert isinstance(block, ImageBlock)
    data = block.data
    cards = {k: v for k, v, _ in block.cards}
    polys = _polygons(model)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        if data is None or not np.isfinite(data).any():
            ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center")
            return
        ny, nx = data.shape
        x0, dx = float(cards["CRVAL1"]), float(cards["CDELT1"])
        y0, dy = float(cards["CRVAL2"]), float(cards["CDELT2"])
        extent = (x0 - dx / 2, x0 + (nx - 0.5) * dx, y0 - dy / 2, y0 + (ny - 0.5) * dy)
        im = ax.imshow(
            np.log10(1.0 + np.clip(data, 0, None)), origin="lower", extent=extent, aspect="auto",
            cmap="viridis",
        )  # fmt: skip
        fig.colorbar(im, ax=ax, label="log10(rate / quiescent)")
        _draw_polygons(ax, polys)
        ax.set_xlabel("longitude (deg)")
        ax.set_ylabel("latitude (deg)")
        ax.set_title(f"count-rate excess along the orbit; contour at level {cards.get('LEVEL')}")
        ax.legend(loc="upper right", fontsize="small")

    return FigureModel(draw=draw, size_in=(10.0, 4.0))


def trigger_comparison_preview(model: FitsModel) -> FigureModel:
    """Draw the on-board and ground triggers over the day: matched, missed, spurious."""
    t = model.table("TRIGCMP")
    status = np.array([str(s).strip() for s in t.column("STATUS")])
    time = np.asarray(t.column("TIME"), float)
    sig = np.asarray(t.column("SNR"), float)
    thr = np.asarray(t.column("THRESH"), float)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        styles = {
            "MATCHED": ("o", "tab:green"),
            "KNOWN": ("s", "tab:blue"),
            "MISSED": ("v", "tab:red"),
            "SPURIOUS": ("x", "tab:orange"),
        }
        t0 = float(time.min()) if time.size else 0.0
        for name, (marker, color) in styles.items():
            m = status == name
            ax.scatter(
                (time[m] - t0) / 3600.0, sig[m] / np.where(thr[m] > 0, thr[m], 1.0), marker=marker,
                color=color, label=f"{name.lower()} ({int(m.sum())})",
            )  # fmt: skip
        ax.axhline(1.0, color="0.5", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("hours since the first trigger")
        ax.set_ylabel("S/N / threshold")
        ax.set_title("on-board vs ground re-analysis of the rate trigger")
        ax.legend(fontsize="small")

    return FigureModel(draw=draw, size_in=(9.0, 4.5))


declare(
    "SAACONT",
    "SAA contour measured from the count rates along the orbit: polygons (lon, lat) with a "
    "margin; the candidate CALDB file SAACONT (promoted through the gate)",
    instruments=("ECL",),
    model=FitsModel,
    keywords=(
        Keyword("CCNM0001", "calibration code name", "SAACONT"),
        Keyword("LEVEL", "relative excess at the region's edge", hdu="SAACONT"),
        Keyword("MARGIN", "margin (deg)", hdu="SAACONT"),
    ),
    extensions=("SAACONT",),
    preview=saa_contour_preview,
)

declare(
    "SAAXML",
    "SAA contour as the XML document for the operations centre (schema saa_contour.xsd)",
    instruments=("ECL",),
    model=TextModel,
)

declare(
    "SAAMAP",
    "Map of the count-rate excess over the quiescent rate along the orbit (smoothed, "
    "longitude x latitude) with samples per cell and the contour traced on it",
    instruments=("ECL",),
    model=FitsModel,
    keywords=(Keyword("LEVEL", "level of the SAA region", hdu="EXCESS"),),
    extensions=("EXCESS", "NSAMPLE", "SAACONT"),
    preview=saa_map_preview,
)

declare(
    "TRIGCMP",
    "On-board rate triggers compared with the ground re-analysis of the same data and "
    "thresholds: matched, missed (ground only), spurious (on-board only), known-source",
    instruments=("ECL",),
    model=FitsModel,
    keywords=(
        Keyword("TRIGTHR", "threshold table file used", hdu="TRIGCMP"),
        Keyword("NMATCH", "matched triggers", hdu="TRIGCMP"),
        Keyword("NMISSED", "triggers missed on board", hdu="TRIGCMP"),
        Keyword("NSPUR", "spurious on-board triggers", hdu="TRIGCMP"),
    ),
    extensions=("TRIGCMP",),
    preview=trigger_comparison_preview,
)
