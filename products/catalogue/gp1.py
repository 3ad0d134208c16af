"""Product types of the GP1 pipeline (declared once; see docs/products.md).

Per image (``obs_id`` = ``<trigger>_<filter>_<image stem>``): the reduced image, its source
catalogue, difference image, candidates and figures. Per alert sequence (``obs_id`` =
``<trigger>_<filter>``): DT, OTQLC, OTPO, OTLC, QTI, QF and the HTML summary. The instrument
code is the camera's (``INSTRUME``, e.g. ``DDRAGO-B``).

The optical transient's quick light curve, position and light curve were ``QLC``, ``PO``
and ``LC``; those codes are the burst's (VHF and X-band: OGIP light curves and positions of
another layout), and a code is declared once, so GP1's carry ``OT`` (optical transient).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from svomflow.products.catalogue.figures import image_view
from svomflow.products.catalogue.models import (
    FigureModel,
    FigurePage,
    FitsModel,
    ImageBlock,
    TableBlock,
    TextModel,
)
from svomflow.products.catalogue.registry import declare
from svomflow.products.catalogue.types import Keyword

__all__: list[str] = []


def reduced_preview(model: FitsModel) -> FigureModel:
    """Draw the reduced image (masked pixels blank)."""
    data = model.primary.data
    mask = next(
        (b.data for b in model.extensions if isinstance(b, ImageBlock) and b.extname == "MASK"),
        None,
    )
    if data is not None and mask is not None:
        data = np.where(mask.astype(bool), np.nan, data)
    title = f"{model.header_value('IMGSTEM', '')} ({model.header_value('REDLEVEL', '')})"
    return image_view(
        data,
        title,
        str(model.header_value("BUNIT", "") or "electron"),
        cmap="gray_r",
        size_in=(6.0, 5.5),
    )


def difference_preview(model: FitsModel) -> FigureModel:
    """Draw the difference image (science minus reference)."""
    return image_view(
        model.primary.data, "difference image", "counts", cmap="gray_r", size_in=(6.0, 5.5)
    )


def light_curve_preview(model: FitsModel) -> FigureModel:
    """Draw the transient's light curve: detections with errors, 3-sigma limits otherwise."""
    block = model["LIGHTCURVE"]
    assert isinstance(block, TableBlock)
    t = block.column("TIME").astype(float)
    if not np.isfinite(t).all():
        t = block.column("MJD").astype(float)
        xlabel = "MJD"
    else:
        xlabel = "T - T0 (s)"
    det = block.column("DETECTED").astype(bool)
    mag, err = block.column("MAG").astype(float), block.column("MAG_ERR").astype(float)
    lim = block.column("MAG_LIM3").astype(float)
    band = model.header_value("FILTER", "")

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        if det.any():
            ax.errorbar(t[det], mag[det], err[det], fmt="o", label="detections")
        if (~det).any():
            ax.plot(t[~det], lim[~det], "v", label="3-sigma limits")
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{band} (mag)")
        ax.set_title("Transient light curve")
        if xlabel != "MJD" and det.any() and (t[det] > 0).all():
            ax.set_xscale("log")
        if len(t):
            ax.legend()

    return FigureModel(draw=draw, size_in=(6.0, 4.0))


_CAMERA = ("*",)  # any CCD camera definition (the INSTRUME value)
_SEQUENCE = (
    Keyword("TELESCOP", "telescope"),
    Keyword("TRIGID", "trigger identifier"),
    Keyword("FILTER", "filter"),
    Keyword("NIMAGES", "alert images analysed"),
)

declare(
    "REDIMG",
    "Reduced image (electrons; overscan, bias, dark, flat, cosmic rays) with its bad-pixel "
    "MASK and, for alert images, the solved WCS",
    instruments=_CAMERA,
    model=FitsModel,
    keywords=(Keyword("REDLEVEL", "GP1 reduction level"), Keyword("IMGSTEM", "input image")),
    extensions=("MASK",),
    preview=reduced_preview,
)
declare(
    "SRCCAT",
    "Sources of an image: positions, sky coordinates, aperture and PSF photometry, flags",
    instruments=_CAMERA,
    model=FitsModel,
    extensions=("LDAC_OBJECTS",),
)
declare(
    "DIFFIMG",
    "Difference image (image minus convolved reference) and its NOISE map",
    instruments=_CAMERA,
    model=FitsModel,
    keywords=(Keyword("KSCALE", "flux scale of the subtraction kernel"),),
    extensions=("NOISE",),
    preview=difference_preview,
)
declare(
    "CANDS",
    "Transient candidates of an image's difference, vetted (REJECT = 'ok' kept)",
    instruments=_CAMERA,
    model=FitsModel,
    extensions=("CANDIDATES",),
)
declare(
    "IMGSUM",
    "Figures of an image (JSON): reduction level, sources, astrometry, PSF, zero point, "
    "limiting magnitude, candidates",
    instruments=_CAMERA,
    model=TextModel,
)
declare(
    "DT",
    "Kept transient candidates of the stack difference of an alert sequence",
    instruments=_CAMERA,
    model=FitsModel,
    keywords=(*_SEQUENCE, Keyword("NDET", "kept transient candidates")),
    extensions=("DETECTIONS",),
)
declare(
    "OTQLC",
    "Quick light curve of the transient from each image's own candidates (magnitudes)",
    instruments=_CAMERA,
    model=FitsModel,
    keywords=_SEQUENCE,
    extensions=("QUICKLC",),
)
declare(
    "OTPO",
    "Position of the optical transient with its 1-sigma error",
    instruments=_CAMERA,
    model=FitsModel,
    keywords=(
        *_SEQUENCE,
        Keyword("RA_OBJ", "[deg] transient right ascension"),
        Keyword("DEC_OBJ", "[deg] transient declination"),
        Keyword("POS_ERR", "[arcsec] 1-sigma position error"),
        Keyword("ALRTPOS", "an alert position guided the choice (then ALRTSRC, ALRTR90...)"),
    ),
)
declare(
    "OTLC",
    "Light curve of the transient: forced PSF photometry on every image difference",
    instruments=_CAMERA,
    model=FitsModel,
    keywords=(*_SEQUENCE, Keyword("RA_OBJ", "[deg] transient right ascension")),
    extensions=("LIGHTCURVE",),
    preview=light_curve_preview,
)
declare(
    "QTI",
    "Quick transient information: detection, position, first magnitude, decay index, limits",
    instruments=_CAMERA,
    model=FitsModel,
    keywords=(
        *_SEQUENCE,
        Keyword("DETECT", "a transient was found"),
        Keyword("MAGLIM", "limit"),
        Keyword("ALRTPOS", "an alert position guided the choice (then ALRTSRC, ALRTR90...)"),
    ),
)
declare(
    "QF",
    "Quick finding chart of the transient on the stack (PNG)",
    instruments=_CAMERA,
    model=FigureModel,
)
declare(
    "SUMMARY",
    "HTML summary of an alert sequence: transient, images, light curve, calibration, "
    "sensitivity and finding chart",
    instruments=_CAMERA,
    model=FigurePage,
)
