"""GRM coarse localisation: chi-square grid search over the sky on the detectors' count ratios.

For a trial direction d the expected background-subtracted counts of detector k in a band are
``F * R_k(d)``, with ``R_k`` the band response of the detector for an assumed spectrum (from the
GRM response model) and ``F`` a free amplitude solved analytically. The statistic is
``chi2(d) = sum_k (c_k - F R_k)^2 / var_k`` with ``var_k`` the Poisson variance of source plus
background counts. A Fibonacci sphere grid (about 1.4 deg spacing) is searched, then a fine
grid around the minimum; the 1-sigma and 90 % regions are ``chi2 < min + 2.30`` and
``min + 4.61`` (two parameters), turned into radii from their solid angle and combined in
quadrature with the instrument's systematic error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import Field
from svomflow.array_cache import cached_arrays, digest, source_digest
from svomflow.config.base import StepConfig
from svomflow.config.instrument import InstrumentDefinition, load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments import grm_response, spectra
from svomflow.instruments.attitude import Attitude, unit_to_radec
from svomflow.instruments.grm_response import (
    GRMResponseModel,
    band_response,
    band_weights,
    photon_bins,
)
from svomflow.instruments.spectra import Spectrum

__all__ = ["GRMLocalisation", "GRMLocalisationConfig", "expected_band_counts", "localise_grm"]

DCHI2_1SIGMA = 2.30  # two free parameters
DCHI2_90 = 4.61


class GRMLocalisationConfig(StepConfig):
    """Settings of the GRM count-ratio localisation."""

    band_kev: tuple[float, float] = Field((50.0, 300.0), description="Counts band (keV)")
    spectrum_model: str = Field("band", description="Assumed spectrum: band, cpl or powerlaw")
    alpha: float = Field(-1.0, description="Assumed Band alpha / CPL or PL index")
    beta: float = Field(-2.3, description="Assumed Band beta")
    epeak_kev: float = Field(300.0, description="Assumed Epeak (keV)")
    n_grid: int = Field(20000, ge=500, description="Points of the coarse Fibonacci sky grid")
    refine_radius_deg: float = Field(8.0, gt=0, description="Radius of the fine grid (deg)")
    n_refine: int = Field(1500, ge=100, description="Points of the fine grid")
    front_only: bool = Field(
        True, description="Search only the hemisphere in front of the spacecraft (X > 0)"
    )
    systematic_deg: float | None = Field(
        None, description="Systematic error (deg); default from the instrument file"
    )


@dataclass(frozen=True)
class GRMLocalisation:
    """Result: position, error radii (deg, systematic included) and the fit statistics."""

    ra_deg: float
    dec_deg: float
    error_radius_1sigma_deg: float
    error_radius_90_deg: float
    stat_radius_90_deg: float
    chi2_min: float
    amplitude: float
    direction_sc: tuple[float, float, float]


def _fibonacci_sphere(n: int) -> NDArray[np.float64]:
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    return np.column_stack([z, r * np.cos(phi), r * np.sin(phi)])  # X first (boresight)


def _cap(center: NDArray[np.float64], radius_deg: float, n: int) -> NDArray[np.float64]:
    i = np.arange(n) + 0.5
    cmax = np.cos(np.radians(radius_deg))
    c = 1 - (1 - cmax) * i / n
    phi = np.pi * (1 + 5**0.5) * i
    s = np.sqrt(1 - c**2)
    local = np.column_stack([c, s * np.cos(phi), s * np.sin(phi)])
    # Rotate +X onto the centre (Rodrigues).
    x = np.array([1.0, 0.0, 0.0])
    v = np.cross(x, center)
    sn, cs = np.linalg.norm(v), float(x @ center)
    if sn < 1e-12:
        return local if cs > 0 else -local
    k = v / sn
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + sn * kx + (1 - cs) * kx @ kx
    return local @ rot.T


@cache
def _weights(cfg_key: tuple, model: GRMResponseModel) -> NDArray[np.float64]:
    shape, alpha, beta, epeak, band = cfg_key
    if shape == "band":
        sp = Spectrum("band", alpha=alpha, beta=beta, epeak=epeak)
    elif shape == "cpl":
        sp = Spectrum("cpl", index=alpha, epeak=epeak)
    else:
        sp = Spectrum("powerlaw", index=alpha)
    return band_weights(sp.evaluate, band, model=model)


def expected_band_counts(
    directions_sc: ArrayLike, config: GRMLocalisationConfig, model: GRMResponseModel
) -> NDArray[np.float64]:
    """Return the band response (n_dir, n_det) of each detector for spacecraft-frame directions.

    Units: counts per unit spectral amplitude (the assumed spectrum with K = 1 ph/cm2/s/keV
    at 100 keV, per second).
    """
    d = np.atleast_2d(np.asarray(directions_sc, dtype=np.float64))
    return _band_counts(d, _weights(_config_key(config), model), model)


def _band_counts(
    directions: NDArray[np.float64], weights: NDArray[np.float64], model: GRMResponseModel
) -> NDArray[np.float64]:
    """Return the band response (n_dir, n_det) of each detector for the band ``weights``."""
    return np.column_stack(
        [band_response(directions @ ax, weights, model=model) for ax in model.axes.values()]
    )


def _config_key(cfg: GRMLocalisationConfig) -> tuple:
    return (cfg.spectrum_model, cfg.alpha, cfg.beta, cfg.epeak_kev, tuple(cfg.band_kev))


@cache
def _coarse_grid(
    key: tuple, n_grid: int, front_only: bool, model: GRMResponseModel
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Return the coarse sky grid, the band weights and the grid's band responses.

    About a second of CPU, so kept across processes (:func:`svomflow.array_cache.cached_arrays`
    in the home's cache folder, filled by ``svomflow warm`` or the first run) under a digest
    of all they depend on: the response model (every number of the RSPPAR file), the
    photon bins, the assumed spectrum and band (``key``), the grid and this code's source.
    """
    grid = _fibonacci_sphere(n_grid)
    if front_only:
        grid = grid[grid[:, 0] > -0.2]

    def compute() -> dict[str, NDArray[np.float64]]:
        w = _weights(key, model)
        return {"weights": w, "response": _band_counts(grid, w, model)}

    version = digest(source_digest(sys.modules[__name__], grm_response, spectra), np.__version__)
    digest_ = digest(model.geometry, model.axes, photon_bins(), key, n_grid, front_only)
    arrays = cached_arrays("grm-band-response", digest_, compute, version=version)
    return (
        grid,
        np.asarray(arrays["weights"], np.float64),
        np.asarray(arrays["response"], np.float64),
    )


