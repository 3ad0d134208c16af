"""Aperture and PSF photometry at given positions (photutils), with a per-pixel noise model.

Noise model per pixel (ADU): ``sigma^2 = rms_background^2 + max(signal, 0) / gain``, the
background rms from the sep map (read noise + sky) and the sources' Poisson term.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.stats import SigmaClip
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
from photutils.aperture import aperture_photometry as _aperture_photometry
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.photometry._kernels import psf_fit_sources
from svomflow.tasks.photometry.psf import PSFModel

__all__ = [
    "PhotometryConfig",
    "aperture_photometry",
    "fit_psf_photometry",
    "noise_map",
    "psf_photometry",
]


class PhotometryConfig(StepConfig):
    """Aperture and PSF photometry settings."""

    aperture_radius_fwhm: float = Field(
        1.5, gt=0, description="Aperture radius in units of the PSF FWHM."
    )
    annulus_fwhm: tuple[float, float] = Field(
        (4.0, 6.0), description="Local background annulus radii (units of FWHM)."
    )
    psf_fit_size_fwhm: float = Field(
        3.0, gt=0, description="PSF fit box width in units of FWHM (made odd)."
    )
    psf_oversampling: int = Field(4, ge=1, le=10, description="Oversampling of the ImagePSF.")
    fit_positions: bool = Field(True, description="Fit PSF positions (else forced photometry).")


def noise_map(background_rms: np.ndarray | float, signal: np.ndarray, gain: float) -> np.ndarray:
    """Return the per-pixel 1-sigma noise (ADU) from the background rms and Poisson signal."""
    if gain <= 0:
        raise InputDataError(f"gain must be positive, got {gain}")
    var = np.asarray(background_rms, float) ** 2 + np.clip(signal, 0, None) / gain
    return np.sqrt(var)


def aperture_photometry(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    radius: float,
    error: np.ndarray,
    annulus: tuple[float, float] | None = None,
    mask: np.ndarray | None = None,
) -> Table:
    """Measure circular-aperture fluxes at 0-based positions on a background-subtracted image.

    With ``annulus`` (inner, outer radius), a sigma-clipped median of the annulus is
    subtracted as residual local background, and its uncertainty added to the error.

    Returns
    -------
    Table
        ``FLUX_APER``, ``FLUXERR_APER``, ``BACKGROUND`` (per pixel, ADU) and ``NPIX_APER``.
    """
    pos = np.column_stack([np.atleast_1d(x), np.atleast_1d(y)])
    if len(pos) == 0:
        return Table(
            {k: np.zeros(0) for k in ("FLUX_APER", "FLUXERR_APER", "BACKGROUND", "NPIX_APER")}
        )
    ap = CircularAperture(pos, r=radius)
    res = _aperture_photometry(image, ap, error=error, mask=mask)
    flux = np.asarray(res["aperture_sum"], float)
    err = np.asarray(res["aperture_sum_err"], float)
    area = ap.area_overlap(image, mask=mask)
    bkg = np.zeros(len(pos))
    if annulus is not None:
        ann = CircularAnnulus(pos, r_in=annulus[0], r_out=annulus[1])
        st = ApertureStats(image, ann, mask=mask, sigma_clip=SigmaClip(sigma=3.0, maxiters=5))
        bkg = np.nan_to_num(np.asarray(st.median, float))
        nsky = np.maximum(np.asarray(st.sum_aper_area.value, float), 1.0)
        sky_sig = np.nan_to_num(np.asarray(st.std, float))
        flux = flux - bkg * area
        err = np.sqrt(err**2 + (area * sky_sig) ** 2 * (np.pi / 2) / nsky)
    return Table({"FLUX_APER": flux, "FLUXERR_APER": err, "BACKGROUND": bkg, "NPIX_APER": area})


def psf_photometry(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    psf: PSFModel,
    *,
    error: np.ndarray,
    config: PhotometryConfig | None = None,
    mask: np.ndarray | None = None,
    flux_guess: np.ndarray | None = None,
) -> Table:
    """Fit the PSF model (photutils ``PSFPhotometry`` with our pixel-integrated ImagePSF).

    Parameters
    ----------
    image
        Background-subtracted image (ADU).
    x, y
        0-based starting (or, with ``fit_positions=False``, fixed) positions.
    psf
        The fitted PSF model.
    error
        Per-pixel 1-sigma noise (ADU), see :func:`noise_map`.

    Returns
    -------
    Table
        ``X_PSF``, ``Y_PSF`` (0-based), ``FLUX_PSF``, ``FLUXERR_PSF``, ``QFIT_PSF``, ``FLAGS_PSF``.
    """
    from photutils.psf import PSFPhotometry

    cfg = config or PhotometryConfig()
    x = np.atleast_1d(np.asarray(x, float))
    y = np.atleast_1d(np.asarray(y, float))
    if len(x) == 0:
        return Table(
            {
                k: np.zeros(0)
                for k in ("X_PSF", "Y_PSF", "FLUX_PSF", "FLUXERR_PSF", "QFIT_PSF", "FLAGS_PSF")
            }
        )
    fwhm = psf.fwhm
    box = int(np.ceil(cfg.psf_fit_size_fwhm * fwhm)) | 1
    box = max(box, 5)
    model = psf.image_psf(size=box + 8, oversampling=cfg.psf_oversampling)
    if not cfg.fit_positions:
        model.x_0.fixed = True
        model.y_0.fixed = True
    phot = PSFPhotometry(model, (box, box), aperture_radius=max(1.5 * fwhm, 2.0))
    init = Table({"x": x, "y": y})
    if flux_guess is not None:
        init["flux"] = np.asarray(flux_guess, float)
    with warnings.catch_warnings():
        # photutils warns when a fit hits its iteration limit or a source is near an edge;
        # both end up in the flags column we return.
        warnings.simplefilter("ignore", AstropyUserWarning)
        res = phot(image, error=error, mask=mask, init_params=init)
    names = res.colnames
    return Table(
        {
            "X_PSF": np.asarray(res["x_fit"], float),
            "Y_PSF": np.asarray(res["y_fit"], float),
            "FLUX_PSF": np.asarray(res["flux_fit"], float),
            "FLUXERR_PSF": np.asarray(res["flux_err"], float),
            "QFIT_PSF": np.asarray(res["qfit"], float) if "qfit" in names else np.zeros(len(x)),
            "FLAGS_PSF": np.asarray(res["flags"], int),
        }
    )


def fit_psf_photometry(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    psf: PSFModel,
    *,
    error: np.ndarray,
    config: PhotometryConfig | None = None,
    mask: np.ndarray | None = None,
    max_iter: int = 20,
    nsub: int = 3,
) -> Table:
    """PSF photometry with our numba fitter (same model and columns as :func:`psf_photometry`).

    Weighted Gauss-Newton fit of (x, y, flux) per source on a box of ``psf_fit_size_fwhm``
    FWHM with the pixel-integrated core+wings model and analytic derivatives; isolated
    sources only (no simultaneous fit of neighbours). It agrees with photutils'
    ``PSFPhotometry`` (tests) and is what the GP1 pipeline runs on every source, because it
    is much faster (``benchmarks/bench_gp1_alert.py``).
    """
    cfg = config or PhotometryConfig()
    x = np.ascontiguousarray(np.atleast_1d(x), dtype=np.float64)
    y = np.ascontiguousarray(np.atleast_1d(y), dtype=np.float64)
    img = np.ascontiguousarray(image, dtype=np.float64)
    err = np.ascontiguousarray(np.broadcast_to(error, img.shape), dtype=np.float64)
    bad = np.zeros(img.shape, bool) if mask is None else np.ascontiguousarray(mask, dtype=bool)
    half = max(int(np.ceil(cfg.psf_fit_size_fwhm * psf.fwhm)) // 2, 2)
    out = np.zeros((len(x), 6))
    if len(x):
        psf_fit_sources(
            img, err, bad, x, y, float(psf.sigma), float(psf.alpha), float(psf.beta),
            float(psf.wing_fraction), half, nsub, bool(cfg.fit_positions), max_iter, out,
        )  # fmt: skip
    return Table(
        {
            "X_PSF": out[:, 0],
            "Y_PSF": out[:, 1],
            "FLUX_PSF": out[:, 2],
            "FLUXERR_PSF": out[:, 3],
            "QFIT_PSF": out[:, 4],
            "FLAGS_PSF": out[:, 5].astype(np.int32),
        }
    )
