"""ECLAIRs simulator: photons through the coded mask onto the CdTe plane, events and L1 files.

Physics (numbers from ``config/instruments/eclairs.yaml``, shadow model from
:mod:`svomflow.instruments.coded_mask`, the one model that imaging also uses):

* Point sources: each photon of a :class:`~svomflow.simulation.photons.PhotonList` is kept
  with probability ``A_eff(E, direction) / area_cm2`` where
  ``A_eff = QE(E) * A_pixel * cos(theta) * sum(shadow * good_pixel)``; its pixel is drawn
  from the shadow map (multinomial over pixels, vectorised). Photons from an
  Earth-occulted direction are lost (``occulted`` callback).
* Diffuse photon lists (``ra_deg is None``) are isotropic radiance crossing ``area_cm2``:
  they go through the open mask with the position-dependent exposure of
  :func:`~svomflow.instruments.coded_mask.diffuse_illumination`.
* Detector: quantum efficiency (low-energy roll-off and high-energy transparency tables),
  Gaussian redistribution with ``FWHM^2 = noise^2 + c * E`` (``c`` from the 60 keV value),
  the low threshold on the measured energy, PI channels, 20 us time tags.
* Background: the cosmic X-ray background (Gruber et al. 1999 spectrum) through the open
  mask, a flat instrumental component, both modulated along the orbit; noisy pixels add a
  rate near threshold, dead pixels record nothing; in the SAA the detectors are off.
* An on-board-like count-rate trigger over the YAML bands and timescales.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from svomflow.config import InstrumentDefinition, load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import (
    MaskGeometry,
    cos_theta,
    diffuse_illumination,
    mask_pattern,
    shadow,
)
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.products.eclairs_l1 import (
    EclairsEvents,
    RateTrigger,
)
from svomflow.products.orbit_track import subtract_intervals
from svomflow.simulation.photons import PhotonList
from svomflow.tasks.timing.trigger import li_ma

__all__ = [
    "EclairsBackground",
    "gruber_cxb_photon_spectrum",
    "onboard_rate_trigger",
    "orbital_modulation",
    "simulate_eclairs",
]

_EARTH_MU_KM3_S2 = 398600.4418
_EARTH_RADIUS_KM = 6378.137


def gruber_cxb_photon_spectrum(energy_kev: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the CXB photon intensity in photons / (cm2 s sr keV) (Gruber et al. 1999 fit)."""
    e = np.asarray(energy_kev, dtype=np.float64)
    low = 7.877 * e**-0.29 * np.exp(-e / 41.13)
    x = e / 60.0
    high = 0.0259 * x**-5.5 + 0.504 * x**-1.58 + 0.0288 * x**-1.05
    return np.where(e < 60.0, low, high) / e


