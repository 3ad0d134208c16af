"""Coded-mask geometry, the mask pattern and the shadow model shared by simulator and imaging.

Geometry (instrument frame of :mod:`svomflow.instruments.attitude`: ``X`` boresight, ``Y``/``Z``
detector axes): the detector plane of ``npix_y x npix_z`` square pixels of ``pitch_mm`` is
centred on the axis; the mask, ``n_elements x n_elements`` square elements of ``element_mm``,
is centred above it at ``height_mm``. A ray from detector point ``(y, z)`` towards a source at
projected angles ``(tan_y, tan_z)`` crosses the mask plane at
``(y + height * tan_y, z + height * tan_z)``: the source sees the mask pattern shifted by
``-height * tan`` on the detector.

Decisions (labelled, see the instrument file's ``assumptions``):

* The mask is thin and opaque where closed; open sky outside the mask is blocked by a side
  shield, as in real coded-mask telescopes, so the shielded part of the plane is dark for a
  partially coded source (no "open sky" around the mask).
* The shadow model is exact for a thin mask: the illuminated fraction of a pixel is the area
  overlap of the pixel, projected into the mask plane, with the open elements. Because pixels
  and elements are axis-aligned squares, the overlap is separable in Y and Z and the whole
  map is one small matrix product per direction (fractional-pixel shifts are exact).
* The counts a pixel receives also scale with ``cos(theta)`` (projection of its area
  perpendicular to the source direction), reported separately by :func:`cos_theta`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray
from svomflow.config import InstrumentDefinition
from svomflow.errors import ConfigError

__all__ = [
    "MaskGeometry",
    "PixelGridMask",
    "cos_theta",
    "diffuse_illumination",
    "mask_pattern",
    "pixel_grid_mask",
    "shadow",
]


@dataclass(frozen=True)
class MaskGeometry:
    """Numbers that define a coded-mask telescope (lengths in mm)."""

    npix_y: int
    npix_z: int
    pitch_mm: float
    n_elements: int
    element_mm: float
    height_mm: float
    open_fraction: float
    pattern_seed: int

    def __post_init__(self) -> None:
        if min(self.npix_y, self.npix_z, self.n_elements) <= 0:
            raise ConfigError("mask geometry: pixel and element counts must be positive")
        if min(self.pitch_mm, self.element_mm, self.height_mm) <= 0:
            raise ConfigError("mask geometry: pitch, element size and height must be positive")
        if not 0.0 < self.open_fraction < 1.0:
            raise ConfigError("mask.open_fraction must be in (0, 1)")

    @classmethod
    def from_instrument(cls, inst: InstrumentDefinition) -> MaskGeometry:
        """Build the geometry from an instrument definition (``mask.*``, ``detector_plane.*``)."""
        return cls(
            npix_y=int(inst.get("detector_plane.npix_y")),
            npix_z=int(inst.get("detector_plane.npix_z")),
            pitch_mm=float(inst.get("detector_plane.pixel_pitch_mm")),
            n_elements=int(inst.get("mask.n_elements")),
            element_mm=float(inst.get("mask.element_mm")),
            height_mm=float(inst.get("mask.height_mm")),
            open_fraction=float(inst.get("mask.open_fraction")),
            pattern_seed=int(inst.get("mask.pattern_seed")),
        )

    @property
    def pixel_area_cm2(self) -> float:
        """Area of one detector pixel in cm2."""
        return (self.pitch_mm / 10.0) ** 2

    @property
    def shape(self) -> tuple[int, int]:
        """Detector shape (npix_y, npix_z)."""
        return (self.npix_y, self.npix_z)

    def pixel_edges(self, axis: int) -> NDArray[np.float64]:
        """Return the pixel edges in mm along Y (axis 0) or Z (axis 1), centred on the axis."""
        n = self.npix_y if axis == 0 else self.npix_z
        return np.asarray((np.arange(n + 1) - n / 2.0) * self.pitch_mm, dtype=np.float64)

    @cached_property
    def element_edges(self) -> NDArray[np.float64]:
        """Mask element edges in mm (same along Y and Z), centred on the axis."""
        edges = (np.arange(self.n_elements + 1) - self.n_elements / 2.0) * self.element_mm
        return np.asarray(edges, dtype=np.float64)

    @property
    def resolution_tan(self) -> float:
        """Angular resolution (FWHM of the correlation peak) in projected-angle units."""
        return self.element_mm / self.height_mm

    def tan_to_shift(self, tan: ArrayLike) -> NDArray[np.float64]:
        """Convert projected angles to shadow shifts in pixel units."""
        return np.asarray(tan, dtype=np.float64) * self.height_mm / self.pitch_mm

    def shift_to_tan(self, shift: ArrayLike) -> NDArray[np.float64]:
        """Convert shadow shifts in pixel units to projected angles."""
        return np.asarray(shift, dtype=np.float64) * self.pitch_mm / self.height_mm


def mask_pattern(geometry: MaskGeometry) -> NDArray[np.bool_]:
    """Return the mask pattern (True = open), rebuilt from ``geometry.pattern_seed``.

    Exactly ``round(open_fraction * n_elements**2)`` elements are open, drawn uniformly at
    random (a stand-in for the real, non-public pattern).
    """
    n = geometry.n_elements
    n_open = round(geometry.open_fraction * n * n)
    rng = np.random.default_rng(geometry.pattern_seed)
    flat = np.zeros(n * n, dtype=bool)
    flat[rng.permutation(n * n)[:n_open]] = True
    return flat.reshape(n, n)


def _overlap_matrix(
    cell_lo: NDArray[np.float64], width: float, edges: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Return the fractional overlap of cells [lo, lo+width] with intervals between ``edges``.

    ``cell_lo`` may have any leading shape; the result has shape ``cell_lo.shape + (n,)``.
    """
    lo = cell_lo[..., None]
    hi = lo + width
    ov = np.minimum(hi, edges[1:]) - np.maximum(lo, edges[:-1])
    return np.clip(ov, 0.0, None) / width


