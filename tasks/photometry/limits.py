"""Limiting magnitude (from the noise model) and fake-star completeness/flux recovery.

For background-limited point sources the PSF-fit flux error is ``sigma_bkg * sqrt(NEA)``
with the noise-equivalent area ``NEA = 1 / sum(P_i^2)`` of the pixel-integrated PSF. The
n-sigma limit solves ``F = n sqrt(sigma^2 NEA + F / gain)`` (the source's own Poisson noise
included). The aperture variant uses the aperture area and divides by the fraction of the
PSF flux inside the aperture. Injection of fake stars checks both: at the limit, about half
the injected stars come out above n sigma.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table
from svomflow.errors import InputDataError
from svomflow.tasks.photometry.extract import ExtractConfig, extract_sources
from svomflow.tasks.photometry.inject import inject_stars
from svomflow.tasks.photometry.measure import PhotometryConfig, fit_psf_photometry, noise_map
from svomflow.tasks.photometry.psf import PSFModel

__all__ = [
    "CompletenessResult",
    "aperture_fraction",
    "completeness",
    "limiting_flux",
    "limiting_magnitude",
    "noise_equivalent_area",
]


def noise_equivalent_area(psf: PSFModel, size: int | None = None) -> float:
    """Return ``1 / sum(P_i^2)`` (pixels) of the pixel-integrated PSF centred on a pixel."""
    r = size or max(psf.radius(1e-4), 5)
    n = 2 * r + 1
    img = psf.render((n, n), np.array([float(r)]), np.array([float(r)]), np.array([1.0]))
    return float(1.0 / np.sum(img**2))


def aperture_fraction(psf: PSFModel, radius: float) -> float:
    """Return the fraction of a star's flux inside a circular aperture of ``radius`` pixels."""
    r = int(np.ceil(radius)) + 2
    n = 2 * r + 1
    img = psf.render((n, n), np.array([float(r)]), np.array([float(r)]), np.array([1.0]), nsub=5)
    from photutils.aperture import CircularAperture

    return float(CircularAperture((r, r), radius).do_photometry(img)[0][0])


def limiting_flux(
    background_rms: float,
    psf: PSFModel,
    *,
    nsigma: float = 5.0,
    gain: float | None = None,
    aperture_radius: float | None = None,
) -> float:
    """Return the total flux (ADU) of a point source detected at ``nsigma``.

    With ``aperture_radius`` the limit is for aperture photometry (aperture-corrected to the
    total flux); otherwise for PSF-fit photometry.
    """
    if background_rms <= 0 or not np.isfinite(background_rms):
        raise InputDataError(f"background rms must be positive, got {background_rms}")
    if aperture_radius is None:
        area = noise_equivalent_area(psf)
        frac = 1.0
    else:
        area = np.pi * aperture_radius**2
        frac = aperture_fraction(psf, aperture_radius)
    b = background_rms**2 * area
    # Aperture flux f = frac * F: f = n sqrt(b + f / g)  ->  f^2 - n^2 f / g - n^2 b = 0.
    k = 0.0 if not gain else nsigma**2 / gain
    f = 0.5 * (k + np.sqrt(k**2 + 4 * nsigma**2 * b))
    return float(f / frac)


def limiting_magnitude(
    background_rms: float,
    psf: PSFModel,
    zero_point: float,
    exptime: float,
    *,
    nsigma: float = 5.0,
    gain: float | None = None,
    aperture_radius: float | None = None,
) -> float:
    """Return the ``nsigma`` limiting magnitude (zero point for 1 ADU/s)."""
    if exptime <= 0:
        raise InputDataError(f"exposure time must be positive, got {exptime}")
    f = limiting_flux(
        background_rms, psf, nsigma=nsigma, gain=gain, aperture_radius=aperture_radius
    )
    return float(zero_point - 2.5 * np.log10(f / exptime))


