"""Overscan correction and trimming of raw CCD frames.

The geometry comes from the camera definition, or from a frame's own ``BIASSEC`` and
``TRIMSEC`` keywords (IRAF's convention, as foreign cameras write them):
:func:`header_sections`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.instruments.ccd_camera import CameraModel

__all__ = [
    "OverscanConfig",
    "Sections",
    "header_sections",
    "overscan_vector",
    "subtract_overscan",
]

# An IRAF image section, 1-based and inclusive: [x1:x2,y1:y2].
_SECTION = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]$")


@dataclass(frozen=True)
class Sections:
    """Where a raw frame's overscan strip and light-sensitive area are (NumPy slices)."""

    overscan: tuple[slice, slice]
    image: tuple[slice, slice]

    @classmethod
    def of_camera(cls, camera: CameraModel) -> Sections:
        """Return the camera definition's geometry."""
        return cls(camera.overscan_slice(), camera.image_slice())


def _section(value: Any, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    m = _SECTION.match(str(value).strip())
    if not m:
        return None
    x1, x2, y1, y2 = (int(g) for g in m.groups())
    if not (1 <= x1 <= x2 <= shape[1] and 1 <= y1 <= y2 <= shape[0]):
        return None  # flipped or outside the frame: not a section we can use
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def header_sections(header: Any, shape: tuple[int, int]) -> Sections | None:
    """Return the geometry a frame's ``BIASSEC`` and ``TRIMSEC`` give, or None.

    None when either keyword is missing, not an IRAF section ``[x1:x2,y1:y2]``, flipped,
    outside the frame, or when the two do not cover the same rows (the per-row overscan
    level must exist for every image row).
    """
    bias = _section(header.get("BIASSEC", ""), shape)
    trim = _section(header.get("TRIMSEC", ""), shape)
    if bias is None or trim is None:
        return None
    (brow, _), (trow, _) = bias, trim
    if not (brow.start <= trow.start and trow.stop <= brow.stop):
        return None
    return Sections(bias, trim)


class OverscanConfig(StepConfig):
    """How the overscan level is estimated along the rows."""

    statistic: Literal["median", "mean"] = Field(
        "median", description="Per-row statistic of the overscan columns"
    )
    fit_order: int | None = Field(
        3,
        ge=0,
        description="Legendre order fitted to the per-row values along the rows; "
        "None keeps the raw per-row values (noisier, follows row-to-row jumps)",
    )
    clip_sigma: float = Field(
        4.0, gt=0, description="Rows deviating from the fit by more than this are refitted out"
    )


def overscan_vector(strip: np.ndarray, config: OverscanConfig | None = None) -> np.ndarray:
    """Return the overscan level of each row (float64, length = rows of ``strip``).

    Parameters
    ----------
    strip
        The overscan columns of a raw frame, shape (rows, overscan columns).
    config
        Statistic and optional Legendre fit along the rows (one refit without outlier rows,
        e.g. rows hit by a cosmic ray in the overscan).
    """
    config = config or OverscanConfig()
    strip = np.asarray(strip, dtype=np.float64)
    if strip.ndim != 2 or strip.shape[1] == 0:
        raise ValueError(f"overscan strip must be 2-D with at least one column, got {strip.shape}")
    per_row = np.median(strip, axis=1) if config.statistic == "median" else strip.mean(axis=1)
    if config.fit_order is None or strip.shape[0] <= config.fit_order + 1:
        return per_row
    x = np.linspace(-1.0, 1.0, strip.shape[0])
    good = np.isfinite(per_row)
    for _ in range(2):
        coef = np.polynomial.legendre.legfit(x[good], per_row[good], config.fit_order)
        model = np.polynomial.legendre.legval(x, coef)
        resid = per_row - model
        mad = np.median(np.abs(resid[good] - np.median(resid[good])))
        sigma = 1.4826 * mad
        if not sigma > 0:
            break
        new_good = np.isfinite(per_row) & (np.abs(resid) <= config.clip_sigma * sigma)
        if np.array_equal(new_good, good) or new_good.sum() <= config.fit_order + 1:
            break
        good = new_good
    return model


def subtract_overscan(
    raw: np.ndarray,
    camera: CameraModel,
    config: OverscanConfig | None = None,
    sections: Sections | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the per-row overscan level and trim to the light-sensitive area.

    Parameters
    ----------
    raw
        The raw frame.
    camera
        Camera definition (its geometry unless ``sections`` is given).
    config
        How the per-row level is estimated.
    sections
        The frame's own geometry (:func:`header_sections`), instead of the camera's.

    Returns
    -------
    image, vector
        The trimmed, overscan-subtracted image (float32, ADU) and the per-row level of
        the image rows.
    """
    raw = np.asarray(raw)
    if sections is None:
        expected = camera.overscan_columns
        if raw.ndim != 2 or raw.shape[1] <= expected:
            raise ValueError(
                f"raw frame of shape {raw.shape} has no room for {expected} overscan columns"
            )
        sections = Sections.of_camera(camera)
    vec = overscan_vector(raw[sections.overscan], config)
    rows = sections.image[0]
    first = (rows.start or 0) - (sections.overscan[0].start or 0)
    vec = vec[first : first + len(range(*rows.indices(raw.shape[0])))]
    img = raw[sections.image].astype(np.float32)
    img -= vec[:, None].astype(np.float32)
    return img, vec
