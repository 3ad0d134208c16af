"""Known sources in a coded-mask field: which ones the detector sees, and their shadows.

A steady bright source in the field adds its shadow (illuminated fraction per pixel) to every
interval's counts. Imaging removes it by fitting that shadow as a template
(:func:`~svomflow.tasks.coded_mask.imaging.sky_image`); mask weighting cancels it by making the
weights orthogonal to it (:func:`~svomflow.tasks.coded_mask.mask_weighting.mask_weights`,
``templates``). Both need the shadows of the sources that reach the usable pixels at the
attitude, which this module finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry, shadow

__all__ = ["FieldSource", "angular_separation_deg", "sources_in_field"]


@dataclass(frozen=True)
class FieldSource:
    """A known source that the usable pixels see through the mask.

    Attributes
    ----------
    name, ra_deg, dec_deg
        Catalog name and J2000 position (deg).
    tan_y, tan_z
        Projected angles at the attitude.
    lit_pixels
        ``sum(shadow * usable)``: illumination in fully illuminated pixel equivalents.
    coding_fraction
        ``lit_pixels / (open_fraction * n_usable)`` (1 in the fully coded field).
    shadow
        ``(ny, nz)`` illuminated fraction of each pixel.
    """

    name: str
    ra_deg: float
    dec_deg: float
    tan_y: float
    tan_z: float
    lit_pixels: float
    coding_fraction: float
    shadow: NDArray[np.float64]


def angular_separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Return the angle between two sky directions (deg)."""
    r1, d1, r2, d2 = np.radians([ra1, dec1, ra2, dec2])
    c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r1 - r2)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def sources_in_field(
    sources: Sequence[tuple[str, float, float]],
    attitude: Attitude,
    geometry: MaskGeometry,
    pattern: NDArray[np.bool_],
    *,
    usable: NDArray[np.bool_] | None = None,
) -> list[FieldSource]:
    """Return the sources ``(name, ra_deg, dec_deg)`` whose shadow reaches a usable pixel.

    A source behind the detector plane, or whose line of sight through the open elements
    misses every usable pixel (coding fraction 0, outside the field), is left out.
    """
    use = np.ones(geometry.shape, dtype=bool) if usable is None else np.asarray(usable, bool)
    n_usable = int(use.sum())
    out: list[FieldSource] = []
    if n_usable == 0:
        return out
    for name, ra, dec in sources:
        ty, tz = attitude.to_projected(float(ra), float(dec))
        if not (np.isfinite(ty) and np.isfinite(tz)):
            continue
        sh = shadow(geometry, pattern, float(ty), float(tz))
        lit = float(np.sum(sh[use]))
        if lit <= 0:
            continue
        out.append(
            FieldSource(
                name=str(name),
                ra_deg=float(ra),
                dec_deg=float(dec),
                tan_y=float(ty),
                tan_z=float(tz),
                lit_pixels=lit,
                coding_fraction=lit / (geometry.open_fraction * n_usable),
                shadow=sh,
            )
        )
    return out
