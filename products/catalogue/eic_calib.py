"""Product types of the ECLAIRs instrument-centre calibration (declared once; see docs/products.md).

The per-pixel calibration candidates (``PIXGAIN``, ``BANDTAB``, ``SBNTHR``; instrument code
``ECL``, ``obs_id`` the day of the calibration data) are published here before the gate
decides; the promoted ones are copied into the CALDB. The promotion gate's QC history is generic: one ``CALQCH`` table and one ``CALQCP`` plot
per CALDB code and instrument, named ``<INSTRUMENT>-<CODE>`` (``ECLAIRS-PIXGAIN``).
"""

from __future__ import annotations

import numpy as np
from svomflow.products.catalogue.figures import image_view
from svomflow.products.catalogue.models import FigureModel, FitsModel, TableBlock
from svomflow.products.catalogue.registry import declare

__all__: list[str] = []

declare(
    "CALQCH",
    "QC history of a calibration code: every candidate judged by the promotion gate, one row "
    "per QC figure with the current file's value, the verdict and its reasons",
    instruments=("*",),
    model=FitsModel,
    extensions=("CALQCH",),
)

declare(
    "CALQCP",
    "QC history plot of a calibration code: each QC figure over the last day, week, month "
    "and quarter (promoted and refused candidates)",
    instruments=("*",),
    model=FigureModel,
)


def _table(model: FitsModel, extname: str) -> TableBlock | None:
    for block in model.extensions:
        if isinstance(block, TableBlock) and block.extname.upper() == extname:
            return block
    return None


def _plane(model: FitsModel, extname: str, column: str) -> np.ndarray | None:
    """Return a per-pixel column of a table as an image (``Y`` x ``Z``)."""
    block = _table(model, extname)
    if block is None:
        return None
    y = np.asarray(block.column("Y"), dtype=int)
    z = np.asarray(block.column("Z"), dtype=int)
    values = np.asarray(block.column(column), dtype=float)
    if values.ndim > 1:
        values = values.max(axis=-1)
    out = np.full((int(y.max()) + 1, int(z.max()) + 1), np.nan)
    out[y, z] = values
    return out


def gain_preview(model: FitsModel) -> FigureModel:
    """Draw the gain map of a per-pixel gain table."""
    return image_view(
        _plane(model, "PIXGAIN", "GAIN"), "ECLAIRs gain per pixel", "keV/chan", cmap="viridis"
    )


def band_preview(model: FitsModel) -> FigureModel:
    """Draw the upper ADC bound of the highest band per pixel."""
    return image_view(
        _plane(model, "BANDTAB", "CHAN_HI"),
        "highest band's last channel",
        "ADC chan",
        cmap="viridis",
    )


def threshold_preview(model: FitsModel) -> FigureModel:
    """Draw the expected low threshold per pixel with the new settings."""
    return image_view(
        _plane(model, "SBNTHR", "PRED_KEV"), "expected low threshold", "keV", cmap="viridis"
    )


declare(
    "PIXGAIN",
    "ECLAIRs gain and offset per pixel (E = GAIN * (ADC + 0.5) + OFFSET keV) fitted on known "
    "lines, with the module fallback flag and reason; a CALDB candidate",
    instruments=("*",),
    model=FitsModel,
    extensions=("PIXGAIN",),
    preview=gain_preview,
)

declare(
    "BANDTAB",
    "ECLAIRs on-board energy-band bounds in raw ADC channels per pixel (CHAN_LO/CHAN_HI per "
    "band; BANDS names them); a CALDB candidate",
    instruments=("*",),
    model=FitsModel,
    extensions=("BANDTAB", "BANDS"),
    preview=band_preview,
)

declare(
    "SBNTHR",
    "ECLAIRs low-threshold (SBN) DAC setting per ASIC channel, with the measured noise edge "
    "and the expected threshold; a CALDB candidate",
    instruments=("*",),
    model=FitsModel,
    extensions=("SBNTHR",),
    preview=threshold_preview,
)
