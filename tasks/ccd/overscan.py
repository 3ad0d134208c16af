"""Overscan correction and trimming of raw CCD frames."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.instruments.ccd_camera import CameraModel

__all__ = ["OverscanConfig", "overscan_vector", "subtract_overscan"]


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
    raw: np.ndarray, camera: CameraModel, config: OverscanConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the per-row overscan level and trim to the light-sensitive area.

    Returns
    -------
    image, vector
        The trimmed, overscan-subtracted image (float32, ADU) and the per-row level.
    """
    raw = np.asarray(raw)
    expected = camera.overscan_columns
    if raw.ndim != 2 or raw.shape[1] <= expected:
        raise ValueError(
            f"raw frame of shape {raw.shape} has no room for {expected} overscan columns"
        )
    vec = overscan_vector(raw[camera.overscan_slice()], config)
    img = raw[camera.image_slice()].astype(np.float32)
    img -= vec[:, None].astype(np.float32)
    return img, vec
