"""MXT simulator: sources and background through the optics and the pnCCD to L1 pass files.

Chain (all vectorised, no loop over photons):

1. photons from point sources (power-law spectra, optional power-law fading) and a diffuse
   background, thinned by the effective area ``A(E)`` (45 cm2 at 1 keV; energy shape from
   ``optics.effective_area_shape``, an assumption);
2. positions: the attitude projects each source on the detector, the lobster-eye PSF
   (:class:`svomflow.instruments.mxt_calibration.PSFModel`, the same model the fit uses, or
   with ``psf`` set a different one, :mod:`svomflow.simulation.mxt_psf`) scatters them;
3. energies smeared with the CCD resolution (FWHM 80 eV at 1.5 keV, scaling as sqrt(E));
4. times quantised to frames; the charge cloud (Gaussian, sigma ~ sqrt(E)) split over the
   2x2 pixels nearest the impact point, pixels below the split threshold lost, the event kept
   if its main pixel passes the event threshold -> pattern/multiplicity;
5. charge transfer inefficiency (loss ``(1 - CTI(q))^(RAWY + 1)``, CTI(q) = cti (q/1 keV)^k)
   and per-column gain/offset applied to every pixel -> PHA in ADU;
6. the time line: SAA (detector off), Earth occultation (source hidden, background still
   counted; flagged in the attitude file), telemetry gaps (data lost); the received data
   cut into ground-station passes written as separate L1 files (file order is not time
   order, consecutive passes overlap so some events are duplicated).

Files written by :func:`write_simulation`: ``mxt_l1_pass<k>.fits`` (EVENTS + GTI),
``mxt_att.fits`` (ATTITUDE), ``mxt_saa_week<w>.fits`` (SAA), the true calibration files
``mxt_psf.fits``, ``mxt_cti.fits``, ``mxt_gain.fits``, ``mxt_pattern.fits`` (CALDB code names
PSF, CTI, GAIN, PATTERN) and ``truth.json``. The calibration files are also registered in the
CALDB of the run's home (``$SVOMFLOW_CALDB`` or ``$SVOMFLOW_HOME/caldb``), so that the
``mxt_analysis`` flow selects them by observation time like real data, with no option.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from scipy.special import ndtr
from svomflow.config import load_instrument
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.mxt_calibration import (
    CTIModel,
    GainTable,
    PatternTable,
    PSFModel,
    cti_hdu,
    gain_hdu,
    pattern_hdu,
    psf_hdu,
)
from svomflow.instruments.mxt_response import effective_area, resolution_sigma_kev
from svomflow.products.ogip import TimeReference, gti_hdu, primary_hdu, write_hdulist
from svomflow.simulation.mxt_psf import psf_generator

__all__ = [
    "MXTSimConfig",
    "MXTSimResult",
    "MXTSource",
    "config_from_mapping",
    "effective_area",
    "pattern_table",
    "register_calibration_files",
    "resolution_sigma_kev",
    "simulate",
    "simulate_scenario",
    "write_calibration_files",
    "write_simulation",
]

log = logging.getLogger(__name__)

SECONDS_PER_WEEK = 604800.0


@dataclass
class MXTSource:
    """A point source: position, photon flux (0.3-10 keV, at ``t_ref``), spectrum, fading."""

    ra_deg: float
    dec_deg: float
    flux_ph_cm2_s: float
    index: float = 2.0
    decay_index: float = 0.0
    t0: float | None = None
    t_ref_s: float = 1000.0
    name: str = "src"

    def rate_factor(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return flux(t) / flux at ``t0 + t_ref_s`` (1 for a constant source)."""
        if self.decay_index == 0.0 or self.t0 is None:
            return np.ones_like(t)
        return (np.maximum(t - self.t0, 1e-3) / self.t_ref_s) ** (-self.decay_index)


