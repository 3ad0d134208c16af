"""Monte Carlo of the MXT chain: simulate a field, run the steps, compare sources with the truth.

Each trial simulates a field with :mod:`svomflow.simulation.mxt` (own seed), runs the
``mxt_analysis`` pipeline without Prefect (:func:`svomflow.tasks.step.run_plain`: merge,
calibrate with the true calibration files, detection; the per-source products are turned
off, only positions are compared) and matches the detected sources to the injected ones. Used by the slow
tests and ``benchmarks/mc_mxt.py`` for the figures the MXT issue asks for: the position-error
distribution and the fraction of true positions inside r90 (bright, faint, crowded fields),
and detection completeness and false detections per field vs source flux. The PSF-mismatch
grid (:func:`mismatch_table`) draws the photons through a PSF that is not the CALDB model
(:mod:`svomflow.simulation.mxt_psf`) and counts false detections and r90 coverage per grid
point; :func:`run_trial` takes the same PSF through the scenario's ``psf`` key.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from svomflow.instruments.attitude import angular_separation_deg

__all__ = [
    "FIELDS",
    "MXTTrial",
    "analyse_field",
    "completeness_table",
    "field_trials",
    "mismatch_images",
    "mismatch_table",
    "mismatch_trial",
    "position_summary",
    "run_trial",
]

#: Packaged fields (scenario mappings for :func:`svomflow.simulation.mxt.config_from_mapping`).
FIELDS: dict[str, dict[str, Any]] = {
    "bright": {
        "duration_s": 4000.0,
        "sources": [{"name": "src", "offset_arcmin": [3.0, -2.0], "flux_ph_cm2_s": 0.05}],
    },
    "faint": {
        "duration_s": 4000.0,
        "sources": [{"name": "src", "offset_arcmin": [3.0, -2.0], "flux_ph_cm2_s": 0.004}],
    },
    "crowded": {
        "duration_s": 4000.0,
        "sources": [
            {"name": "a", "offset_arcmin": [3.0, -2.0], "flux_ph_cm2_s": 0.05},
            {"name": "b", "offset_arcmin": [7.0, -2.0], "flux_ph_cm2_s": 0.02},
            {"name": "c", "offset_arcmin": [-12.0, 9.0], "flux_ph_cm2_s": 0.03},
        ],
    },
}


@dataclass
class MXTTrial:
    """One simulated field: per injected source the match, and the unmatched detections."""

    seed: int
    n_injected: int
    n_detected: int
    matched: list[bool] = field(default_factory=list)
    error_arcsec: list[float] = field(default_factory=list)
    r90_arcsec: list[float] = field(default_factory=list)
    false_detections: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the trial as a plain dict."""
        return asdict(self)


def analyse_field(
    directory: Path,
    files: Mapping[str, Any],
    *,
    prior_radec: tuple[float, float] | None = None,
    overrides: list[str] | None = None,
) -> list[dict[str, float]]:
    """Run the MXT pipeline (plain Python, no products) on a simulated field; return sources.

    The calibration is the simulator's true files (``files["calibration"]``), given to the
    pipeline directly instead of through a CALDB; ``overrides`` are ``dotted.key=value``
    settings of :class:`~svomflow.tasks.xray.pipeline.MXTAnalysisConfig`. Each source has
    ``ra_deg``, ``dec_deg``, ``r90_arcsec``, ``counts`` and ``ml``.
    """
    from svomflow.calibration.calibration_set import CalibrationSet
    from svomflow.config import load_config
    from svomflow.tasks.step import run_plain
    from svomflow.tasks.xray.pipeline import MXT_PIPELINE, MXTAnalysisConfig, MXTRequest

    # positions only: the light curves and spectra of every source are not needed here
    config = load_config(
        MXTAnalysisConfig, overrides=["products.enabled=false", *(overrides or [])]
    )
    request = MXTRequest(
        l1_files=tuple(str(directory / f) for f in files["l1"]),
        attitude_file=str(directory / files["attitude"]),
        saa_file=str(directory / files["saa"]),
        prior_radec=prior_radec,
    )
    calibration = CalibrationSet.from_files(
        {f"mxt:{code.upper()}": directory / name for code, name in files["calibration"].items()}
    )
    outcome, _ = run_plain(MXT_PIPELINE, request, config, calibration=calibration)
    return [
        {"ra_deg": s.ra_deg, "dec_deg": s.dec_deg, "r90_arcsec": s.r90_arcsec,
         "counts": s.counts, "ml": s.ml}
        for s in outcome.sources
    ]  # fmt: skip