def shadow(
    geometry: MaskGeometry,
    pattern: NDArray[np.bool_],
    tan_y: ArrayLike,
    tan_z: ArrayLike,
) -> NDArray[np.float64]:
    """Return the illuminated fraction of every detector pixel for a source direction.

    Parameters
    ----------
    geometry, pattern
        Mask geometry and pattern (``pattern[a, b]``, ``a`` along Y, ``b`` along Z).
    tan_y, tan_z
        Projected angles of the source; scalars or arrays of equal shape ``S``.

    Returns
    -------
    ndarray
        Shape ``S + (npix_y, npix_z)``: the fraction (0..1) of each pixel's area that sees
        the source through open elements. Shielded parts (line of sight outside the mask)
        count as dark. Multiply by ``cos_theta`` and the pixel area for a collecting area.
    """
    ty = np.asarray(tan_y, dtype=np.float64)
    tz = np.asarray(tan_z, dtype=np.float64)
    if ty.shape != tz.shape:
        raise ValueError("tan_y and tan_z must have the same shape")
    if np.any(~np.isfinite(ty)) or np.any(~np.isfinite(tz)):
        raise ValueError("projected angles must be finite (source behind the detector plane?)")
    h, p = geometry.height_mm, geometry.pitch_mm
    ey = geometry.pixel_edges(0)[:-1]
    ez = geometry.pixel_edges(1)[:-1]
    oy = _overlap_matrix(ey + h * ty[..., None], p, geometry.element_edges)  # S, ny, n
    oz = _overlap_matrix(ez + h * tz[..., None], p, geometry.element_edges)  # S, nz, n
    m = pattern.astype(np.float64)
    return np.matmul(np.matmul(oy, m), np.swapaxes(oz, -1, -2))