@dataclass
class MXTSimConfig:
    """What to simulate (numbers not given here come from the instrument YAML)."""

    ra_deg: float = 150.0
    dec_deg: float = 20.0
    roll_deg: float = 0.0
    tstart: float = 1.0e8
    duration_s: float = 4000.0
    sources: list[MXTSource] = field(default_factory=list)
    background_scale: float = 1.0
    background_index: float = 1.4
    orbit_period_s: float = 5800.0
    earth_fraction: float = 0.3
    earth_phase_s: float = 1500.0
    saa_s: float = 600.0
    saa_phase_s: float = 300.0
    n_telemetry_gaps: int = 1
    telemetry_gap_s: float = 40.0
    n_passes: int = 3
    pass_overlap_s: float = 30.0
    attitude_step_s: float = 1.0
    attitude_gaps: list[tuple[float, float]] = field(default_factory=list)
    corrupt_rows: int = 0
    e_min_kev: float = 0.2
    e_max_kev: float = 10.0
    gain: NDArray[np.float64] | None = None
    offset: NDArray[np.float64] | None = None
    #: photon generator of the sky's PSF (:func:`svomflow.simulation.mxt_psf.psf_generator`:
    #: e.g. ``{"core_factor": 0.6, "arm_factor": 2.5}``); None draws from the CALDB model.
    #: The CALDB file written is always the model: the analysis must cope with the mismatch.
    psf: dict[str, Any] | None = None


@dataclass
class MXTSimResult:
    """Simulated pixel events (per pass), true per-photon values, gaps and calibrations."""

    passes: list[dict[str, NDArray[Any]]]
    pass_gti: list[NDArray[np.float64]]
    attitude: dict[str, NDArray[Any]]
    saa: NDArray[np.float64]
    earth: NDArray[np.float64]
    telemetry: NDArray[np.float64]
    photons: dict[str, NDArray[Any]]
    gain: NDArray[np.float64]
    offset: NDArray[np.float64]
    cti: float
    cti_index: float
    psf: PSFModel
    pattern: dict[str, NDArray[np.float64]]
    config: MXTSimConfig
    truth: dict[str, Any]