def _chi2(
    resp: NDArray[np.float64], counts: NDArray[np.float64], var: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    num = (resp * counts / var).sum(axis=1)
    den = (resp**2 / var).sum(axis=1)
    amp = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    chi2 = (((counts - amp[:, None] * resp) ** 2) / var).sum(axis=1)
    # Directions that see nothing cannot explain a positive signal.
    chi2 = np.where(den > 0, chi2, np.inf)
    return chi2, amp


def localise_grm(
    net_counts: ArrayLike,
    variances: ArrayLike,
    *,
    attitude: Attitude,
    model: GRMResponseModel,
    config: GRMLocalisationConfig | None = None,
    instrument: InstrumentDefinition | None = None,
) -> GRMLocalisation:
    """Locate a burst from the background-subtracted band counts of the GRM detectors.

    Parameters
    ----------
    net_counts
        Source counts per detector (in the order of the instrument file), background removed.
    variances
        Their variances (source + background counts, plus background-model variance).
    attitude
        Spacecraft attitude (X = ECLAIRs boresight) to convert to RA/Dec.
    model
        The GRM response model (CALDB ``RSPPAR``).
    config
        Step configuration.
    instrument
        GRM definition, for the systematic error term (default: packaged).
    """
    cfg = config or GRMLocalisationConfig()
    inst = instrument or load_instrument("grm")
    c = np.asarray(net_counts, dtype=np.float64)
    var = np.asarray(variances, dtype=np.float64)
    n_det = len(model.axes)
    if c.shape != (n_det,) or var.shape != (n_det,):
        raise InputDataError(f"need {n_det} net counts and variances, one per GRM detector")
    if np.any(~np.isfinite(c)) or np.any(var <= 0):
        raise InputDataError("net counts must be finite and variances positive")
    if c.sum() <= 0:
        raise InputDataError("no net source counts in the GRM detectors: cannot localise")
    grid, weights, resp = _coarse_grid(_config_key(cfg), cfg.n_grid, cfg.front_only, model)
    chi2, _ = _chi2(resp, c, var)
    best = grid[int(np.argmin(chi2))]
    fine = _cap(best, cfg.refine_radius_deg, cfg.n_refine)
    chi2_f, amp_f = _chi2(_band_counts(fine, weights, model), c, var)
    i = int(np.argmin(chi2_f))
    chi_min = float(chi2_f[i])
    # Region sizes: use the coarse grid too, in case the region outgrows the fine cap.
    area_coarse = 4 * np.pi / cfg.n_grid
    area_fine = 2 * np.pi * (1 - np.cos(np.radians(cfg.refine_radius_deg))) / cfg.n_refine

    def radius(delta: float) -> float:
        n_fine = int((chi2_f < chi_min + delta).sum())
        if n_fine < 0.8 * cfg.n_refine:
            solid = n_fine * area_fine
        else:
            solid = int((chi2 < chi_min + delta).sum()) * area_coarse
        solid = max(solid, area_fine)
        return float(np.degrees(np.arccos(1 - solid / (2 * np.pi))))

    sys = (
        float(inst.get("localisation.systematic_deg"))
        if cfg.systematic_deg is None
        else cfg.systematic_deg
    )
    r1, r90 = radius(DCHI2_1SIGMA), radius(DCHI2_90)
    ra, dec = unit_to_radec(fine[i] @ attitude.matrix())
    return GRMLocalisation(
        ra_deg=float(ra),
        dec_deg=float(dec),
        error_radius_1sigma_deg=float(np.hypot(r1, sys)),
        error_radius_90_deg=float(np.hypot(r90, sys * 1.645)),
        stat_radius_90_deg=r90,
        chi2_min=chi_min,
        amplitude=float(amp_f[i]),
        direction_sc=(float(fine[i][0]), float(fine[i][1]), float(fine[i][2])),
    )