def cos_theta(tan_y: ArrayLike, tan_z: ArrayLike) -> NDArray[np.float64]:
    """Return the cosine of the off-axis angle for projected angles."""
    ty = np.asarray(tan_y, dtype=np.float64)
    tz = np.asarray(tan_z, dtype=np.float64)
    return 1.0 / np.sqrt(1.0 + ty * ty + tz * tz)


@dataclass(frozen=True)
class PixelGridMask:
    """The mask resampled on pixel-size cells aligned with the detector grid.

    For an integer shadow shift ``(sy, sz)`` (pixels), the shadow on pixel ``(i, j)`` is
    ``values[i + sy - k0, j + sz - k0]``: every integer-shift shadow is a window of this one
    array, which makes sky imaging a cross-correlation (FFT).
    """

    values: NDArray[np.float64]
    k0_y: int
    k0_z: int

    def shifts(self, axis: int, npix: int) -> NDArray[np.int64]:
        """Return the integer shifts along an axis for which any pixel sees the mask cells."""
        k0 = self.k0_y if axis == 0 else self.k0_z
        n = self.values.shape[axis]
        return np.arange(k0 - (npix - 1), k0 + n, dtype=np.int64)


def pixel_grid_mask(geometry: MaskGeometry, pattern: NDArray[np.bool_]) -> PixelGridMask:
    """Return the mask sampled on detector-aligned pixel cells (see :class:`PixelGridMask`)."""
    half = geometry.n_elements * geometry.element_mm / 2.0
    p = geometry.pitch_mm
    mats = []
    k0s = []
    for axis in (0, 1):
        det_lo = geometry.pixel_edges(axis)[0]
        k0 = int(np.floor((-half - det_lo) / p))
        k1 = int(np.ceil((half - det_lo) / p))
        cells = det_lo + np.arange(k0, k1) * p
        mats.append(_overlap_matrix(cells, p, geometry.element_edges))
        k0s.append(k0)
    values = mats[0] @ pattern.astype(np.float64) @ mats[1].T
    return PixelGridMask(values=values, k0_y=k0s[0], k0_z=k0s[1])


def diffuse_illumination(
    geometry: MaskGeometry, pattern: NDArray[np.bool_], *, tan_max: float = 6.0
) -> NDArray[np.float64]:
    """Return each pixel's exposure to an isotropic sky, as a fraction of a bare pixel's.

    A bare pixel under an isotropic radiance ``I`` receives ``I * A * pi``
    (the integral of ``cos(theta)`` over the hemisphere). Behind the mask it receives
    ``I * A * integral(shadow * cos(theta) dOmega)``; this function returns that integral
    divided by ``pi``. The integral runs over integer pixel shifts, where the shadow is
    exact and varies linearly in between (pixel-size cells), so the sum is a trapezoid rule;
    ``cos(theta) dOmega = dtan_y dtan_z / (1 + tan^2)^2``.
    """
    grid = pixel_grid_mask(geometry, pattern)
    sy = grid.shifts(0, geometry.npix_y)
    sz = grid.shifts(1, geometry.npix_z)
    ty = geometry.shift_to_tan(sy)
    tz = geometry.shift_to_tan(sz)
    if max(np.abs(ty).max(), np.abs(tz).max()) > tan_max:
        raise ConfigError("mask geometry: field wider than tan_max; diffuse integral unsafe")
    step = geometry.pitch_mm / geometry.height_mm
    w = step * step / (1.0 + ty[:, None] ** 2 + tz[None, :] ** 2) ** 2
    from svomflow.instruments.correlation import correlate_full

    # exposure[i] = sum_a w[a] * values[i + a - (npix - 1)] (shift index a, cell i + s - k0):
    # the full correlation out[m] = sum_a w[a] values[a + m - (n_shifts - 1)] at m = i + L - 1.
    full = correlate_full(w, grid.values)
    ly, lz = grid.values.shape
    ny, nz = geometry.shape
    return full[ly - 1 : ly - 1 + ny, lz - 1 : lz - 1 + nz] / np.pi