def _powerlaw_energies(
    n: int, index: float, lo: float, hi: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    u = rng.random(n)
    if abs(index - 1.0) < 1e-9:
        return lo * (hi / lo) ** u
    a = 1.0 - index
    return (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)


def _intervals_mask(t: NDArray[np.float64], intervals: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Return whether each time lies in one of the (N, 2) intervals."""
    if len(intervals) == 0:
        return np.zeros(t.shape, dtype=bool)
    iv = intervals[np.argsort(intervals[:, 0])]
    k = np.searchsorted(iv[:, 0], t, side="right") - 1
    inside = k >= 0
    inside[inside] = t[inside] < iv[k[inside], 1]
    return inside


def _complement(intervals: NDArray[np.float64], t0: float, t1: float) -> NDArray[np.float64]:
    """Return the parts of [t0, t1] outside the union of ``intervals``."""
    out = []
    cur = t0
    for a, b in sorted(map(tuple, np.asarray(intervals).reshape(-1, 2))):
        if b <= cur:
            continue
        if a > cur:
            out.append((cur, min(a, t1)))
        cur = max(cur, b)
        if cur >= t1:
            break
    if cur < t1:
        out.append((cur, t1))
    return np.array([o for o in out if o[1] > o[0]], dtype=np.float64).reshape(-1, 2)


def split_fractions(
    fx: NDArray[np.float64], fy: NDArray[np.float64], sigma: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Return the charge fractions kept on the main side in x and y and the neighbour steps.

    ``fx``, ``fy`` are the impact positions inside the pixel (0..1); the cloud spills towards
    the nearest edge in each direction (step +1 or -1).
    """
    sx = np.where(fx >= 0.5, 1, -1)
    sy = np.where(fy >= 0.5, 1, -1)
    dx = np.minimum(fx, 1.0 - fx)
    dy = np.minimum(fy, 1.0 - fy)
    return ndtr(dx / sigma), ndtr(dy / sigma), sx, sy


def _split_charges(
    energy_kev: NDArray[np.float64],
    fx: NDArray[np.float64],
    fy: NDArray[np.float64],
    sigma0: float,
    split_kev: float,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Return the (n, 4) charges (main, x-neighbour, y-neighbour, diagonal) above threshold."""
    sigma = sigma0 * np.sqrt(np.maximum(energy_kev, 1e-3))
    ax, ay, sx, sy = split_fractions(fx, fy, sigma)
    q = (
        np.column_stack([ax * ay, (1 - ax) * ay, ax * (1 - ay), (1 - ax) * (1 - ay)])
        * energy_kev[:, None]
    )
    q[:, 1:] = np.where(q[:, 1:] >= split_kev, q[:, 1:], 0.0)
    return q, sx, sy


def pattern_table(
    instrument: Any, rng: np.random.Generator, n: int = 400_000
) -> dict[str, NDArray[np.float64]]:
    """Return the mean recorded charge fraction per multiplicity vs energy (PATTERN file).

    Computed by Monte Carlo over uniform impact points with the simulator's own split model,
    so the multiplicity correction undoes exactly what the simulator does on average.
    """
    sigma0 = float(instrument.get("ccd.cloud_sigma_pix_at_1kev"))
    split = float(instrument.get("ccd.split_threshold_ev")) * 1e-3
    grid = np.geomspace(0.2, 10.0, 25)
    e = np.exp(rng.uniform(np.log(grid[0]), np.log(grid[-1]), n))
    q, _, _ = _split_charges(e, rng.random(n), rng.random(n), sigma0, split)
    multi = 1 + (q[:, 1:] > 0).sum(axis=1)
    recorded = q.sum(axis=1)
    # bin by recorded energy (what the calibration knows), ratio of the means
    idx = np.clip(np.searchsorted(np.sqrt(grid[1:] * grid[:-1]), recorded), 0, grid.size - 1)
    frac = np.ones((4, grid.size))
    for m in range(1, 5):
        sel = multi == m
        num = np.bincount(idx[sel], weights=recorded[sel], minlength=grid.size)
        den = np.bincount(idx[sel], weights=e[sel], minlength=grid.size)
        ok = den > 0
        frac[m - 1, ok] = num[ok] / den[ok]
    return {"energy_kev": grid, "fraction": frac}


def _default_gaps(cfg: MXTSimConfig, rng: np.random.Generator) -> tuple[NDArray[np.float64], ...]:
    t0, t1 = cfg.tstart, cfg.tstart + cfg.duration_s
    n_orb = math.ceil(cfg.duration_s / cfg.orbit_period_s) + 1
    k = np.arange(n_orb)
    earth = np.column_stack(
        [
            t0 + cfg.earth_phase_s + k * cfg.orbit_period_s,
            t0
            + cfg.earth_phase_s
            + k * cfg.orbit_period_s
            + cfg.earth_fraction * cfg.orbit_period_s,
        ]
    )
    saa = np.column_stack(
        [
            t0 + cfg.saa_phase_s + k * cfg.orbit_period_s,
            t0 + cfg.saa_phase_s + k * cfg.orbit_period_s + cfg.saa_s,
        ]
    )
    saa = saa[(saa[:, 1] > t0) & (saa[:, 0] < t1)] if cfg.saa_s > 0 else np.zeros((0, 2))
    earth = (
        earth[(earth[:, 1] > t0) & (earth[:, 0] < t1)]
        if cfg.earth_fraction > 0
        else np.zeros((0, 2))
    )
    # telemetry gaps inside data-taking time
    on = _complement(np.vstack([saa, earth]) if len(saa) + len(earth) else np.zeros((0, 2)), t0, t1)
    tele = []
    for _ in range(cfg.n_telemetry_gaps):
        lengths = on[:, 1] - on[:, 0] - cfg.telemetry_gap_s
        good = np.flatnonzero(lengths > 0)
        if good.size == 0:
            break
        i = good[rng.integers(good.size)]
        a = on[i, 0] + rng.random() * lengths[i]
        tele.append((a, a + cfg.telemetry_gap_s))
    return saa, earth, np.array(tele, dtype=np.float64).reshape(-1, 2)


def simulate(
    cfg: MXTSimConfig, rng: np.random.Generator, instrument: Any | None = None
) -> MXTSimResult:
    """Simulate an MXT observation in memory (see the module docstring for the chain)."""
    inst = instrument or load_instrument("mxt")
    nx, ny = int(inst.get("ccd.npix_x")), int(inst.get("ccd.npix_y"))
    scale = math.radians(float(inst.get("ccd.pixel_scale_arcsec")) / 3600.0)
    frame_time = float(inst.get("ccd.frame_time_s"))
    psf = PSFModel.from_instrument(inst)
    pixel_arcsec = float(inst.get("ccd.pixel_scale_arcsec"))
    sky_psf = psf_generator(cfg.psf, psf, pixel_arcsec)
    att = Attitude(cfg.ra_deg, cfg.dec_deg, cfg.roll_deg)
    t0, t1 = cfg.tstart, cfg.tstart + cfg.duration_s
    saa, earth, tele = _default_gaps(cfg, rng)
    a_max = float(effective_area(np.geomspace(0.2, 10, 200), inst).max())
    band = (0.3, 10.0)

    xs, ys, es, ts, srcid = [], [], [], [], []
    truth_sources = []
    for k, src in enumerate(cfg.sources):
        # expected photons on a_max over the window: integrate the fading law numerically
        tgrid = np.linspace(t0, t1, 4001)
        fac = src.rate_factor(tgrid)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (fac[1:] + fac[:-1]) * np.diff(tgrid))])
        # flux is given in 0.3-10 keV; draw over the full simulated range with the same law
        g = src.index
        e_lo, e_hi = cfg.e_min_kev, cfg.e_max_kev

        def pl_int(a: float, b: float, g: float = g) -> float:
            return math.log(b / a) if abs(g - 1) < 1e-9 else (b ** (1 - g) - a ** (1 - g)) / (1 - g)

        scale_range = pl_int(e_lo, e_hi) / pl_int(*band)
        mu = src.flux_ph_cm2_s * scale_range * a_max * cum[-1]
        n = int(rng.poisson(mu))
        t = np.interp(rng.random(n) * cum[-1], cum, tgrid)
        e = _powerlaw_energies(n, g, e_lo, e_hi, rng)
        keep = rng.random(n) < effective_area(e, inst) / a_max
        keep &= ~_intervals_mask(t, earth) & ~_intervals_mask(t, saa)
        t, e = t[keep], e[keep]
        ty, tz = att.to_projected(src.ra_deg, src.dec_deg)
        cx = nx / 2.0 + float(ty) / scale
        cy = ny / 2.0 + float(tz) / scale
        if sky_psf is None:
            dx, dy = psf.sample(t.size, rng)
        else:
            dx, dy = sky_psf.sample(t.size, rng, pixel_arcsec)
        xs.append(cx + dx)
        ys.append(cy + dy)
        es.append(e)
        ts.append(t)
        srcid.append(np.full(t.size, k, dtype=np.int32))
        exp_on = np.diff(_complement(np.vstack([saa, earth]), t0, t1), axis=1).sum()
        truth_sources.append(
            {
                "name": src.name,
                "ra_deg": src.ra_deg,
                "dec_deg": src.dec_deg,
                "x_pix": cx,
                "y_pix": cy,
                "flux_ph_cm2_s": src.flux_ph_cm2_s,
                "index": src.index,
                "decay_index": src.decay_index,
                "n_photons_detected_area": int(t.size),
                "exposure_visible_s": float(exp_on),
            }
        )
    # diffuse background: uniform on the detector while the detector is on (Earth included)
    pix_arcmin2 = (float(inst.get("ccd.pixel_scale_arcsec")) / 60.0) ** 2
    rate = (
        float(inst.get("background.rate_per_arcmin2_s"))
        * cfg.background_scale
        * pix_arcmin2
        * nx
        * ny
    )
    on = _complement(saa, t0, t1)
    on_len = np.diff(on, axis=1).ravel()
    nb = int(rng.poisson(rate * on_len.sum()))
    cum_on = np.concatenate([[0.0], np.cumsum(on_len)])
    u = rng.random(nb) * cum_on[-1]
    seg = np.clip(np.searchsorted(cum_on, u, side="right") - 1, 0, len(on_len) - 1)
    tb = on[seg, 0] + (u - cum_on[seg])
    xs.append(rng.random(nb) * nx)
    ys.append(rng.random(nb) * ny)
    es.append(_powerlaw_energies(nb, cfg.background_index, cfg.e_min_kev, cfg.e_max_kev, rng))
    ts.append(tb)
    srcid.append(np.full(nb, -1, dtype=np.int32))

    x = np.concatenate(xs)
    y = np.concatenate(ys)
    e_true = np.concatenate(es)
    t = np.concatenate(ts)
    sid = np.concatenate(srcid)
    on_det = (x >= 0) & (x < nx) & (y >= 0) & (y < ny)
    on_det &= ~_intervals_mask(t, tele)  # telemetry gaps: the data never reach the ground
    x, y, e_true, t, sid = x[on_det], y[on_det], e_true[on_det], t[on_det], sid[on_det]
    e_meas = e_true + rng.normal(0.0, 1.0, e_true.size) * resolution_sigma_kev(e_true, inst)
    frame = np.floor((t - t0) / frame_time).astype(np.int64)
    rawx = np.floor(x).astype(np.int64)
    rawy = np.floor(y).astype(np.int64)
    sigma0 = float(inst.get("ccd.cloud_sigma_pix_at_1kev"))
    split_kev = float(inst.get("ccd.split_threshold_ev")) * 1e-3
    thresh_kev = float(inst.get("ccd.event_threshold_ev")) * 1e-3
    q, sx, sy = _split_charges(np.maximum(e_meas, 0.0), x - rawx, y - rawy, sigma0, split_kev)
    # pixel rows: (photon, which) for every pixel with charge
    px = np.stack([rawx, rawx + sx, rawx, rawx + sx], axis=1)
    py = np.stack([rawy, rawy, rawy + sy, rawy + sy], axis=1)
    keep_evt = q[:, 0] >= thresh_kev
    valid = (q > 0) & keep_evt[:, None] & (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    ph_idx, which = np.nonzero(valid)
    qp = q[ph_idx, which]
    pxr = px[ph_idx, which]
    pyr = py[ph_idx, which]
    # CTI: loss over RAWY + 1 transfers, stronger for small charge packets
    cti = float(inst.get("ccd.cti"))
    cti_k = float(inst.get("ccd.cti_energy_index"))
    q_obs = qp * (1.0 - cti * np.maximum(qp, 1e-3) ** cti_k) ** (pyr + 1)
    gain = (
        cfg.gain
        if cfg.gain is not None
        else float(inst.get("ccd.gain_ev_per_adu"))
        * (1.0 + float(inst.get("ccd.gain_scatter")) * rng.standard_normal(nx))
    )
    offset = (
        cfg.offset
        if cfg.offset is not None
        else float(inst.get("ccd.offset_adu"))
        + float(inst.get("ccd.offset_scatter_adu")) * rng.standard_normal(nx)
    )
    pha = np.floor(q_obs * 1e3 / gain[pxr] + offset[pxr] + rng.random(qp.size)).astype(np.int32)
    rows = {
        "TIME": t0 + (frame[ph_idx] + 0.5) * frame_time,
        "FRAME": frame[ph_idx].astype(np.int64),
        "RAWX": pxr.astype(np.int16),
        "RAWY": pyr.astype(np.int16),
        "PHA": pha,
    }
    order = np.lexsort((which, ph_idx, rows["FRAME"]))
    rows = {k: v[order] for k, v in rows.items()}

    # passes: contiguous chunks of the received time line, consecutive ones overlapping
    edges = np.linspace(t0, t1, cfg.n_passes + 1)
    passes, pass_gti = [], []
    n_dup = 0
    for k in range(cfg.n_passes):
        a = edges[k] - (cfg.pass_overlap_s if k > 0 else 0.0)
        b = edges[k + 1]
        sel = (rows["TIME"] >= a) & (rows["TIME"] < b)
        if k > 0:
            n_dup += int(((rows["TIME"] >= a) & (rows["TIME"] < edges[k])).sum())
        passes.append({kk: v[sel] for kk, v in rows.items()})
        gti = _complement(np.vstack([saa, tele]), a, b)
        pass_gti.append(gti)
    if cfg.corrupt_rows > 0 and passes:
        p = passes[-1]
        m = min(cfg.corrupt_rows, p["TIME"].size)
        bad = rng.choice(p["TIME"].size, m, replace=False)
        half = m // 2
        p["TIME"][bad[:half]] = np.nan
        p["RAWX"][bad[half:]] = nx + 100
    # file order is not time order: the last pass is dumped first
    order_files = [cfg.n_passes - 1, *range(cfg.n_passes - 1)]
    passes = [passes[i] for i in order_files]
    pass_gti = [pass_gti[i] for i in order_files]

    att_t = np.arange(t0, t1 + cfg.attitude_step_s, cfg.attitude_step_s)
    att_keep = ~_intervals_mask(att_t, np.array(cfg.attitude_gaps, dtype=float).reshape(-1, 2))
    att_t = att_t[att_keep]
    attitude = {
        "TIME": att_t,
        "RA": np.full(att_t.size, cfg.ra_deg),
        "DEC": np.full(att_t.size, cfg.dec_deg),
        "ROLL": np.full(att_t.size, cfg.roll_deg),
        "EARTH": _intervals_mask(att_t, earth).astype(np.int16),
    }
    pattern = pattern_table(inst, rng)
    truth = {
        "instrument": "MXT",
        "pointing": {"ra_deg": cfg.ra_deg, "dec_deg": cfg.dec_deg, "roll_deg": cfg.roll_deg},
        "tstart": t0,
        "tstop": t1,
        "sources": truth_sources,
        "n_background_events": int((sid == -1).sum()),
        "n_photon_events": int(keep_evt.sum()),
        "n_pixel_rows": int(rows["TIME"].size),
        "n_duplicated_rows": n_dup,
        "n_corrupted_rows": int(cfg.corrupt_rows),
        "gaps": {
            "saa": saa.tolist(),
            "earth": earth.tolist(),
            "telemetry": tele.tolist(),
            "attitude": [list(g) for g in cfg.attitude_gaps],
        },
        "cti": cti,
        "cti_energy_index": cti_k,
        "psf": {
            "generator": "caldb-model" if sky_psf is None else sky_psf.kind,
            "sky": psf.to_arcmin(pixel_arcsec) if sky_psf is None else sky_psf.as_dict(),
            "caldb_model": psf.to_arcmin(pixel_arcsec),
        },
    }
    photons = {
        "time": t0 + (frame + 0.5) * frame_time,
        "frame": frame,
        "rawx": rawx,
        "rawy": rawy,
        "energy_kev": e_true,
        "source": sid,
        "kept": keep_evt,
    }
    return MXTSimResult(
        passes=passes,
        pass_gti=pass_gti,
        attitude=attitude,
        saa=saa,
        earth=earth,
        telemetry=tele,
        photons=photons,
        gain=gain,
        offset=offset,
        cti=cti,
        cti_index=cti_k,
        psf=psf,
        pattern=pattern,
        config=cfg,
        truth=truth,
    )


def _mission_cards(
    inst: Any, extra: Sequence[tuple[str, Any, str]] = ()
) -> list[tuple[str, Any, str]]:
    return [("ORIGIN", "svomflow simulation", ""), *extra]


def write_simulation(
    result: MXTSimResult,
    out_dir: str | Path,
    instrument: Any | None = None,
    *,
    caldb: bool | str | os.PathLike[str] = True,
) -> dict[str, Any]:
    """Write the L1 pass files, attitude, SAA and calibration files; return the truth dict.

    Parameters
    ----------
    result
        The simulated observation.
    out_dir
        Where the files go (``truth.json`` lists them under ``files``).
    instrument
        The MXT definition (default: the packaged one).
    caldb
        Where to register the true calibration files (:func:`register_calibration_files`):
        ``True`` (default) the run's CALDB (``$SVOMFLOW_CALDB`` or ``$SVOMFLOW_HOME/caldb``),
        so that ``svomflow mxt`` selects them with no option; a directory for another CALDB;
        ``False`` for none (the Monte Carlo bench passes its files directly).
    """
    inst = instrument or load_instrument("mxt")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tel, ins = inst.telescope, inst.instrument
    tref = TimeReference(float(inst.get("time_reference.mjdref")))
    kw = inst.header_keywords
    files: dict[str, Any] = {"l1": []}
    for k, (ev, gti) in enumerate(zip(result.passes, result.pass_gti, strict=True)):
        cols = [
            fits.Column(kw.get("time", "TIME"), "D", unit="s", array=ev["TIME"]),
            fits.Column(kw.get("frame", "FRAME"), "K", array=ev["FRAME"]),
            fits.Column(kw.get("rawx", "RAWX"), "I", unit="pixel", array=ev["RAWX"]),
            fits.Column(kw.get("rawy", "RAWY"), "I", unit="pixel", array=ev["RAWY"]),
            fits.Column(kw.get("pha", "PHA"), "J", unit="adu", array=ev["PHA"]),
        ]
        evh = fits.BinTableHDU.from_columns(cols, name="EVENTS")
        h = evh.header
        for key, val, com in [
            ("TELESCOP", tel, ""),
            ("INSTRUME", ins, ""),
            ("HDUCLASS", "OGIP", ""),
            ("HDUCLAS1", "EVENTS", ""),
            ("DATAMODE", "PIXEL", "one row per pixel"),
            ("PASSID", k, "pass number (file order)"),
            ("TSTART", float(gti[0, 0]) if len(gti) else 0.0, ""),
            ("TSTOP", float(gti[-1, 1]) if len(gti) else 0.0, ""),
            ("FRAMETIM", float(inst.get("ccd.frame_time_s")), "[s] frame time"),
            ("TLMIN3", 0, ""),
            ("TLMAX3", int(inst.get("ccd.npix_x")) - 1, ""),
            ("TLMIN4", 0, ""),
            ("TLMAX4", int(inst.get("ccd.npix_y")) - 1, ""),
            (kw.get("ra_pointing", "RA_PNT"), result.config.ra_deg, "[deg]"),
            (kw.get("dec_pointing", "DEC_PNT"), result.config.dec_deg, "[deg]"),
            (kw.get("roll", "PA_PNT"), result.config.roll_deg, "[deg]"),
        ]:
            h[key] = (val, com)
        for card in tref.cards():
            h[card[0]] = (card[1], card[2])
        path = out / f"mxt_l1_pass{k:02d}.fits"
        write_hdulist(
            [
                primary_hdu(telescope=tel, instrument=ins, extra=_mission_cards(inst)),
                evh,
                gti_hdu(gti[:, 0], gti[:, 1], timeref=tref, telescope=tel, instrument=ins),
            ],
            path,
        )
        files["l1"].append(path.name)
    a = result.attitude
    att = fits.BinTableHDU.from_columns(
        [
            fits.Column("TIME", "D", unit="s", array=a["TIME"]),
            fits.Column("RA", "D", unit="deg", array=a["RA"]),
            fits.Column("DEC", "D", unit="deg", array=a["DEC"]),
            fits.Column("ROLL", "D", unit="deg", array=a["ROLL"]),
            fits.Column("EARTH", "I", array=a["EARTH"]),
        ],
        name="ATTITUDE",
    )
    att.header["TELESCOP"] = tel
    att.header["INSTRUME"] = ins
    att.header["TIMESTEP"] = (result.config.attitude_step_s, "[s] nominal row spacing")
    write_hdulist([primary_hdu(telescope=tel, instrument=ins), att], out / "mxt_att.fits")
    files["attitude"] = "mxt_att.fits"
    week = int(result.config.tstart // SECONDS_PER_WEEK)
    saa = result.saa
    saa_h = gti_hdu(
        saa[:, 0], saa[:, 1], timeref=tref, telescope=tel, instrument=ins, extname="SAA"
    )
    saa_h.header["WEEK"] = (week, "mission week number")
    name = f"mxt_saa_week{week:04d}.fits"
    write_hdulist([primary_hdu(telescope=tel, instrument=ins), saa_h], out / name)
    files["saa"] = name
    files["calibration"] = write_calibration_files(result, out, inst)
    files["caldb"] = None
    if caldb is not False:
        files["caldb"] = register_calibration_files(
            files["calibration"], out, inst, caldb=None if caldb is True else caldb
        )
    truth = dict(result.truth)
    truth["files"] = files
    with open(out / "truth.json", "w") as fh:
        json.dump(truth, fh, indent=2)
    return truth


# calibration files are written with this checksum comment instead of astropy's date, so
# that the same simulation writes the same bytes (and is recognised in the CALDB)
_CHECKSUM_NOTE = "svomflow simulated calibration"


def register_calibration_files(
    names: Mapping[str, str], out: Path, inst: Any, *, caldb: str | os.PathLike[str] | None = None
) -> str | None:
    """Register the written calibration files in a CALDB; return its location.

    The simulators' one rule (:func:`svomflow.simulation.calibration.register_calibration`):
    valid from 2020-01-01, and a file is not registered again while the CALDB already
    selects one with the same checksum for its code; a different field's files become the
    newest registration, hence the selected ones.

    Parameters
    ----------
    names
        ``{code name (any case): file name in out}``.
    out
        Directory of the files.
    inst
        The MXT instrument definition.
    caldb
        The CALDB directory (default ``$SVOMFLOW_CALDB`` or ``$SVOMFLOW_HOME/caldb``).

    Returns
    -------
    str or None
        The CALDB directory, or None when the CALDB is remote (read-only here: the files are
        not registered and a warning says so).
    """
    from svomflow.calibration.caldb import Caldb, open_caldb
    from svomflow.simulation.calibration import register_calibration

    db = open_caldb(caldb)
    if not isinstance(db, Caldb):
        log.warning("CALDB %s is remote: simulated calibration files not registered", db)
        return None
    register_calibration({k.upper(): out / v for k, v in names.items()}, inst, caldb_root=db.root)
    return str(db.root)


def _write_stable(hdus: Sequence[Any], path: Path) -> None:
    """Write HDUs with checksums whose comment carries no date (same content, same bytes)."""
    for h in hdus:
        h.add_checksum(when=_CHECKSUM_NOTE)
    write_hdulist(hdus, path, checksum=False)


def write_calibration_files(result: MXTSimResult, out: Path, inst: Any) -> dict[str, str]:
    """Write the true PSF, CTI, GAIN and PATTERN tables as CALDB files; return their names.

    Keys are the code names in lower case (``psf``, ``cti``, ``gain``, ``pattern``).
    """
    tel, ins = inst.telescope, inst.instrument
    pixel_scale = float(inst.get("ccd.pixel_scale_arcsec"))
    tables = {
        "psf": psf_hdu(result.psf, pixel_scale),
        "cti": cti_hdu(CTIModel(cti0=result.cti, index=result.cti_index)),
        "gain": gain_hdu(GainTable(gain=result.gain, offset=result.offset)),
        "pattern": pattern_hdu(
            PatternTable(result.pattern["energy_kev"], result.pattern["fraction"])
        ),
    }
    names = {}
    for key, hdu in tables.items():
        prim = primary_hdu(telescope=tel, instrument=ins,
                           extra=[("CCNM0001", key.upper(), "calibration code name")])  # fmt: skip
        names[key] = f"mxt_{key}.fits"
        _write_stable([prim, hdu], out / names[key])
    return names


def config_from_mapping(spec: Mapping[str, Any]) -> MXTSimConfig:
    """Build an :class:`MXTSimConfig` from a scenario mapping (``sources`` as mappings)."""
    data = dict(spec.get("mxt", spec))
    srcs = []
    pointing = data.pop("pointing", None)
    if pointing:
        data.setdefault("ra_deg", pointing.get("ra_deg"))
        data.setdefault("dec_deg", pointing.get("dec_deg"))
        data.setdefault("roll_deg", pointing.get("roll_deg", 0.0))
    for k, s in enumerate(data.pop("sources", [])):
        s = dict(s)
        s.setdefault("name", f"src{k + 1}")
        if "offset_arcmin" in s:
            # offsets (dY, dZ) from the boresight in arcmin, converted with the attitude
            oy, oz = (math.tan(math.radians(v / 60.0)) for v in s.pop("offset_arcmin"))
            att = Attitude(
                data.get("ra_deg", 150.0), data.get("dec_deg", 20.0), data.get("roll_deg", 0.0)
            )
            ra, dec = att.from_projected(oy, oz)
            s["ra_deg"], s["dec_deg"] = float(ra), float(dec)
        srcs.append(MXTSource(**s))
    known = set(MXTSimConfig.__dataclass_fields__)
    unknown = sorted(set(data) - known - {"instrument", "kind", "name", "description", "caldb"})
    if unknown:
        from svomflow.errors import ConfigError

        raise ConfigError(f"MXT scenario: unknown key(s) {', '.join(unknown)}")
    return MXTSimConfig(sources=srcs, **{k: v for k, v in data.items() if k in known})


def simulate_scenario(
    scenario: Mapping[str, Any], out_dir: str | Path, rng: np.random.Generator
) -> dict[str, Any]:
    """Simulate an MXT scenario and write its files; return the truth dict (bench entry point)."""
    cfg = config_from_mapping(scenario)
    result = simulate(cfg, rng)
    return write_simulation(result, out_dir, caldb=scenario.get("caldb", True))