def run_trial(
    spec: Mapping[str, Any], seed: int, *, match_arcsec: float = 120.0, prior: bool = False
) -> MXTTrial:
    """Simulate ``spec`` with ``seed``, run the steps and match detections to the truth.

    A detection matches the nearest injected source within ``match_arcsec`` (each source at
    most once, brightest detections first); the others are false detections. ``prior``
    gives the first source's true position as the burst-mode prior.
    """
    from svomflow.simulation.mxt import config_from_mapping, simulate, write_simulation

    rng = np.random.default_rng(seed)
    result = simulate(config_from_mapping(spec), rng)
    with tempfile.TemporaryDirectory(prefix="mxt-mc-") as tmp:
        d = Path(tmp)
        truth = write_simulation(result, d, caldb=False)
        first = truth["sources"][0] if prior else None
        prior_radec = (first["ra_deg"], first["dec_deg"]) if first else None
        found = analyse_field(d, truth["files"], prior_radec=prior_radec)
    found = sorted(found, key=lambda s: -s["ml"])
    injected = truth["sources"]
    trial = MXTTrial(seed=seed, n_injected=len(injected), n_detected=len(found))
    taken: set[int] = set()
    best: dict[int, tuple[float, float]] = {}
    for s in found:
        seps = [
            float(angular_separation_deg(s["ra_deg"], s["dec_deg"], t["ra_deg"], t["dec_deg"]))
            * 3600.0
            for t in injected
        ]
        order = [i for i in np.argsort(seps) if i not in taken and seps[i] <= match_arcsec]
        if not order:
            trial.false_detections += 1
            continue
        i = int(order[0])
        taken.add(i)
        best[i] = (seps[i], float(s["r90_arcsec"]))
    for i in range(len(injected)):
        trial.matched.append(i in best)
        trial.error_arcsec.append(best[i][0] if i in best else math.nan)
        trial.r90_arcsec.append(best[i][1] if i in best else math.nan)
    return trial


def field_trials(
    spec: Mapping[str, Any], n_trials: int, seed: int, **kwargs: Any
) -> list[MXTTrial]:
    """Run ``n_trials`` independent trials of one field (seeds spawned from ``seed``)."""
    seeds = np.random.SeedSequence(seed).generate_state(n_trials)
    return [run_trial(spec, int(s), **kwargs) for s in seeds]


def position_summary(trials: Iterable[MXTTrial], source: int | None = None) -> dict[str, float]:
    """Return the position-error distribution and the coverage of r90 over matched sources.

    ``source`` restricts to one injected source (index); None pools all of them.
    """
    err, r90 = [], []
    for t in trials:
        idx = range(t.n_injected) if source is None else [source]
        for i in idx:
            if t.matched[i]:
                err.append(t.error_arcsec[i])
                r90.append(t.r90_arcsec[i])
    e, r = np.array(err), np.array(r90)
    if e.size == 0:
        return {"n": 0}
    return {
        "n": int(e.size),
        "median_error_arcsec": float(np.median(e)),
        "p68_error_arcsec": float(np.quantile(e, 0.68)),
        "p90_error_arcsec": float(np.quantile(e, 0.90)),
        "median_r90_arcsec": float(np.median(r)),
        "inside_r90": float(np.mean(e <= r)),
    }


def completeness_table(
    fluxes: Iterable[float],
    n_trials: int,
    seed: int,
    *,
    offset_arcmin: tuple[float, float] = (3.0, -2.0),
    duration_s: float = 4000.0,
) -> list[dict[str, float]]:
    """Return, per source flux, the detection completeness and false detections per field.

    One constant source (0.3-10 keV photon flux in ph/cm2/s) per field, general-program mode
    (no prior).
    """
    rows = []
    for j, flux in enumerate(fluxes):
        spec = {
            "duration_s": duration_s,
            "sources": [
                {"name": "src", "offset_arcmin": list(offset_arcmin), "flux_ph_cm2_s": flux}
            ],
        }
        tr = field_trials(spec, n_trials, seed + 1000 * j)
        found = np.array([t.matched[0] for t in tr])
        false = np.array([t.false_detections for t in tr])
        pos = position_summary(tr)
        rows.append(
            {
                "flux_ph_cm2_s": float(flux),
                "trials": len(tr),
                "completeness": float(found.mean()),
                "completeness_err": float(np.sqrt(found.mean() * (1 - found.mean()) / len(tr))),
                "false_per_field": float(false.mean()),
                "inside_r90": pos.get("inside_r90", math.nan),
                "median_error_arcsec": pos.get("median_error_arcsec", math.nan),
            }
        )
    return rows


#: The PSF-mismatch field: a bright source and two fainter ones (3 bands, about 1e5 events),
#: positions (x, y) in detector pixels and counts per band (0.3-1, 1-2, 2-10 keV).
MISMATCH_XY = np.array([[120.3, 130.7], [150.2, 140.1], [60.5, 195.2]])
MISMATCH_COUNTS = 1.3 * np.array([[2.4e4, 1.2e4, 6e3], [1.2e4, 6e3, 2.4e3], [6e3, 3.6e3, 1.2e3]])
MISMATCH_BKG = np.array([0.06, 0.04, 0.02])


