"""Monte Carlo of the ECLAIRs quick position: simulate, localise, compare with the truth.

Used by the tests (coverage of the 90 % radius, median error) and to calibrate
``localisation.statistical_scale`` (``k``): :func:`calibrate_statistical_scale` returns the
90 % quantile of ``error / (fwhm / snr)`` over detected trials, with the systematic term
off because the simulator has no systematic error; :func:`calibrate_scale_table` does the
same per S/N bin (``localisation.statistical_scale_table``), and :func:`coverage_by_snr`
reports the fraction of true positions inside r90 per bin.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
from svomflow.config import InstrumentDefinition, load_instrument
from svomflow.instruments.attitude import Attitude, angular_separation_deg
from svomflow.instruments.coded_mask import MaskGeometry, cos_theta
from svomflow.simulation.eclairs import simulate_eclairs
from svomflow.simulation.photons import PhotonList
from svomflow.tasks.coded_mask.imaging import MaskModel, make_shadowgram
from svomflow.tasks.coded_mask.position import LocalisationConfig, localise

__all__ = [
    "LocalisationTrial",
    "calibrate_scale_table",
    "calibrate_statistical_scale",
    "coverage_by_snr",
    "localisation_trials",
]


@dataclass
class LocalisationTrial:
    """One simulated burst: truth, recovered position and error measures (arcmin)."""

    seed: int
    tan_y: float
    tan_z: float
    off_axis_deg: float
    n_photons: int
    snr: float
    error_arcmin: float
    stat_arcmin: float
    r90_arcmin: float
    detected: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        """Return the trial as a plain dict."""
        return asdict(self)


def _burst(
    rng: np.random.Generator,
    n: int,
    ra: float,
    dec: float,
    t0: float,
    duration: float,
    index: float,
) -> PhotonList:
    t = np.sort(rng.uniform(t0, t0 + duration, n))
    lo, hi = 4.0, 150.0
    g = 1.0 - index
    e = (lo**g + rng.random(n) * (hi**g - lo**g)) ** (1.0 / g)
    return PhotonList(t, e, ra, dec, area_cm2=1100.0, label="grb")


def localisation_trials(
    n_trials: int,
    *,
    seed: int,
    photons: tuple[float, float] = (3000.0, 30000.0),
    max_tan: float = 0.9,
    min_coding_truth: float = 0.2,
    duration_s: float = 10.0,
    background_s: float = 40.0,
    photon_index: float = 1.5,
    snr_threshold: float = 6.5,
    band_kev: tuple[float, float] = (4.0, 50.0),
    config: LocalisationConfig | None = None,
    instrument: InstrumentDefinition | None = None,
) -> list[LocalisationTrial]:
    """Simulate bursts at random field positions and localise each one.

    Each trial: a constant burst of ``duration_s`` (photon count log-uniform in ``photons``
    on 1100 cm2, power-law ``photon_index``) at a random projected position with
    ``|tan| <= max_tan`` and a partial-coding fraction of at least ``min_coding_truth``,
    on top of the instrument's background; the shadowgram of the burst interval minus a
    preceding background interval is localised. A trial is ``detected`` if the fit S/N
    reaches ``snr_threshold``; a detection far from the truth counts as an error like any
    other (no outlier rejection).
    """
    inst = instrument or load_instrument("eclairs")
    cfg = config or LocalisationConfig.from_instrument(inst)
    geom = MaskGeometry.from_instrument(inst)
    model = MaskModel.from_geometry(geom)
    ss = np.random.SeedSequence(seed)
    out: list[LocalisationTrial] = []
    full_illum = float(model.source_shadow(0.0, 0.0).sum())
    for child in ss.spawn(n_trials):
        rng = np.random.default_rng(child)
        while True:
            ty, tz = rng.uniform(-max_tan, max_tan, 2)
            if model.source_shadow(ty, tz).sum() >= min_coding_truth * full_illum:
                break
        att = Attitude(
            float(rng.uniform(0, 360)), float(rng.uniform(-60, 60)), float(rng.uniform(0, 360))
        )
        ra, dec = att.from_projected(ty, tz)
        n = int(np.exp(rng.uniform(np.log(photons[0]), np.log(photons[1]))))
        t_burst = 1000.0
        plist = _burst(rng, n, float(ra), float(dec), t_burst, duration_s, photon_index)
        ev = simulate_eclairs(
            [plist],
            attitude=att,
            t_start=t_burst - background_s - 1.0,
            t_stop=t_burst + duration_s,
            rng=rng,
            instrument=inst,
            run_trigger=False,
        )
        sg = make_shadowgram(
            ev.time,
            ev.y,
            ev.z,
            ev.energy_kev,
            shape=geom.shape,
            band_kev=band_kev,
            interval=(t_burst, t_burst + duration_s),
            background_interval=(t_burst - background_s - 1.0, t_burst - 1.0),
            gti=ev.gti,
        )
        pos = localise(sg, model, att, cfg)
        err = float(angular_separation_deg(pos.ra_deg, pos.dec_deg, ra, dec)) * 60.0
        out.append(
            LocalisationTrial(
                seed=int(child.spawn_key[-1]),
                tan_y=float(ty),
                tan_z=float(tz),
                off_axis_deg=float(np.degrees(np.arccos(cos_theta(ty, tz)))),
                n_photons=n,
                snr=pos.snr,
                error_arcmin=err,
                stat_arcmin=pos.stat_arcmin,
                r90_arcmin=pos.r90_arcmin,
                detected=pos.snr >= snr_threshold,
            )
        )
    return out


def calibrate_statistical_scale(trials: list[LocalisationTrial], quantile: float = 0.9) -> float:
    """Return k such that ``error <= k * stat`` in a fraction ``quantile`` of detected trials."""
    ratio = np.array([t.error_arcmin / t.stat_arcmin for t in trials if t.detected])
    if ratio.size == 0:
        raise ValueError("no detected trial to calibrate on")
    return float(np.quantile(ratio, quantile))


def calibrate_scale_table(
    trials: list[LocalisationTrial], snr_min: list[float], quantile: float = 0.9
) -> list[dict[str, float]]:
    """Return k per S/N bin: the ``quantile`` of ``error / stat`` of detected trials in the bin.

    Bin ``i`` holds ``snr_min[i] <= snr < snr_min[i + 1]`` (the last bin is open). Each row
    gives ``snr_min``, ``k``, the number of trials ``n`` and ``k_err``, the standard error
    of the quantile from the binomial spread of its rank (order statistics).
    """
    det = [t for t in trials if t.detected]
    snr = np.array([t.snr for t in det])
    ratio = np.array([t.error_arcmin / t.stat_arcmin for t in det])
    edges = [*snr_min, np.inf]
    rows = []
    for lo, hi in itertools.pairwise(edges):
        r = np.sort(ratio[(snr >= lo) & (snr < hi)])
        if r.size < 10:
            raise ValueError(f"S/N bin [{lo}, {hi}): only {r.size} detected trials")
        # the quantile's rank scatters by sqrt(n q (1 - q)): map that onto the sorted ratios
        half = np.sqrt(r.size * quantile * (1 - quantile))
        lo_i = int(np.clip(np.floor(r.size * quantile - half), 0, r.size - 1))
        hi_i = int(np.clip(np.ceil(r.size * quantile + half), 0, r.size - 1))
        rows.append(
            {
                "snr_min": float(lo),
                "k": float(np.quantile(r, quantile)),
                "k_err": float(0.5 * (r[hi_i] - r[lo_i])),
                "n": int(r.size),
            }
        )
    return rows


def coverage_by_snr(
    trials: list[LocalisationTrial], snr_min: list[float]
) -> list[dict[str, float]]:
    """Return, per S/N bin, the number of detected trials and the fraction inside r90."""
    det = [t for t in trials if t.detected]
    edges = [*snr_min, np.inf]
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = [t for t in det if lo <= t.snr < hi]
        inside = sum(t.error_arcmin <= t.r90_arcmin for t in sel)
        rows.append(
            {
                "snr_min": float(lo),
                "n": len(sel),
                "inside": int(inside),
                "coverage": inside / len(sel) if sel else float("nan"),
            }
        )
    return rows
