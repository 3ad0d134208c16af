"""Product types of the ECLAIRs pixel calibration flow (declared once; see docs/products.md).

Each is the candidate CALDB file of one code, published before the promotion gate judges it
(``flows/eic_pixels.py``): ``PIXBAD`` (a ``BADPIX`` file with pixel classes, onsets and duty
cycles), ``PIXUNIF`` (a ``UNIFMAP`` file) and ``PIXDT`` (a ``DEADTIME`` file with one row per
module). Their ``obs_id`` is the period (``pixels-<start>-<stop>``), their instrument ``ECL``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from svomflow.products.catalogue.figures import image_view
from svomflow.products.catalogue.models import FigureModel, FitsModel, ImageBlock
from svomflow.products.catalogue.registry import declare
from svomflow.products.catalogue.types import Keyword

__all__ = ["badpix_preview", "dead_time_preview", "uniformity_preview"]

_CLASSES = {"DEAD": 1, "NOISY": 2, "INTERMIT": 3}


def badpix_preview(model: FitsModel) -> FigureModel:
    """Draw the plane with its dead, noisy and intermittent pixels."""
    tab = model.table("BADPIX")
    ny, nz = int(tab.card("PLANE_NY", 80)), int(tab.card("PLANE_NZ", 80))
    img = np.zeros((ny, nz))
    kinds = [str(k).strip() for k in tab.column("CLASS")]
    for y, z, k in zip(tab.column("Y"), tab.column("Z"), kinds, strict=True):
        img[int(y), int(z)] = _CLASSES.get(k, 0)

    def draw(fig: Any) -> None:
        from matplotlib.colors import ListedColormap

        ax = fig.add_subplot(1, 1, 1)
        cmap = ListedColormap(["#f2f2f2", "black", "tab:red", "tab:orange"])
        ax.imshow(img, origin="lower", cmap=cmap, vmin=-0.5, vmax=3.5, interpolation="nearest")
        counts = {k: kinds.count(k) for k in _CLASSES}
        ax.set_title(
            f"bad pixels: {counts['DEAD']} dead (black), {counts['NOISY']} noisy (red), "
            f"{counts['INTERMIT']} intermittent (orange)",
            fontsize=9,
        )
        ax.set_xlabel("Z (pixel)")
        ax.set_ylabel("Y (pixel)")

    return FigureModel(draw=draw, size_in=(6.0, 6.0), dpi=90)


def uniformity_preview(model: FitsModel) -> FigureModel:
    """Draw the relative efficiency map."""
    eff = None
    for b in model.extensions:
        if isinstance(b, ImageBlock) and b.extname.upper() == "EFFIC":
            eff = b.data
    return image_view(eff, "relative efficiency (flat illumination)", "efficiency", cmap="viridis")


def dead_time_preview(model: FitsModel) -> FigureModel:
    """Draw the fitted dead time of every module with its error."""
    tab = model.table("DEADTIME")
    tau = np.asarray(tab.column("DEADTIME"), float) * 1e6
    err = np.asarray(tab.column("DT_ERR"), float) * 1e6

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.errorbar(np.arange(tau.size), tau, yerr=err, fmt=".", ms=3, lw=0.6)
        ax.set_xlabel("module")
        ax.set_ylabel("dead time per event (us)")
        ax.set_title(f"non-paralyzable dead time, median {np.nanmedian(tau):.3g} us")

    return FigureModel(draw=draw, size_in=(8.0, 4.0), dpi=90)


declare(
    "PIXBAD",
    "Candidate BADPIX file of the ECLAIRs plane from a period's count rates: dead, noisy and "
    "intermittent pixels with onset, duty cycle and significance",
    instruments=("ECL",),
    model=FitsModel,
    keywords=(
        Keyword("CCNM0001", "calibration code name", "BADPIX"),
        Keyword("TSTART", "start of the period (mission s)"),
        Keyword("TSTOP", "end of the period (mission s)"),
        Keyword("NDEAD", "dead pixels", hdu="BADPIX"),
        Keyword("NNOISY", "noisy pixels", hdu="BADPIX"),
        Keyword("NINTERM", "intermittent pixels", hdu="BADPIX"),
    ),
    extensions=("BADPIX",),
    preview=badpix_preview,
)

declare(
    "PIXUNIF",
    "Candidate UNIFMAP file of the ECLAIRs plane: relative efficiency per pixel (mean 1) "
    "from flat illumination, with its error",
    instruments=("ECL",),
    model=FitsModel,
    keywords=(
        Keyword("CCNM0001", "calibration code name", "UNIFMAP"),
        Keyword("CXBFRAC", "CXB share of the flat background assumed"),
    ),
    extensions=("EFFIC", "EFFERR"),
    preview=uniformity_preview,
)

declare(
    "PIXDT",
    "Candidate DEADTIME file of ECLAIRs: non-paralyzable dead time per module fitted from "
    "count rates (DEADDEF: the plane's equivalent)",
    instruments=("ECL",),
    model=FitsModel,
    keywords=(
        Keyword("CCNM0001", "calibration code name", "DEADTIME"),
        Keyword("DEADDEF", "plane-equivalent dead time per event (s)", hdu="DEADTIME"),
        Keyword("DEADTYPE", "dead-time model", "NONPARALYZABLE", hdu="DEADTIME"),
    ),
    extensions=("DEADTIME",),
    preview=dead_time_preview,
)