def mismatch_images(
    rng: np.random.Generator,
    *,
    core_factor: float | None,
    arm_factor: float = 1.0,
    xy: NDArray[np.float64] = MISMATCH_XY,
    counts: NDArray[np.float64] = MISMATCH_COUNTS,
    bkg: NDArray[np.float64] = MISMATCH_BKG,
) -> NDArray[np.float64]:
    """Return band images (n_bands, 256, 256) of point sources seen through a foreign PSF.

    Photons are drawn from :class:`~svomflow.simulation.mxt_psf.MoffatExpPSF` with the CALDB
    model's core FWHM times ``core_factor`` and arm length times ``arm_factor`` (None: from
    the CALDB model itself, the matched case), binned on the detector pixels, plus a flat
    Poisson background per band. This is the detection's input without the CCD chain (which
    :func:`run_trial` adds and which does not change the PSF), so a grid of PSFs runs fast.
    """
    from svomflow.config import load_instrument
    from svomflow.instruments.mxt_calibration import PSFModel
    from svomflow.simulation.mxt_psf import MoffatExpPSF

    inst = load_instrument("mxt")
    scale = float(inst.get("ccd.pixel_scale_arcsec"))
    ny, nx = int(inst.get("ccd.npix_y")), int(inst.get("ccd.npix_x"))
    model = PSFModel.from_instrument(inst)
    gen = (
        None
        if core_factor is None
        else MoffatExpPSF.from_model(model, scale, core_factor=core_factor, arm_factor=arm_factor)
    )
    nb = counts.shape[1]
    imgs = np.stack([rng.poisson(bkg[b], (ny, nx)).astype(np.float64) for b in range(nb)])
    for s in range(len(xy)):
        for b in range(nb):
            n = int(rng.poisson(counts[s, b]))
            dx, dy = model.sample(n, rng) if gen is None else gen.sample(n, rng, scale)
            x, y = xy[s, 0] + dx, xy[s, 1] + dy
            ok = (x >= 0) & (x < nx) & (y >= 0) & (y < ny)
            imgs[b] += np.bincount(
                np.floor(y[ok]).astype(np.int64) * nx + np.floor(x[ok]).astype(np.int64),
                minlength=nx * ny,
            ).reshape(ny, nx)
    return imgs


def mismatch_trial(
    seed: int,
    *,
    core_factor: float | None,
    arm_factor: float = 1.0,
    overrides: Mapping[str, Any] | None = None,
    match_arcsec: float = 120.0,
) -> MXTTrial:
    """Detect the sources of one :func:`mismatch_images` field with the CALDB PSF; match them.

    ``overrides`` are :class:`~svomflow.tasks.xray.detect.DetectConfig` settings. Matching
    as in :func:`run_trial` (detector positions, the pixel scale converting to arcsec).
    """
    from svomflow.config import load_instrument
    from svomflow.instruments.attitude import Attitude
    from svomflow.instruments.mxt_calibration import PSFModel
    from svomflow.tasks.xray.detect import DetectConfig, detect_field

    inst = load_instrument("mxt")
    scale = float(inst.get("ccd.pixel_scale_arcsec"))
    imgs = mismatch_images(
        np.random.default_rng(seed), core_factor=core_factor, arm_factor=arm_factor
    )
    det = detect_field(
        imgs, PSFModel.from_instrument(inst), Attitude(150.0, 20.0, 0.0),
        pixel_scale_arcsec=scale, exposure_s=4000.0, cfg=DetectConfig(**dict(overrides or {})),
    )  # fmt: skip
    trial = MXTTrial(seed=seed, n_injected=len(MISMATCH_XY), n_detected=len(det.sources))
    taken: dict[int, tuple[float, float]] = {}
    for s in sorted(det.sources, key=lambda r: -r.ml):
        sep = np.hypot(MISMATCH_XY[:, 0] - s.x, MISMATCH_XY[:, 1] - s.y) * scale
        free = [int(i) for i in np.argsort(sep) if int(i) not in taken and sep[i] <= match_arcsec]
        if not free:
            trial.false_detections += 1
            continue
        taken[free[0]] = (float(sep[free[0]]), s.r90_arcsec)
    for i in range(len(MISMATCH_XY)):
        trial.matched.append(i in taken)
        trial.error_arcsec.append(taken[i][0] if i in taken else math.nan)
        trial.r90_arcsec.append(taken[i][1] if i in taken else math.nan)
    return trial


def mismatch_table(
    grid: Iterable[tuple[float | None, float]],
    n_trials: int,
    seed: int,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> list[dict[str, float]]:
    """Return, per (core factor, arm factor) of the sky's PSF, false detections and r90 coverage.

    ``None`` as the core factor is the matched case (photons from the CALDB model).
    """
    rows = []
    for j, (cf, af) in enumerate(grid):
        seeds = np.random.SeedSequence([seed, j]).generate_state(n_trials)
        tr = [
            mismatch_trial(int(s), core_factor=cf, arm_factor=af, overrides=overrides)
            for s in seeds
        ]
        pos = position_summary(tr)
        rows.append(
            {
                "core_factor": math.nan if cf is None else float(cf),
                "arm_factor": float(af),
                "trials": len(tr),
                "false_per_field": float(np.mean([t.false_detections for t in tr])),
                "found": float(np.mean([np.mean(t.matched) for t in tr])),
                "inside_r90": pos.get("inside_r90", math.nan),
                "median_error_arcsec": pos.get("median_error_arcsec", math.nan),
            }
        )
    return rows