def orbital_modulation(
    fraction: float, altitude_km: float, phase_s: float = 0.0
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """Return ``t -> 1 + fraction * cos(2 pi (t - phase) / P)`` with the Kepler period at altitude.

    A stand-in for the Earth crossing the field once per orbit (the scenario helper may pass
    a geometric model instead).
    """
    a = _EARTH_RADIUS_KM + altitude_km
    period = 2.0 * np.pi * np.sqrt(a**3 / _EARTH_MU_KM3_S2)

    def modulation(t: NDArray[np.float64]) -> NDArray[np.float64]:
        return 1.0 + fraction * np.cos(2.0 * np.pi * (np.asarray(t) - phase_s) / period)

    return modulation


@dataclass(frozen=True)
class EclairsBackground:
    """Background ingredients: CXB scale, instrumental rate and spectrum, orbital modulation."""

    cxb_scale: float = 1.0
    instrumental_rate_per_pixel_s: float = 0.0
    instrumental_photon_index: float = 1.0
    modulation: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None
    cxb_band_kev: tuple[float, float] = (3.0, 200.0)

    @classmethod
    def from_instrument(
        cls,
        inst: InstrumentDefinition,
        *,
        orbit_phase_s: float = 0.0,
        modulation: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None,
    ) -> EclairsBackground:
        """Read the background numbers from the instrument file.

        The modulation defaults to a sinusoid at the orbital period with the instrument's
        ``earth_modulation_fraction``; pass ``modulation`` (factor vs mission time, e.g. from
        :func:`svomflow.simulation.orbit.background_modulation`) for a geometric model.
        """
        return cls(
            cxb_scale=float(inst.get("background.cxb_scale")),
            instrumental_rate_per_pixel_s=float(
                inst.get("background.instrumental_rate_per_pixel_s")
            ),
            instrumental_photon_index=float(inst.get("background.instrumental_photon_index")),
            modulation=modulation
            or orbital_modulation(
                float(inst.get("background.earth_modulation_fraction")),
                float(inst.get("background.orbit_altitude_km")),
                orbit_phase_s,
            ),
        )


def _quantise(t: NDArray[np.float64], resolution: float) -> NDArray[np.float64]:
    return np.floor(t / resolution) * resolution if resolution > 0 else t


def _gti(t_start: float, t_stop: float, off: Sequence[tuple[float, float]]) -> NDArray[np.float64]:
    """Return [t_start, t_stop] minus the off intervals, as an (N, 2) array."""
    return subtract_intervals(np.array([[t_start, t_stop]]), np.array(off, float).reshape(-1, 2))


def _in_gti(t: NDArray[np.float64], gti: NDArray[np.float64]) -> NDArray[np.bool_]:
    if gti.size == 0:
        return np.zeros(t.shape, dtype=bool)
    k = np.searchsorted(gti[:, 0], t, side="right") - 1
    ok = k >= 0
    kk = np.clip(k, 0, None)
    return ok & (t < gti[kk, 1])


def _modulated_times(
    rate: float,
    gti: NDArray[np.float64],
    modulation: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Draw event times of a Poisson process ``rate * modulation(t)`` inside the GTIs."""
    if rate <= 0 or gti.size == 0:
        return np.zeros(0)
    mmax = 1.0
    if modulation is not None:
        grid = np.concatenate([np.linspace(a, b, 512) for a, b in gti])
        mmax = float(np.max(modulation(grid))) * 1.001
    times = []
    for a, b in gti:
        n = rng.poisson(rate * mmax * (b - a))
        times.append(rng.uniform(a, b, n))
    t = np.concatenate(times)
    if modulation is not None:
        t = t[rng.random(t.size) * mmax < modulation(t)]
    return t


def _sample_power_law(
    n: int, index: float, lo: float, hi: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    u = rng.random(n)
    if abs(index - 1.0) < 1e-9:
        return lo * (hi / lo) ** u
    g = 1.0 - index
    return (lo**g + u * (hi**g - lo**g)) ** (1.0 / g)


def _sample_tabulated(
    n: int,
    fn: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    lo: float,
    hi: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], float]:
    """Draw ``n`` values from a positive density on [lo, hi] (log grid); return them and its integral."""
    grid = np.geomspace(lo, hi, 4097)
    dens = fn(grid)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    total = float(cdf[-1])
    return np.interp(rng.random(n) * total, cdf, grid), total


def _draw_pixels(
    weights: NDArray[np.float64], n: int, rng: np.random.Generator
) -> tuple[NDArray[np.int16], NDArray[np.int16]]:
    """Draw ``n`` pixel indices with probabilities proportional to ``weights`` (ny, nz)."""
    ny, nz = weights.shape
    cdf = np.cumsum(weights.ravel())
    flat = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    flat = np.minimum(flat, ny * nz - 1)
    return (flat // nz).astype(np.int16), (flat % nz).astype(np.int16)


def simulate_eclairs(  # noqa: C901 - one branch per simulated component, in order
    photon_lists: Sequence[PhotonList],
    *,
    attitude: Attitude,
    t_start: float,
    t_stop: float,
    rng: np.random.Generator,
    instrument: InstrumentDefinition | None = None,
    background: EclairsBackground | bool = True,
    dead_pixels: Sequence[tuple[int, int]] | NDArray[np.bool_] = (),
    noisy_pixels: Sequence[tuple[int, int, float]] = (),
    saa_intervals: Sequence[tuple[float, float]] = (),
    occulted: Callable[[NDArray[np.float64], float, float], NDArray[np.bool_]] | None = None,
    run_trigger: bool = True,
) -> EclairsEvents:
    """Simulate ECLAIRs events for photon lists, background and detector defects.

    Parameters
    ----------
    photon_lists
        Sources (point or diffuse); photons outside ``[t_start, t_stop)`` are ignored.
    attitude
        Pointing of the instrument (held fixed over the observation).
    t_start, t_stop
        Observation interval in mission seconds.
    rng
        Random generator (the whole output is reproducible from its seed).
    instrument
        Instrument definition (default: the packaged ``eclairs``).
    background
        ``True`` for the instrument's background, ``False`` for none, or an
        :class:`EclairsBackground`.
    dead_pixels
        ``(y, z)`` pairs or a boolean ``(ny, nz)`` array of pixels that record nothing.
    noisy_pixels
        ``(y, z, rate_s)`` triples: extra events near threshold at these rates.
    saa_intervals
        ``(start, stop)`` intervals where the detectors are off (excluded from the GTIs).
    occulted
        ``occulted(time, ra, dec) -> bool`` for point sources hidden by the Earth.
    run_trigger
        Run :func:`onboard_rate_trigger` and keep its result in ``trigger``.

    Raises
    ------
    InputDataError
        If a photon list's area is smaller than the instrument's geometric area for it.
    """
    inst = instrument or load_instrument("eclairs")
    if not t_stop > t_start:
        raise InputDataError("simulate_eclairs: t_stop must be after t_start")
    geom = MaskGeometry.from_instrument(inst)
    pattern = mask_pattern(geom)
    resp = EclairsResponse.from_instrument(inst)
    ny, nz = geom.shape

    dead = np.zeros((ny, nz), dtype=bool)
    if isinstance(dead_pixels, np.ndarray) and dead_pixels.dtype == bool:
        if dead_pixels.shape != (ny, nz):
            raise InputDataError(f"dead pixel map must have shape {(ny, nz)}")
        dead |= dead_pixels
    else:
        for iy, iz in dead_pixels:
            dead[int(iy), int(iz)] = True
    good = (~dead).astype(np.float64)
    gti = _gti(float(t_start), float(t_stop), saa_intervals)

    parts_t: list[NDArray[np.float64]] = []
    parts_e: list[NDArray[np.float64]] = []  # true energies (noisy events: measured)
    parts_y: list[NDArray[np.int16]] = []
    parts_z: list[NDArray[np.int16]] = []
    parts_o: list[NDArray[np.int16]] = []
    measured: list[bool] = []
    labels: list[str] = []
    diffuse_map: NDArray[np.float64] | None = None

    def add(t, e, iy, iz, label, is_measured=False):
        if label not in labels:
            labels.append(label)
        parts_t.append(t)
        parts_e.append(e)
        parts_y.append(iy)
        parts_z.append(iz)
        parts_o.append(np.full(t.size, labels.index(label), dtype=np.int16))
        measured.append(is_measured)

    for plist in photon_lists:
        sel = (plist.time >= t_start) & (plist.time < t_stop)
        t = plist.time[sel]
        e = plist.energy_kev[sel]
        if plist.ra_deg is None or plist.dec_deg is None:
            if diffuse_map is None:
                diffuse_map = diffuse_illumination(geom, pattern)
            weights = diffuse_map * good
            # photons crossing area_cm2 from the hemisphere: the plane behind the mask
            # receives sum(diffuse_map) of a bare pixel's share each
            geo_area = geom.pixel_area_cm2 * float(weights.sum())
        else:
            ty, tz = attitude.to_projected(plist.ra_deg, plist.dec_deg)
            if not np.isfinite(ty) or not np.isfinite(tz):
                continue  # behind the detector plane
            weights = shadow(geom, pattern, float(ty), float(tz)) * good
            geo_area = geom.pixel_area_cm2 * float(cos_theta(ty, tz)) * float(weights.sum())
            if occulted is not None and t.size:
                vis = ~np.asarray(occulted(t, plist.ra_deg, plist.dec_deg), dtype=bool)
                t, e = t[vis], e[vis]
        if geo_area <= 0 or t.size == 0:
            continue
        if geo_area > plist.area_cm2 * (1 + 1e-9):
            raise InputDataError(
                f"photon list {plist.label!r}: area_cm2={plist.area_cm2} is smaller than the "
                f"ECLAIRs geometric area {geo_area:.1f} cm2 for it; draw photons on a larger area"
            )
        keep = rng.random(t.size) < resp.efficiency(e) * (geo_area / plist.area_cm2)
        t, e = t[keep], e[keep]
        iy, iz = _draw_pixels(weights, t.size, rng)
        add(t, e, iy, iz, plist.label)

    bkg = (
        EclairsBackground.from_instrument(inst)
        if background is True
        else (background if isinstance(background, EclairsBackground) else None)
    )
    if bkg is not None:
        if bkg.cxb_scale > 0:
            if diffuse_map is None:
                diffuse_map = diffuse_illumination(geom, pattern)
            weights = diffuse_map * good
            lo, hi = bkg.cxb_band_kev
            # photons/s on the plane: I(E) * pi * A_pixel * sum(exposure fractions)
            _, intensity = _sample_tabulated(1, gruber_cxb_photon_spectrum, lo, hi, rng)
            rate = bkg.cxb_scale * intensity * np.pi * geom.pixel_area_cm2 * float(weights.sum())
            t = _modulated_times(rate, gti, bkg.modulation, rng)
            e, _ = _sample_tabulated(t.size, gruber_cxb_photon_spectrum, lo, hi, rng)
            keep = rng.random(t.size) < resp.efficiency(e)
            iy, iz = _draw_pixels(weights, int(keep.sum()), rng)
            add(t[keep], e[keep], iy, iz, "cxb")
        if bkg.instrumental_rate_per_pixel_s > 0:
            rate = bkg.instrumental_rate_per_pixel_s * float(good.sum())
            t = _modulated_times(rate, gti, bkg.modulation, rng)
            e = _sample_power_law(
                t.size,
                bkg.instrumental_photon_index,
                resp.threshold_kev,
                resp.e_min_kev + resp.n_channels * resp.channel_width_kev,
                rng,
            )
            iy, iz = _draw_pixels(good, t.size, rng)
            add(t, e, iy, iz, "instrumental", is_measured=True)

    for iy0, iz0, rate in noisy_pixels:
        if dead[int(iy0), int(iz0)]:
            continue
        t = _modulated_times(float(rate), gti, None, rng)
        # electronic noise sits just above the threshold (exponential tail of 1 keV)
        e = resp.threshold_kev + rng.exponential(1.0, t.size)
        add(
            t,
            e,
            np.full(t.size, iy0, np.int16),
            np.full(t.size, iz0, np.int16),
            "noisy",
            is_measured=True,
        )

    if parts_t:
        t = np.concatenate(parts_t)
        e_true = np.concatenate(parts_e)
        iy = np.concatenate(parts_y)
        iz = np.concatenate(parts_z)
        org = np.concatenate(parts_o)
        is_meas = np.concatenate(
            [np.full(p.size, m) for p, m in zip(parts_t, measured, strict=True)]
        )
    else:
        t = e_true = np.zeros(0)
        iy = iz = org = np.zeros(0, dtype=np.int16)
        is_meas = np.zeros(0, dtype=bool)
    # The parts are copied into the columns above: drop them, and build the measured energy
    # in place, so the peak stays near 60 bytes per event at 1e7 events (not ~130).
    for parts in (parts_t, parts_e, parts_y, parts_z, parts_o):
        parts.clear()

    e_meas = rng.normal(size=t.size)
    e_meas *= resp.sigma_kev(e_true)
    e_meas += e_true
    e_meas[is_meas] = e_true[is_meas]
    del e_true, is_meas
    chan = resp.to_channel(e_meas)
    ok = (e_meas >= resp.threshold_kev) & (chan >= 0) & (chan < resp.n_channels)
    ok &= _in_gti(t, gti) & ~dead[iy, iz]
    # one index array (kept events in time order) instead of a mask then an order per column
    kept = np.flatnonzero(ok)
    del ok
    t = _quantise(t[kept], resp.time_resolution_s)
    order = np.argsort(t, kind="stable")
    t = t[order]
    kept = kept[order]
    del order
    events = EclairsEvents(
        time=t,
        y=iy[kept].astype(np.int16),
        z=iz[kept].astype(np.int16),
        pi=chan[kept].astype(np.int16),
        energy_kev=e_meas[kept].astype(np.float32),
        origin=org[kept].astype(np.int16),
        labels=labels,
        gti=gti,
        attitude=attitude,
        t_start=float(t_start),
        t_stop=float(t_stop),
        dead_pixels=dead,
        instrument=inst.name,
    )
    if run_trigger and len(events):
        events.trigger = onboard_rate_trigger(events, instrument=inst)
    return events


def onboard_rate_trigger(
    events: EclairsEvents,
    *,
    instrument: InstrumentDefinition | None = None,
    bands_kev: Sequence[Sequence[float]] | None = None,
    timescales_s: Sequence[float] | None = None,
    threshold: float | None = None,
) -> RateTrigger | None:
    """Search the count rate for the first significant excess, like the on-board trigger.

    For every band and timescale, counts are binned at ``timescale / 4`` steps; each window
    of one timescale is compared with a background window that ends ``gap_s`` before it,
    with the Li & Ma significance of :func:`svomflow.tasks.timing.trigger.li_ma` (on/off
    exposure ratio from the good time, valid at the few counts of 10 ms windows). The first window above the threshold
    (earliest end time; ties: highest S/N) gives the trigger time (its end, the moment the
    on-board software would know), band and timescale. Returns ``None`` without a trigger.

    The shared :func:`svomflow.tasks.timing.trigger.rate_trigger` reports the most
    significant window of a whole data set (ground analysis); the on-board trigger is the
    *first* window over threshold, which is what the alert's ``TRIGTIME`` records, so this
    scan is kept here and shares only the significance.
    """
    inst = instrument or load_instrument(events.instrument)
    bands = bands_kev if bands_kev is not None else inst.get("bands_kev.trigger")
    scales = timescales_s if timescales_s is not None else inst.get("rate_trigger.timescales_s")
    thr = float(threshold if threshold is not None else inst.get("rate_trigger.snr_threshold"))
    bkg_win = float(inst.get("rate_trigger.background_window_s"))
    gap = float(inst.get("rate_trigger.gap_s"))
    e = events.energy_kev.astype(np.float64)
    best: RateTrigger | None = None
    for lo, hi in bands:
        t = events.time[(e >= lo) & (e < hi)]
        for ts in scales:
            step = ts / 4.0
            nbin = int(np.ceil((events.t_stop - events.t_start) / step))
            edges = np.asarray(events.t_start + step * np.arange(nbin + 1), dtype=np.float64)
            counts = np.histogram(t, edges)[0].astype(np.float64)
            # good-time fraction per bin, so SAA gaps are not read as rate drops
            frac = _bin_live_fraction(edges, events.gti)
            csum = np.concatenate([[0.0], np.cumsum(counts)])
            lsum = np.concatenate([[0.0], np.cumsum(frac * step)])
            nw = 4
            nb = max(round(bkg_win / step), 1)
            ng = round(gap / step)
            end = np.arange(nw + ng + nb, counts.size + 1)
            n_src = csum[end] - csum[end - nw]
            t_src = lsum[end] - lsum[end - nw]
            b_end = end - nw - ng
            n_bkg = csum[b_end] - csum[b_end - nb]
            t_bkg = lsum[b_end] - lsum[b_end - nb]
            valid = (t_src > 0.999 * ts) & (t_bkg > 0.5 * nb * step) & (n_bkg > 0)
            alpha = np.where(valid, t_src / np.where(valid, t_bkg, 1.0), 1.0)
            snr = li_ma(n_src, n_bkg, alpha)
            snr = np.where(valid, snr, -np.inf)
            hit = np.flatnonzero(snr >= thr)
            if hit.size == 0:
                continue
            k = hit[0]
            cand = RateTrigger(
                time=float(edges[end[k]]),
                band_kev=(float(lo), float(hi)),
                timescale_s=float(ts),
                snr=float(snr[k]),
                window_start=float(edges[end[k] - nw]),
            )
            if (
                best is None
                or cand.time < best.time - 1e-9
                or (abs(cand.time - best.time) <= 1e-9 and cand.snr > best.snr)
            ):
                best = cand
    return best


def _bin_live_fraction(edges: NDArray[np.float64], gti: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the fraction of each bin covered by the GTIs."""
    lo = edges[:-1, None]
    hi = edges[1:, None]
    cover = np.clip(np.minimum(hi, gti[None, :, 1]) - np.maximum(lo, gti[None, :, 0]), 0, None)
    return cover.sum(axis=1) / (edges[1:] - edges[:-1])
