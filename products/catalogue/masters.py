"""Product types of the nightly master calibration (declared once; see docs/products.md).

A night's products have ``obs_id`` = the night (``YYYY-MM-DD``); a candidate and its QC
reports have the instrument code of their group (``DDRAGO-B-dark-1x1-m100p0C-60s``: the
camera, then the type and what sets the group apart), the QC history the camera's, and each
history plot ``<camera>-<TYPE>-<filter>``.
"""

from __future__ import annotations

import numpy as np
from svomflow.products.catalogue.figures import image_view
from svomflow.products.catalogue.models import FigureModel, FitsModel, ImageBlock, TextModel
from svomflow.products.catalogue.registry import declare
from svomflow.products.catalogue.types import Keyword

__all__: list[str] = []


def _image(model: FitsModel, extname: str) -> np.ndarray | None:
    for block in model.extensions:
        if isinstance(block, ImageBlock) and block.extname.upper() == extname:
            return block.data
    return None


def master_preview(model: FitsModel) -> FigureModel:
    """Draw the candidate master's image (SCI)."""
    kind = model.header_value("OBSTYPE", "master")
    verdict = "passed" if model.header_value("QCPASS") else "rejected"
    unit = model.header_value("BUNIT", "") or "relative"
    return image_view(_image(model, "SCI"), f"candidate {kind} ({verdict})", unit)


def qc_preview(model: FitsModel) -> FigureModel:
    """Draw the map of (candidate - current) / error of the comparison (when there was one)."""
    kind = model.header_value("OBSTYPE", "master")
    return image_view(_image(model, "DIFFSIG"), f"{kind}: candidate - current", "sigma")


declare(
    "MASTER",
    "Candidate master calibration frame (bias, dark or flat) of a night; QCPASS says if "
    "it passed validation and was promoted",
    instruments=("*",),
    model=FitsModel,
    keywords=(
        Keyword("OBSTYPE", "master calibration type (BIAS, DARK, FLAT)"),
        Keyword("INSTRUME", "camera"),
        Keyword("NCOMBINE", "number of frames combined"),
        Keyword("NIGHT", "night of the input frames"),
        Keyword("QCPASS", "passed validation"),
    ),
    extensions=("SCI", "ERR", "NFRAMES"),
    preview=master_preview,
)

declare(
    "QC",
    "QC report of a candidate master: verdict, checks, and the DIFFSIG map of its "
    "comparison with the current master",
    instruments=("*",),
    model=FitsModel,
    keywords=(
        Keyword("NIGHT", "night"),
        Keyword("OBSTYPE", "master calibration type"),
        Keyword("QCPASS", "candidate passed validation"),
    ),
    preview=qc_preview,
)

declare(
    "QCJSON",
    "QC report of a candidate master as JSON (checks, rejected frames, notes)",
    instruments=("*",),
    model=TextModel,
)

declare(
    "QCHIST",
    "QC history of the master calibrations: one row per candidate and night, every night so far",
    instruments=("*",),
    model=FitsModel,
    extensions=("QCHIST",),
)

declare(
    "QCPLOT",
    "QC history plot of one camera, type and filter: level and noise over the last day, "
    "week, month and quarter",
    instruments=("*",),
    model=FigureModel,
)
