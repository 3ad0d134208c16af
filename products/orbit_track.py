"""The spacecraft's ground track in L1 event files (``ORBIT`` extension) and SAA time from it.

An ECLAIRs L1 file may carry the orbit position next to the attitude: an ``ORBIT`` table
(``TIME`` mission s, ``LON``/``LAT`` geographic deg, ``ALT`` km) sampled every few seconds.
With the SAA contour of the CALDB (``SAACONT``, :class:`~svomflow.products.eic_saa_files.SaaContour`),
:func:`saa_intervals` gives the time spent inside the SAA, which the event reader takes out
of the good time intervals (:func:`subtract_intervals`): the same rule as the gap labels of
:func:`svomflow.tasks.eic.saa.label_gaps`, point by point on the track.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.products.eic_saa_files import SaaContour
from svomflow.products.ogip import MALFORMED_FILE_ERRORS

__all__ = ["ORBIT_EXTNAME", "OrbitTrack", "orbit_hdu", "read_orbit_track", "saa_intervals",
           "subtract_intervals"]  # fmt: skip

ORBIT_EXTNAME = "ORBIT"


@dataclass(frozen=True)
class OrbitTrack:
    """Ground track samples: mission time (s), longitude and latitude (deg), altitude (km)."""

    time: NDArray[np.float64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    alt_km: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = self.time.size
        if not (self.lon.size == self.lat.size == self.alt_km.size == n) or n < 2:
            raise InputDataError("ORBIT: TIME, LON, LAT, ALT need one value each, 2 rows or more")
        if np.any(np.diff(self.time) <= 0) or not np.all(np.isfinite(self.time)):
            raise InputDataError("ORBIT: TIME must increase")

    def at(self, t: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return (longitude, latitude) at times ``t``, interpolated (longitude unwrapped)."""
        lon = np.unwrap(np.radians(self.lon))
        x = np.degrees(np.interp(t, self.time, lon))
        return (x + 180.0) % 360.0 - 180.0, np.interp(t, self.time, self.lat)


def orbit_hdu(track: OrbitTrack, cards: Sequence[tuple[str, object, str]] = ()) -> fits.BinTableHDU:
    """Return the ``ORBIT`` table of an L1 file (``cards``: the time reference)."""
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("TIME", "D", unit="s", array=track.time),
            fits.Column("LON", "D", unit="deg", array=track.lon),
            fits.Column("LAT", "D", unit="deg", array=track.lat),
            fits.Column("ALT", "D", unit="km", array=track.alt_km),
        ],
        name=ORBIT_EXTNAME,
    )
    for key, value, comment in cards:
        hdu.header[key] = (value, comment)
    hdu.header["COMMENT"] = "spacecraft ground track (geographic deg) and altitude"
    return hdu


def read_orbit_track(path: str | Path) -> OrbitTrack | None:
    """Return the ``ORBIT`` table of a file, or None when it has none."""
    try:
        with fits.open(path) as hdul:
            if ORBIT_EXTNAME not in hdul:
                return None
            d = hdul[ORBIT_EXTNAME].data
            return OrbitTrack(
                np.asarray(d["TIME"], np.float64),
                np.asarray(d["LON"], np.float64),
                np.asarray(d["LAT"], np.float64),
                np.asarray(d["ALT"], np.float64),
            )
    except KeyError as exc:
        raise InputDataError(f"{path}: ORBIT lacks a column ({exc})") from None
    except MALFORMED_FILE_ERRORS as exc:
        raise InputDataError(f"{path}: cannot read ORBIT ({type(exc).__name__}: {exc})") from exc


def saa_intervals(
    track: OrbitTrack, contour: SaaContour, *, step_s: float = 1.0
) -> NDArray[np.float64]:
    """Return the (N, 2) mission-time intervals the track spends inside the contour.

    The track is sampled every ``step_s`` (interpolated) over its span; each interval runs
    from the first sample inside to the first sample outside (to ``step_s`` accuracy).
    """
    t = np.arange(track.time[0], track.time[-1] + step_s, step_s)
    t = t[t <= track.time[-1]]
    lon, lat = track.at(t)
    inside = contour.contains(lon, lat)
    lo, hi = contour.lat_range_deg
    inside &= (lat >= lo) & (lat <= hi)  # beyond the latitudes measured the contour says nothing
    edges = np.diff(np.concatenate([[0], inside.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    ends = np.append(t, t[-1])[stops]
    return np.column_stack([t[starts], ends]).astype(np.float64).reshape(-1, 2)


def subtract_intervals(gti: NDArray[np.float64], cut: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the good time intervals ``gti`` minus the intervals ``cut`` (both (N, 2))."""
    out = [tuple(g) for g in np.asarray(gti, float).reshape(-1, 2)]
    for a, b in np.asarray(cut, float).reshape(-1, 2):
        nxt = []
        for s, e in out:
            if b <= s or a >= e:
                nxt.append((s, e))
                continue
            if a > s:
                nxt.append((s, a))
            if b < e:
                nxt.append((b, e))
        out = nxt
    return np.asarray(out, np.float64).reshape(-1, 2)
