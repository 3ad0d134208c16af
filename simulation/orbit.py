"""Orbit, SAA passages, Earth occultation, background modulation and known bright sources.

A circular orbit (625 km, 30 deg: SCIENCE.md §1) in the equatorial inertial frame, with the
Earth rotating underneath for the ground track. The numbers live in
``config/scenarios/_orbit.yaml``; the SAA contour there is an assumption (a polygon around the
published low-Earth-orbit proton contour). Times are mission seconds.

Public functions for the instrument simulators:

* :func:`saa_intervals` — (N, 2) start/stop of SAA passages (detectors off);
* :func:`earth_occulted_fraction` / :func:`background_modulation` — the fraction of a field
  hidden by the Earth and the resulting background factor ``1 - amplitude * fraction``;
* :func:`source_visible` — whether a sky direction is above the Earth's limb;
* :func:`data_gaps` / :func:`good_time_intervals` — gaps labelled SAA / EARTH / TELEMETRY;
* :func:`bright_source_photons` — photon lists of known X-ray sources inside a field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

import numpy as np
import yaml
from numpy.typing import ArrayLike, NDArray
from svomflow.instruments.attitude import Attitude, radec_to_unit
from svomflow.instruments.spectra import Spectrum, sample_energies
from svomflow.simulation.photons import PhotonList

__all__ = [
    "Gap",
    "Orbit",
    "background_modulation",
    "bright_source_photons",
    "data_gaps",
    "earth_occulted_fraction",
    "good_time_intervals",
    "intervals_from_mask",
    "load_bright_sources",
    "load_orbit",
    "orbit_facing",
    "saa_intervals",
    "source_visible",
]

GM_EARTH_KM3_S2 = 398600.4418
EARTH_ROTATION_RAD_S = 7.2921159e-5


@dataclass(frozen=True)
class Orbit:
    """A circular orbit with its SAA polygon (angles in degrees, times in mission seconds)."""

    altitude_km: float = 625.0
    inclination_deg: float = 30.0
    earth_radius_km: float = 6371.0
    atmosphere_km: float = 100.0
    raan_deg: float = 0.0
    argument_of_latitude_deg: float = 0.0
    gmst_deg: float = 0.0
    saa_polygon_lon_lat_deg: tuple[tuple[float, float], ...] = field(default_factory=tuple)
    telemetry_gap_every_s: float = 5800.0
    telemetry_gap_length_s: float = 300.0
    telemetry_gap_phase_s: float = 2400.0

    @property
    def radius_km(self) -> float:
        """Return the orbit radius from the Earth's centre."""
        return self.earth_radius_km + self.altitude_km

    @property
    def period_s(self) -> float:
        """Return the orbital period (Kepler's third law)."""
        return float(2 * np.pi * np.sqrt(self.radius_km**3 / GM_EARTH_KM3_S2))

    @property
    def earth_angular_radius_deg(self) -> float:
        """Return the angular radius of the Earth plus atmosphere seen from the spacecraft."""
        return float(
            np.degrees(np.arcsin((self.earth_radius_km + self.atmosphere_km) / self.radius_km))
        )

    def position(self, times: ArrayLike) -> NDArray[np.float64]:
        """Return unit vectors (..., 3) of the spacecraft position in the inertial frame."""
        t = np.asarray(times, dtype=np.float64)
        u = np.radians(self.argument_of_latitude_deg) + 2 * np.pi * t / self.period_s
        inc = np.radians(self.inclination_deg)
        om = np.radians(self.raan_deg)
        x_p, y_p = np.cos(u), np.sin(u)
        # Rotate the orbital plane by the inclination about X, then by the RAAN about Z.
        x1, y1, z1 = x_p, y_p * np.cos(inc), y_p * np.sin(inc)
        return np.stack(
            [x1 * np.cos(om) - y1 * np.sin(om), x1 * np.sin(om) + y1 * np.cos(om), z1], axis=-1
        )

    def ground_track(self, times: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return geographic longitude ([-180, 180)) and latitude in degrees."""
        t = np.asarray(times, dtype=np.float64)
        p = self.position(t)
        lon = np.degrees(np.arctan2(p[..., 1], p[..., 0])) - (
            self.gmst_deg + np.degrees(EARTH_ROTATION_RAD_S * t)
        )
        lon = (lon + 180.0) % 360.0 - 180.0
        return lon, np.degrees(np.arcsin(np.clip(p[..., 2], -1, 1)))

    def in_saa(self, times: ArrayLike) -> NDArray[np.bool_]:
        """Return whether the spacecraft is inside the SAA polygon."""
        lon, lat = self.ground_track(times)
        return _point_in_polygon(lon, lat, np.asarray(self.saa_polygon_lon_lat_deg, float))


def load_orbit(**overrides: Any) -> Orbit:
    """Return the packaged orbit (``_orbit.yaml``) with keyword overrides."""
    path = resources.files("svomflow.config") / "scenarios" / "_orbit.yaml"
    data = yaml.safe_load(path.read_text())
    data["saa_polygon_lon_lat_deg"] = tuple(tuple(p) for p in data["saa_polygon_lon_lat_deg"])
    orbit = Orbit(**data)
    unknown = set(overrides) - set(Orbit.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown orbit keys: {', '.join(sorted(unknown))}")
    return replace(orbit, **overrides)


def _point_in_polygon(
    x: NDArray[np.float64], y: NDArray[np.float64], poly: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Even-odd ray casting, vectorised over points (loop over the few polygon edges)."""
    inside = np.zeros(np.shape(x), dtype=bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_cross)
    return inside


def intervals_from_mask(times: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray:
    """Return (N, 2) intervals where ``mask`` is true on a regular time grid (edges at midpoints)."""
    if times.size == 0 or not mask.any():
        return np.empty((0, 2))
    m = mask.astype(np.int8)
    d = np.diff(np.concatenate([[0], m, [0]]))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    half = 0.5 * (times[1] - times[0]) if times.size > 1 else 0.0
    lo = np.maximum(times[starts] - half, times[0])
    hi = np.minimum(times[stops] + half, times[-1])
    return np.column_stack([lo, hi])


def _grid(t_start: float, t_stop: float, step_s: float) -> NDArray[np.float64]:
    if t_stop <= t_start:
        raise ValueError("t_stop must be after t_start")
    n = max(int(np.ceil((t_stop - t_start) / step_s)), 1) + 1
    return np.linspace(t_start, t_stop, n)


def saa_intervals(
    t_start: float, t_stop: float, *, orbit: Orbit | None = None, step_s: float = 5.0
) -> NDArray[np.float64]:
    """Return the SAA passages between ``t_start`` and ``t_stop`` as (N, 2) start/stop times."""
    orbit = orbit or load_orbit()
    t = _grid(t_start, t_stop, step_s)
    return intervals_from_mask(t, orbit.in_saa(t))


def _cap_directions(half_angle_deg: float, n: int = 400) -> NDArray[np.float64]:
    """Fibonacci-spiral directions (n, 3) filling a cone about +X evenly in solid angle."""
    i = np.arange(n) + 0.5
    cos_max = np.cos(np.radians(half_angle_deg))
    cos_t = 1.0 - (1.0 - cos_max) * i / n
    phi = np.pi * (1 + 5**0.5) * i
    sin_t = np.sqrt(1 - cos_t**2)
    return np.column_stack([cos_t, sin_t * np.cos(phi), sin_t * np.sin(phi)])


def earth_occulted_fraction(
    times: ArrayLike,
    *,
    attitude: Attitude,
    field_half_angle_deg: float,
    orbit: Orbit | None = None,
    step_s: float = 2.0,
) -> NDArray[np.float64]:
    """Return the fraction of a conical field (about the boresight) hidden by the Earth.

    Evaluated on a ``step_s`` grid and interpolated, so it is cheap for millions of times.
    """
    orbit = orbit or load_orbit()
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return np.empty(0)
    grid = _grid(float(t.min()), float(t.max()) + 1e-9, step_s)
    dirs = _cap_directions(field_half_angle_deg) @ attitude.matrix()  # to equatorial
    nadir = -orbit.position(grid)
    cos_rho = np.cos(np.radians(orbit.earth_angular_radius_deg))
    frac = ((nadir @ dirs.T) > cos_rho).mean(axis=1)
    return np.interp(t, grid, frac)


def background_modulation(
    times: ArrayLike,
    *,
    attitude: Attitude,
    amplitude: float,
    field_half_angle_deg: float,
    orbit: Orbit | None = None,
) -> NDArray[np.float64]:
    """Return the background factor ``1 - amplitude * (Earth-occulted fraction of the field)``.

    ``amplitude`` is the instrument's ``background.earth_modulation_fraction``: the relative
    drop of the background when the Earth fills the field.
    """
    if not 0 <= amplitude <= 1:
        raise ValueError("amplitude must be within [0, 1]")
    frac = earth_occulted_fraction(
        times, attitude=attitude, field_half_angle_deg=field_half_angle_deg, orbit=orbit
    )
    return 1.0 - amplitude * frac


def source_visible(
    times: ArrayLike, ra_deg: float, dec_deg: float, *, orbit: Orbit | None = None
) -> NDArray[np.bool_]:
    """Return whether a sky direction is above the Earth's limb (plus atmosphere)."""
    orbit = orbit or load_orbit()
    t = np.asarray(times, dtype=np.float64)
    cos_rho = np.cos(np.radians(orbit.earth_angular_radius_deg))
    return (-orbit.position(t) @ radec_to_unit(ra_deg, dec_deg)) <= cos_rho


@dataclass(frozen=True)
class Gap:
    """A data gap with its cause (``SAA``, ``EARTH``, ``TELEMETRY`` or ``SLEW``)."""

    start: float
    stop: float
    cause: str


def data_gaps(
    t_start: float,
    t_stop: float,
    *,
    attitude: Attitude | None = None,
    orbit: Orbit | None = None,
    earth_limit_fraction: float | None = None,
    field_half_angle_deg: float = 0.5,
    telemetry: bool = False,
    step_s: float = 5.0,
) -> list[Gap]:
    """Return the data gaps in [t_start, t_stop], labelled by cause and sorted by start.

    SAA passages always; Earth gaps when ``earth_limit_fraction`` is given (times when more
    than that fraction of the field is occulted; a narrow field such as MXT's uses the
    boresight with 0.5); telemetry gaps from the orbit's periodic downlink pattern.
    """
    orbit = orbit or load_orbit()
    gaps = [
        Gap(float(a), float(b), "SAA")
        for a, b in saa_intervals(t_start, t_stop, orbit=orbit, step_s=step_s)
    ]
    if earth_limit_fraction is not None:
        if attitude is None:
            raise ValueError("Earth gaps need an attitude")
        t = _grid(t_start, t_stop, step_s)
        frac = earth_occulted_fraction(
            t,
            attitude=attitude,
            field_half_angle_deg=field_half_angle_deg,
            orbit=orbit,
            step_s=step_s,
        )
        gaps += [
            Gap(float(a), float(b), "EARTH")
            for a, b in intervals_from_mask(t, frac > earth_limit_fraction)
        ]
    if telemetry:
        every, length = orbit.telemetry_gap_every_s, orbit.telemetry_gap_length_s
        k0 = int(np.floor((t_start - orbit.telemetry_gap_phase_s) / every))
        k1 = int(np.ceil((t_stop - orbit.telemetry_gap_phase_s) / every))
        for k in range(k0, k1 + 1):
            a = orbit.telemetry_gap_phase_s + k * every
            lo, hi = max(a, t_start), min(a + length, t_stop)
            if hi > lo:
                gaps.append(Gap(lo, hi, "TELEMETRY"))
    return sorted(gaps, key=lambda g: (g.start, g.stop))


def good_time_intervals(t_start: float, t_stop: float, gaps: list[Gap]) -> NDArray[np.float64]:
    """Return (N, 2) GTIs: [t_start, t_stop] minus the union of the gaps."""
    gti = []
    cursor = t_start
    for g in sorted(gaps, key=lambda g: g.start):
        if g.start > cursor:
            gti.append((cursor, min(g.start, t_stop)))
        cursor = max(cursor, g.stop)
        if cursor >= t_stop:
            break
    if cursor < t_stop:
        gti.append((cursor, t_stop))
    return np.array([(a, b) for a, b in gti if b > a]).reshape(-1, 2)


# ----------------------------------------------------------------- known bright sources
@dataclass(frozen=True)
class BrightSource:
    """A persistent X-ray source with a constant spectrum."""

    name: str
    ra_deg: float
    dec_deg: float
    spectrum: Spectrum


def load_bright_sources() -> list[BrightSource]:
    """Return the packaged known sources (``_bright_sources.yaml``), spectra normalised."""
    path = resources.files("svomflow.config") / "scenarios" / "_bright_sources.yaml"
    out = []
    for s in yaml.safe_load(path.read_text())["sources"]:
        shape = Spectrum(**{**s["spectrum"], "k": 1.0})
        lo, hi = s["flux_band_kev"]
        k = s["energy_flux_erg_cm2_s"] / shape.energy_flux(lo, hi)
        out.append(BrightSource(s["name"], s["ra_deg"], s["dec_deg"], shape.with_k(k)))
    return out


def bright_source_photons(
    rng: np.random.Generator,
    *,
    attitude: Attitude,
    t_start: float,
    t_stop: float,
    area_cm2: float,
    e_min_kev: float,
    e_max_kev: float,
    field_half_angle_deg: float,
    orbit: Orbit | None = None,
) -> list[PhotonList]:
    """Return photon lists of the known sources within ``field_half_angle_deg`` of the boresight.

    Photons hidden by the Earth (when ``orbit`` is given) are removed.
    """
    out = []
    for src in load_bright_sources():
        if attitude.off_axis_deg(src.ra_deg, src.dec_deg) > field_half_angle_deg:
            continue
        rate = src.spectrum.photon_flux(e_min_kev, e_max_kev) * area_cm2
        n = int(rng.poisson(rate * (t_stop - t_start)))
        times = np.sort(rng.uniform(t_start, t_stop, n))
        energies = sample_energies(rng, src.spectrum, n, e_min=e_min_kev, e_max=e_max_kev)
        pl = PhotonList(times, energies, src.ra_deg, src.dec_deg, area_cm2, src.name)
        if orbit is not None and n:
            pl = pl.thin(source_visible(times, src.ra_deg, src.dec_deg, orbit=orbit))
        out.append(pl)
    return out


def orbit_facing(orbit: Orbit, time: float, ra_deg: float, dec_deg: float) -> Orbit:
    """Return ``orbit`` phased to put the spacecraft nearest (ra, dec) at ``time``.

    The Earth is then behind the instrument (zenith pointing).
    """
    v = radec_to_unit(ra_deg, dec_deg)
    om, inc = np.radians(orbit.raan_deg), np.radians(orbit.inclination_deg)
    a = np.array([np.cos(om), np.sin(om), 0.0])
    b = np.array([-np.sin(om) * np.cos(inc), np.cos(om) * np.cos(inc), np.sin(inc)])
    u_star = np.arctan2(b @ v, a @ v)
    u0 = u_star - 2 * np.pi * time / orbit.period_s
    return replace(orbit, argument_of_latitude_deg=float(np.degrees(u0) % 360.0))
