"""Attitude geometry: sky directions <-> instrument frame, shared by simulators and pipelines.

Conventions (used everywhere in svomflow):

* The instrument frame is right-handed, ``X`` along the boresight, ``Y`` and ``Z`` in the
  detector plane (ECLAIRs pixel axes Y and Z; MXT RAWX along Y, RAWY along Z).
* An :class:`Attitude` gives the boresight (``ra``, ``dec``) and the ``roll``: the position
  angle of the instrument ``+Z`` axis on the sky, from celestial north through east.
* Projected angles ``(tan_y, tan_z) = (y/x, z/x)`` are what a coded mask or a focusing
  optic maps linearly onto the detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Attitude", "angular_separation_deg", "radec_to_unit", "unit_to_radec"]


def radec_to_unit(ra_deg: ArrayLike, dec_deg: ArrayLike) -> NDArray[np.float64]:
    """Return equatorial unit vectors, shape (..., 3), for right ascension and declination."""
    ra = np.radians(np.asarray(ra_deg, dtype=np.float64))
    dec = np.radians(np.asarray(dec_deg, dtype=np.float64))
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def unit_to_radec(vec: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return (ra, dec) in degrees (ra in [0, 360)) for vectors of shape (..., 3)."""
    v = np.asarray(vec, dtype=np.float64)
    norm = np.linalg.norm(v, axis=-1)
    ra = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(v[..., 2] / norm, -1.0, 1.0)))
    return ra, dec


def angular_separation_deg(
    ra1: ArrayLike, dec1: ArrayLike, ra2: ArrayLike, dec2: ArrayLike
) -> NDArray[np.float64]:
    """Return the great-circle distance in degrees (Vincenty formula, exact at all scales)."""
    a1, d1, a2, d2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (ra1, dec1, ra2, dec2))
    dra = a2 - a1
    num = np.hypot(
        np.cos(d2) * np.sin(dra), np.cos(d1) * np.sin(d2) - np.sin(d1) * np.cos(d2) * np.cos(dra)
    )
    den = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(dra)
    return np.degrees(np.arctan2(num, den))


@dataclass(frozen=True)
class Attitude:
    """Pointing of an instrument: boresight (ra, dec) and roll (PA of +Z, north through east)."""

    ra_deg: float
    dec_deg: float
    roll_deg: float = 0.0

    def matrix(self) -> NDArray[np.float64]:
        """Return the 3x3 rotation whose rows are the instrument X, Y, Z axes (equatorial)."""
        ra, dec, roll = np.radians([self.ra_deg, self.dec_deg, self.roll_deg])
        x = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
        east = np.array([-np.sin(ra), np.cos(ra), 0.0])
        north = np.array([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)])
        z = north * np.cos(roll) + east * np.sin(roll)
        y = np.cross(z, x)
        return np.vstack([x, y, z])

    def to_instrument(self, ra_deg: ArrayLike, dec_deg: ArrayLike) -> NDArray[np.float64]:
        """Return instrument-frame unit vectors (..., 3) of sky directions."""
        return radec_to_unit(ra_deg, dec_deg) @ self.matrix().T

    def to_sky(self, vec: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return (ra, dec) in degrees of instrument-frame vectors (..., 3)."""
        return unit_to_radec(np.asarray(vec, dtype=np.float64) @ self.matrix())

    def to_projected(
        self, ra_deg: ArrayLike, dec_deg: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return projected angles (tan_y, tan_z) = (y/x, z/x); NaN behind the boresight plane."""
        v = self.to_instrument(ra_deg, dec_deg)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(v[..., 0] > 0, v[..., 0], np.nan)
            return v[..., 1] / x, v[..., 2] / x

    def from_projected(
        self, tan_y: ArrayLike, tan_z: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return (ra, dec) in degrees of projected angles (tan_y, tan_z)."""
        ty = np.asarray(tan_y, dtype=np.float64)
        tz = np.asarray(tan_z, dtype=np.float64)
        v = np.stack([np.ones_like(ty), ty, tz], axis=-1)
        return self.to_sky(v / np.linalg.norm(v, axis=-1, keepdims=True))

    def off_axis_deg(self, ra_deg: ArrayLike, dec_deg: ArrayLike) -> NDArray[np.float64]:
        """Return the angle in degrees between the boresight and sky directions."""
        return angular_separation_deg(self.ra_deg, self.dec_deg, ra_deg, dec_deg)