@dataclass
class CompletenessResult:
    """Fake-star recovery per injected magnitude."""

    table: Table
    """One row per injected star: MAG_IN, FLUX_IN, DETECTED, FLUX_PSF, FLUXERR_PSF, SNR."""

    def curve(self) -> Table:
        """Return completeness and median flux ratio per injected magnitude."""
        mags = np.unique(self.table["MAG_IN"])
        rows = []
        for m in mags:
            t = self.table[self.table["MAG_IN"] == m]
            ratio = t["FLUX_PSF"] / t["FLUX_IN"]
            pull = (t["FLUX_PSF"] - t["FLUX_IN"]) / t["FLUXERR_PSF"]
            rows.append(
                (
                    m,
                    len(t),
                    float(np.mean(t["DETECTED"])),
                    float(np.mean(t["SNR"] >= 5)),
                    float(np.median(ratio)),
                    float(np.std(pull)),
                )
            )
        return Table(
            rows=rows,
            names=("MAG", "N", "COMPLETENESS", "FRAC_SNR5", "FLUX_RATIO", "PULL_STD"),
        )


def completeness(
    image: np.ndarray,
    psf: PSFModel,
    *,
    mags: np.ndarray,
    zero_point: float,
    exptime: float,
    gain: float,
    n_per_mag: int = 20,
    rng: np.random.Generator,
    extract_config: ExtractConfig | None = None,
    photometry_config: PhotometryConfig | None = None,
    match_radius: float = 1.5,
    avoid: np.ndarray | None = None,
    border: int = 20,
    min_separation_fwhm: float = 8.0,
) -> CompletenessResult:
    """Inject fake stars at each magnitude, re-extract and measure them (PSF photometry).

    Stars are placed on a jittered grid (no fake-fake blends) at least
    ``min_separation_fwhm`` FWHM away from ``avoid`` positions (N, 2, 0-based) of real
    sources: closer to a bright star, sep merges the fake star into its isophote, which is
    crowding incompleteness, not sensitivity. Returns per-star detection and PSF fluxes.
    """
    ny, nx = image.shape
    rows: list[tuple] = []
    pcfg = photometry_config or PhotometryConfig(fit_positions=False)
    min_sep = min_separation_fwhm * psf.fwhm
    for mag in np.atleast_1d(mags):
        flux = exptime * 10 ** (-0.4 * (mag - zero_point))
        # Candidate positions on a grid, keep those away from real sources.
        area = (nx - 2 * border) * (ny - 2 * border)
        step = max(2.0 * psf.fwhm * 4, np.sqrt(area / (8 * n_per_mag)))
        gx, gy = np.meshgrid(
            np.arange(border, nx - border, step), np.arange(border, ny - border, step)
        )
        cand = np.column_stack([gx.ravel(), gy.ravel()]) + rng.uniform(-2, 2, (gx.size, 2))
        if avoid is not None and len(avoid):
            d = np.hypot(
                cand[:, None, 0] - avoid[None, :, 0], cand[:, None, 1] - avoid[None, :, 1]
            ).min(axis=1)
            cand = cand[d > min_sep]
        if len(cand) == 0:
            raise InputDataError("no room to inject fake stars away from real sources")
        pick = cand[rng.permutation(len(cand))[:n_per_mag]]
        x, y = pick[:, 0], pick[:, 1]
        fake = inject_stars(image, x, y, np.full(len(x), flux), psf, rng, gain_e_per_adu=gain)
        ex = extract_sources(fake, extract_config)
        det = np.zeros(len(x), bool)
        if len(ex.catalog):
            cx = np.asarray(ex.catalog["XWIN_IMAGE"]) - 1
            cy = np.asarray(ex.catalog["YWIN_IMAGE"]) - 1
            d = np.hypot(cx[None, :] - x[:, None], cy[None, :] - y[:, None])
            det = d.min(axis=1) < match_radius
        sub = fake - ex.background
        err = noise_map(ex.rms, sub, gain)
        ph = fit_psf_photometry(sub, x, y, psf, error=err, config=pcfg)
        snr = np.asarray(ph["FLUX_PSF"]) / np.asarray(ph["FLUXERR_PSF"])
        for k in range(len(x)):
            rows.append(
                (
                    float(mag),
                    flux,
                    x[k],
                    y[k],
                    bool(det[k]),
                    float(ph["FLUX_PSF"][k]),
                    float(ph["FLUXERR_PSF"][k]),
                    float(snr[k]),
                )
            )
    t = Table(
        rows=rows,
        names=("MAG_IN", "FLUX_IN", "X", "Y", "DETECTED", "FLUX_PSF", "FLUXERR_PSF", "SNR"),
    )
    return CompletenessResult(t)
