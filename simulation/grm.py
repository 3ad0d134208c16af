"""GRM simulator: photons folded through the NaI response per detector, events with dead time.

Per detector (three GRDs with the orientations of ``config/instruments/grm.yaml``):

1. source photons (:class:`PhotonList`, drawn on ``n_detectors x 200 cm2``) are split at random
   among the detectors (each gets an independent Poisson stream on its 200 cm2), kept with
   probability ``A(E, theta) / 200 cm2`` (projected area x interaction probability) and given a
   deposited energy by the physics of :mod:`svomflow.instruments.grm_response` (photo-absorption,
   iodine K escape, Compton scatter with escape of the scattered photon);
2. background events at ``background.rate_per_detector_s`` with a power-law deposit spectrum
   (``background.spectral_index``), modulated by the Earth in the field along the orbit;
3. Am-241 calibration line events at ``crystal.calibration_line_kev``;
4. Gaussian resolution, PI channels (first channel lost below, last = overflow), detectors off
   in the SAA, and a non-paralyzable dead time (``dead_time_s``): events within the dead window
   of the last recorded event are dropped; LIVETIME/DEADTIME keywords record it.

The L1 file has one ``EVENTS`` extension per detector (``EXTVER`` 1..3, ``DETNAM``), one
``EBOUNDS`` and one ``GTI`` (docs/formats.md, "GRM events").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.config.instrument import InstrumentDefinition, load_instrument
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.grm_response import (
    ELECTRON_MASS_KEV,
    IODINE_K_ALPHA_KEV,
    GRMGeometry,
    compton_fraction,
    detector_axes,
    k_escape_fraction,
    klein_nishina_shape,
)
from svomflow.products.ogip import TimeReference, ebounds_hdu, gti_hdu, primary_hdu, write_hdulist
from svomflow.simulation._kernels import nonparalyzable_deadtime
from svomflow.simulation.orbit import (
    Gap,
    Orbit,
    background_modulation,
    good_time_intervals,
    saa_intervals,
    source_visible,
)
from svomflow.simulation.photons import PhotonList

__all__ = [
    "GRMDetectorEvents",
    "GRMSimulation",
    "deposit_energies",
    "grm_photon_area",
    "simulate_grm",
    "write_grm_l1",
]


def grm_photon_area(instrument: InstrumentDefinition | None = None) -> float:
    """Return the area (cm2) to draw source photons on: one crystal area per detector."""
    inst = instrument or load_instrument("grm")
    return float(inst.get("crystal.area_cm2")) * len(inst.get("detectors"))


@dataclass
class GRMDetectorEvents:
    """Recorded events of one GRM detector and their bookkeeping."""

    name: str
    time: NDArray[np.float64]
    pi: NDArray[np.int16]
    origin: NDArray[np.int8]  # 0 source, 1 background, 2 calibration line (truth only)
    ontime: float
    n_deadtime_lost: int
    dead_time_s: float
    axis: NDArray[np.float64]

    @property
    def livetime(self) -> float:
        """Return the live time: on-time minus one dead window per recorded event."""
        return float(self.ontime - self.time.size * self.dead_time_s)


@dataclass
class GRMSimulation:
    """Output of :func:`simulate_grm`: events per detector, GTIs, channel bounds and truth."""

    detectors: dict[str, GRMDetectorEvents]
    gti: NDArray[np.float64]
    channel_edges_kev: NDArray[np.float64]
    t_start: float
    t_stop: float
    gaps: list[Gap] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)


def deposit_energies(
    rng: np.random.Generator, energies_kev: NDArray[np.float64], geom: GRMGeometry
) -> NDArray[np.float64]:
    """Draw the energy deposited by interacting photons (before resolution smearing).

    Vectorised; the Klein-Nishina angle is drawn by rejection in rounds over the photons
    still pending (not a loop over photons).
    """
    e = np.asarray(energies_kev, dtype=np.float64)
    n = e.size
    deposit = e.copy()
    is_compton = rng.random(n) < compton_fraction(e)
    absorbed = ~is_compton
    escape = absorbed & (rng.random(n) < k_escape_fraction(e))
    deposit[escape] = e[escape] - IODINE_K_ALPHA_KEV
    idx = np.flatnonzero(is_compton)
    cos_psi = np.empty(idx.size)
    pending = np.arange(idx.size)
    for _ in range(100_000):
        if pending.size == 0:
            break
        c = rng.uniform(-1.0, 1.0, pending.size)
        ok = rng.random(pending.size) < klein_nishina_shape(e[idx[pending]], c)
        cos_psi[pending[ok]] = c[ok]
        pending = pending[~ok]
    ec = e[idx]
    e_sc = ec / (1.0 + ec / ELECTRON_MASS_KEV * (1.0 - cos_psi))
    leaves = rng.random(idx.size) < geom.scatter_escape(e_sc)
    deposit[idx[leaves]] = ec[leaves] - e_sc[leaves]
    return deposit


def _power_law_deposits(
    rng: np.random.Generator, n: int, index: float, lo: float, hi: float
) -> NDArray[np.float64]:
    u = rng.random(n)
    if abs(index + 1.0) < 1e-9:
        return lo * (hi / lo) ** u
    a = index + 1.0
    return (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)


def simulate_grm(
    photon_lists: Sequence[PhotonList],
    *,
    attitude: Attitude,
    t_start: float,
    t_stop: float,
    rng: np.random.Generator,
    orbit: Orbit | None = None,
    background: bool = True,
    calibration_source: bool = True,
    dead_time_s: float | None = None,
    instrument: InstrumentDefinition | None = None,
) -> GRMSimulation:
    """Simulate GRM events of the three detectors.

    Parameters
    ----------
    photon_lists
        Source photons drawn on :func:`grm_photon_area` (``n_detectors x crystal area``); each
        list must have that area or larger.
    attitude
        Spacecraft attitude (X = ECLAIRs boresight; GRM axes from the instrument file).
    t_start, t_stop
        Mission-time span of the observation.
    rng
        Random generator (all draws come from it, so a seed reproduces the files).
    orbit
        When given: SAA switches the detectors off, the Earth occults sources and modulates
        the background. When None: no orbit effects.
    background, calibration_source
        Include the background and the Am-241 line.
    dead_time_s
        Override of the instrument's dead time (0 disables it).
    instrument
        Instrument definition (default: the packaged ``grm``).
    """
    if t_stop <= t_start:
        raise ValueError("t_stop must be after t_start")
    inst = instrument or load_instrument("grm")
    geom = GRMGeometry.from_instrument(inst)
    axes = detector_axes(inst)
    names = list(axes)
    n_det = len(names)
    tau = float(inst.get("dead_time_s")) if dead_time_s is None else float(dead_time_s)
    edges = np.asarray(geom.channel_edges_kev)

    saa = saa_intervals(t_start, t_stop, orbit=orbit) if orbit is not None else np.empty((0, 2))
    gaps = [Gap(float(a), float(b), "SAA") for a, b in saa]
    gti = good_time_intervals(t_start, t_stop, gaps)
    ontime = float(np.sum(gti[:, 1] - gti[:, 0]))

    times: dict[str, list[NDArray[np.float64]]] = {n: [] for n in names}
    deps: dict[str, list[NDArray[np.float64]]] = {n: [] for n in names}
    origin: dict[str, list[NDArray[np.int8]]] = {n: [] for n in names}
    source_truth = []
    for pl in photon_lists:
        if pl.ra_deg is None or pl.dec_deg is None:
            raise ValueError(f"photon list {pl.label!r} has no sky position")
        if pl.area_cm2 < n_det * geom.area_cm2 * (1 - 1e-9):
            raise ValueError(
                f"photon list {pl.label!r} was drawn on {pl.area_cm2} cm2; GRM needs "
                f">= {grm_photon_area(inst)} cm2 (grm_photon_area())"
            )
        sel = (pl.time >= t_start) & (pl.time < t_stop)
        t, e = pl.time[sel], pl.energy_kev[sel]
        if orbit is not None and t.size:
            vis = source_visible(t, pl.ra_deg, pl.dec_deg, orbit=orbit)
            t, e = t[vis], e[vis]
        det_of = rng.integers(0, n_det, t.size)
        v = attitude.to_instrument(pl.ra_deg, pl.dec_deg)
        cosines = {}
        for k, name in enumerate(names):
            cos_t = float(v @ axes[name])
            cosines[name] = cos_t
            mine = det_of == k
            tk, ek = t[mine], e[mine]
            # Each detector got its photons on pl.area_cm2 / n_det: keep with A(E, theta) / that.
            keep = rng.random(tk.size) < geom.interacting_area(ek, cos_t) * n_det / pl.area_cm2
            tk, ek = tk[keep], ek[keep]
            times[name].append(tk)
            deps[name].append(deposit_energies(rng, ek, geom))
            origin[name].append(np.zeros(tk.size, dtype=np.int8))
        source_truth.append({"label": pl.label, "cos_theta": cosines})

    bg_rate = float(inst.get("background.rate_per_detector_s"))
    bg_index = float(inst.get("background.spectral_index"))
    amp = float(inst.get("background.earth_modulation_fraction"))
    half = float(inst.get("crystal.field_half_angle_deg"))
    line = float(inst.get("crystal.calibration_line_kev"))
    line_rate = float(inst.get("crystal.calibration_source_rate_s"))
    for name in names:
        if background:
            n = int(rng.poisson(bg_rate * (t_stop - t_start)))
            tb = rng.uniform(t_start, t_stop, n)
            if orbit is not None and n:
                # Thinning of a Poisson process: keep with the modulation factor (<= 1).
                det_att = _detector_attitude(attitude, axes[name])
                m = background_modulation(
                    tb, attitude=det_att, amplitude=amp, field_half_angle_deg=half, orbit=orbit
                )
                tb = tb[rng.random(n) < m]
            times[name].append(tb)
            deps[name].append(_power_law_deposits(rng, tb.size, bg_index, edges[0], edges[-1]))
            origin[name].append(np.ones(tb.size, dtype=np.int8))
        if calibration_source and line_rate > 0:
            n = int(rng.poisson(line_rate * (t_stop - t_start)))
            times[name].append(rng.uniform(t_start, t_stop, n))
            deps[name].append(np.full(n, line))
            origin[name].append(np.full(n, 2, dtype=np.int8))

    detectors = {}
    for name in names:
        t = np.concatenate(times[name]) if times[name] else np.empty(0)
        d = np.concatenate(deps[name]) if deps[name] else np.empty(0)
        o = np.concatenate(origin[name]) if origin[name] else np.empty(0, np.int8)
        # Resolution: background deposits are already a measured spectrum; smear the rest.
        smear = o != 1
        d = d.copy()
        d[smear] = d[smear] + rng.normal(0.0, 1.0, int(smear.sum())) * geom.sigma_kev(d[smear])
        ch = np.searchsorted(edges, d, side="right") - 1
        ok = ch >= 0
        if saa.size:
            in_saa = np.zeros(t.size, dtype=bool)
            for a, b in saa:
                in_saa |= (t >= a) & (t < b)
            ok &= ~in_saa
        t, ch, o = t[ok], np.minimum(ch[ok], edges.size - 2), o[ok]
        order = np.argsort(t, kind="stable")
        t, ch, o = t[order], ch[order], o[order]
        keep = nonparalyzable_deadtime(t, tau) if tau > 0 else np.ones(t.size, dtype=bool)
        detectors[name] = GRMDetectorEvents(
            name=name,
            time=t[keep],
            pi=ch[keep].astype(np.int16),
            origin=o[keep],
            ontime=ontime,
            n_deadtime_lost=int((~keep).sum()),
            dead_time_s=tau,
            axis=axes[name],
        )
    truth = {
        "sources": source_truth,
        "detectors": {
            name: {
                "n_events": int(ev.time.size),
                "n_source": int((ev.origin == 0).sum()),
                "n_background": int((ev.origin == 1).sum()),
                "n_calibration": int((ev.origin == 2).sum()),
                "n_deadtime_lost": ev.n_deadtime_lost,
                "livetime": ev.livetime,
                "ontime": ev.ontime,
            }
            for name, ev in detectors.items()
        },
    }
    return GRMSimulation(detectors, gti, edges, t_start, t_stop, gaps, truth)


def _detector_attitude(attitude: Attitude, axis_sc: NDArray[np.float64]) -> Attitude:
    """Return an attitude whose boresight is a detector axis (for the Earth-in-field fraction)."""
    ra, dec = attitude.to_sky(axis_sc)
    return Attitude(float(ra), float(dec), 0.0)


def write_grm_l1(
    path: str | Path,
    sim: GRMSimulation,
    *,
    attitude: Attitude | None = None,
    trigger_time: float | None = None,
    instrument: InstrumentDefinition | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the GRM L1 event file: one EVENTS extension per detector, EBOUNDS and GTI."""
    inst = instrument or load_instrument("grm")
    tref = TimeReference(
        float(inst.get("time_reference.mjdref")),
        str(inst.get("time_reference.timesys")),
        str(inst.get("time_reference.timeunit")),
    )
    kw = inst.header_keywords
    common: list[tuple[str, Any, str]] = [
        ("TSTART", sim.t_start, "start of the observation (mission s)"),
        ("TSTOP", sim.t_stop, "end of the observation (mission s)"),
    ]
    if trigger_time is not None:
        common.append((kw.get("trigger_time", "TRIGTIME"), float(trigger_time), "trigger time"))
    if attitude is not None:
        common += [
            ("RA_PNT", attitude.ra_deg, "spacecraft X axis RA (deg)"),
            ("DEC_PNT", attitude.dec_deg, "spacecraft X axis Dec (deg)"),
            ("PA_PNT", attitude.roll_deg, "position angle of spacecraft +Z (deg)"),
        ]
    prim = primary_hdu(
        telescope=inst.telescope,
        instrument=inst.instrument,
        extra=common + [(k, v, "") for k, v in (extra or {}).items()],
    )
    for key, value, comment in tref.cards():
        prim.header[key] = (value, comment)
    hdus: list[Any] = [prim]
    n_chan = sim.channel_edges_kev.size - 1
    for extver, (name, ev) in enumerate(sim.detectors.items(), start=1):
        cols = [
            fits.Column(kw.get("time", "TIME"), "D", unit="s", array=ev.time),
            fits.Column(kw.get("pi", "PI"), "I", array=ev.pi),
        ]
        hdu = fits.BinTableHDU.from_columns(cols, name="EVENTS")
        h = hdu.header
        tilt = float(np.degrees(np.arccos(np.clip(ev.axis[0], -1, 1))))
        az = float(np.degrees(np.arctan2(ev.axis[2], ev.axis[1])) % 360.0)
        cards: list[tuple[str, Any, str]] = [
            ("EXTVER", extver, "detector index"),
            ("TELESCOP", inst.telescope, "mission"),
            ("INSTRUME", inst.instrument, "instrument"),
            (kw.get("detector", "DETNAM"), name, "detector"),
            ("HDUCLASS", "OGIP", ""),
            ("HDUCLAS1", "EVENTS", ""),
            ("CHANTYPE", "PI", ""),
            ("DETCHANS", n_chan, "number of PI channels"),
            ("TLMIN2", 0, "first PI channel"),
            ("TLMAX2", n_chan - 1, "last PI channel (overflow)"),
            ("ONTIME", ev.ontime, "time the detector was on (s)"),
            ("LIVETIME", ev.livetime, "on-time minus dead time (s)"),
            ("DEADTIME", ev.ontime - ev.livetime, "total dead time (s)"),
            ("DEADC", ev.livetime / ev.ontime if ev.ontime > 0 else 0.0, "dead-time correction"),
            ("DEADAPP", False, "dead-time correction not applied"),
            ("DEADTAU", ev.dead_time_s, "non-paralyzable dead time per event (s)"),
            ("NDEADLOS", ev.n_deadtime_lost, "events lost in the dead time"),
            ("DET_TILT", tilt, "detector axis angle from spacecraft X (deg)"),
            ("DET_AZIM", az, "detector axis azimuth from +Y towards +Z (deg)"),
            *common,
        ]
        for key, value, comment in cards + tref.cards():
            h[key] = (value, comment)
        hdus.append(hdu)
    hdus.append(
        ebounds_hdu(
            sim.channel_edges_kev[:-1],
            sim.channel_edges_kev[1:],
            telescope=inst.telescope,
            instrument=inst.instrument,
        )
    )
    hdus.append(
        gti_hdu(
            sim.gti[:, 0],
            sim.gti[:, 1],
            timeref=tref,
            telescope=inst.telescope,
            instrument=inst.instrument,
        )
    )
    return write_hdulist(hdus, path)
