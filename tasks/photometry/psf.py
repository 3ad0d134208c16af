"""PSF model (Gaussian core plus Moffat wings): rendering, fitting to stars, FWHM.

The model and its pixel integration are described in :mod:`svomflow.tasks.photometry._kernels`.
:func:`fit_psf` fits the four shape parameters jointly to cutouts of bright, isolated,
unsaturated stars (each star with its own centre, flux and local background), which is what
photometry of crowded-free follow-up fields needs: a core for the fit and wings for the
aperture corrections.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from astropy.table import Table
from scipy.optimize import brentq, least_squares
from scipy.sparse import lil_matrix
from svomflow.errors import InputDataError
from svomflow.tasks.photometry._kernels import render_psf_stars

__all__ = ["PSFFit", "PSFModel", "fit_psf", "select_psf_stars"]

GAUSS_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class PSFModel:
    """Gaussian core + Moffat wings PSF (pixels); integrates to one over the plane."""

    sigma: float
    """Standard deviation of the Gaussian core (pixel)."""
    alpha: float = 3.0
    """Moffat core width of the wings (pixel)."""
    beta: float = 3.0
    """Moffat power index of the wings (> 1)."""
    wing_fraction: float = 0.0
    """Fraction of the flux in the Moffat wings (0 = pure Gaussian)."""

    def profile(self, r: np.ndarray | float) -> np.ndarray:
        """Return the (point-sampled) surface brightness at radius ``r`` for unit flux."""
        r = np.asarray(r, dtype=float)
        g = np.exp(-0.5 * r**2 / self.sigma**2) / (2 * np.pi * self.sigma**2)
        m = (self.beta - 1) / (np.pi * self.alpha**2) * (1 + r**2 / self.alpha**2) ** -self.beta
        return (1 - self.wing_fraction) * g + self.wing_fraction * m

    @property
    def fwhm(self) -> float:
        """Full width at half maximum of the (unintegrated) profile, in pixels."""
        half = 0.5 * float(self.profile(0.0))
        hi = 10 * max(self.sigma * GAUSS_FWHM, self.alpha)
        return 2.0 * brentq(lambda r: float(self.profile(r)) - half, 0.0, hi)

    def radius(self, flux_fraction_lost: float = 1e-3) -> int:
        """Return a render radius (pixel) beyond which less than the given flux fraction lies."""
        r_gauss = self.sigma * np.sqrt(-2 * np.log(flux_fraction_lost))
        r = r_gauss
        if self.wing_fraction > 0:
            # Moffat enclosed fraction: 1 - (1 + R^2/alpha^2)^(1 - beta)
            target = flux_fraction_lost / self.wing_fraction
            if target < 1:
                r = max(r, self.alpha * np.sqrt(target ** (1 / (1 - self.beta)) - 1))
        return int(np.ceil(min(r, 200.0)))

    def render(
        self,
        shape: tuple[int, int],
        x: np.ndarray,
        y: np.ndarray,
        flux: np.ndarray,
        *,
        radius: int | None = None,
        nsub: int = 5,
    ) -> np.ndarray:
        """Return an image of pixel-integrated stars at 0-based ``(x, y)`` with total ``flux``."""
        out = np.zeros(shape, dtype=np.float64)
        self.add_to(out, x, y, flux, radius=radius, nsub=nsub)
        return out

    def add_to(
        self,
        image: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        flux: np.ndarray,
        *,
        radius: int | None = None,
        nsub: int = 5,
    ) -> None:
        """Add pixel-integrated stars to a float64 ``image`` in place."""
        if image.dtype != np.float64 or not image.flags.c_contiguous:
            raise InputDataError("add_to needs a C-contiguous float64 image")
        x = np.ascontiguousarray(np.atleast_1d(x), dtype=np.float64)
        y = np.ascontiguousarray(np.atleast_1d(y), dtype=np.float64)
        flux = np.ascontiguousarray(np.broadcast_to(flux, x.shape), dtype=np.float64)
        r = self.radius() if radius is None else int(radius)
        render_psf_stars(
            image,
            x,
            y,
            flux,
            float(self.sigma),
            float(self.alpha),
            float(self.beta),
            float(self.wing_fraction),
            r,
            int(nsub),
        )

    def effective_psf(self, size: int = 25, oversampling: int = 4) -> np.ndarray:
        """Return the pixel-integrated PSF sampled on an oversampled grid (photutils ImagePSF).

        Each sample is the flux a pixel centred at that sub-pixel offset receives, so the
        array sums to ``oversampling**2`` for a unit-flux star (photutils' normalisation).
        """
        n = size * oversampling + 1 - (size * oversampling) % 2
        c = (n - 1) / 2
        offsets = (np.arange(n) - c) / oversampling
        out = np.zeros((n, n))
        # A grid of stars at sub-pixel offsets is the same as one star sampled at offsets;
        # render row by row through a 1-pixel image per sample via the kernel.
        pix = np.zeros((1, 1))
        reach = int(np.ceil(np.abs(offsets).max())) + 2
        for j, dy in enumerate(offsets):
            for i, dx in enumerate(offsets):
                pix[0, 0] = 0.0
                render_psf_stars(
                    pix,
                    np.array([-dx]),
                    np.array([-dy]),
                    np.array([1.0]),
                    float(self.sigma),
                    float(self.alpha),
                    float(self.beta),
                    float(self.wing_fraction),
                    reach,
                    5,
                )
                out[j, i] = pix[0, 0]
        return out

    def image_psf(self, size: int = 25, oversampling: int = 4):
        """Return a photutils ``ImagePSF`` of this model (pixel-integrated, oversampled)."""
        from photutils.psf import ImagePSF

        return ImagePSF(self.effective_psf(size, oversampling), oversampling=oversampling)

    def to_dict(self) -> dict[str, float]:
        """Return the parameters as a plain mapping (for headers and JSON)."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class PSFFit:
    """Result of a PSF fit: the model, the stars used and the fit quality."""

    model: PSFModel
    n_stars: int
    reduced_chi2: float
    fwhm: float


def select_psf_stars(
    catalog: Table,
    shape: tuple[int, int],
    *,
    half_size: int,
    saturation: float | None = None,
    max_stars: int = 30,
    min_snr: float = 30.0,
) -> Table:
    """Select bright, isolated, unflagged, unsaturated point sources for the PSF fit.

    Isolation: no other catalog source within ``1.2 * half_size`` pixels (no neighbour core
    in the cutout). Stars closer than
    ``half_size`` to an edge are dropped.
    """
    if len(catalog) == 0:
        raise InputDataError("no sources to select PSF stars from")
    x = np.asarray(catalog["X_IMAGE"], float) - 1
    y = np.asarray(catalog["Y_IMAGE"], float) - 1
    snr = np.asarray(catalog["FLUX_AUTO"], float) / np.maximum(
        np.asarray(catalog["FLUXERR_AUTO"], float), 1e-30
    )
    ok = (np.asarray(catalog["FLAGS"]) == 0) & (snr >= min_snr)
    ok &= (x >= half_size) & (x < shape[1] - half_size - 1)
    ok &= (y >= half_size) & (y < shape[0] - half_size - 1)
    if saturation is not None and "FLUX_MAX" in catalog.colnames:
        ok &= np.asarray(catalog["FLUX_MAX"], float) < 0.8 * saturation
    if "ELONGATION" in catalog.colnames:
        ok &= np.asarray(catalog["ELONGATION"], float) < 1.5
    dx = x[:, None] - x[None, :]
    dy = y[:, None] - y[None, :]
    d2 = dx**2 + dy**2
    np.fill_diagonal(d2, np.inf)
    ok &= d2.min(axis=1) > (1.2 * half_size) ** 2
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(-snr[idx])][:max_stars]
    return catalog[idx]


def _model_cutouts(
    shape_params: np.ndarray, star_params: np.ndarray, size: int, nsub: int
) -> np.ndarray:
    sigma, alpha, beta, wing = shape_params
    n = star_params.shape[0]
    out = np.zeros((n, size, size))
    for k in range(n):
        dx, dy, f, b = star_params[k]
        img = out[k]
        img += b
        render_psf_stars(
            img,
            np.array([dx]),
            np.array([dy]),
            np.array([f]),
            sigma,
            alpha,
            beta,
            wing,
            size,
            nsub,
        )
    return out


def fit_psf(
    image: np.ndarray,
    stars: Table,
    *,
    half_size: int = 10,
    noise: np.ndarray | float | None = None,
    with_wings: bool = True,
    nsub: int = 3,
) -> PSFFit:
    """Fit the core+wings PSF model jointly to cutouts of the given stars.

    Parameters
    ----------
    image
        Background-subtracted (or not: each cutout has its own constant) image.
    stars
        Catalog rows (``X_IMAGE``, ``Y_IMAGE`` 1-based, ``FLUX_AUTO``) from
        :func:`select_psf_stars`.
    half_size
        Cutout half width (pixel); cutouts are ``2 * half_size + 1`` wide.
    noise
        Per-pixel 1-sigma noise (image or scalar); default: the cutouts' robust scatter
        plus Poisson-like term from the data is not known, so uniform weights are used.
    with_wings
        Fit the Moffat wings (else a pure Gaussian core).

    Returns
    -------
    PSFFit
    """
    if len(stars) < 1:
        raise InputDataError("no PSF stars: cannot fit a PSF model")
    size = 2 * half_size + 1
    xs = np.asarray(stars["X_IMAGE"], float) - 1
    ys = np.asarray(stars["Y_IMAGE"], float) - 1
    cut = np.empty((len(stars), size, size))
    wts = np.empty_like(cut)
    init = np.empty((len(stars), 4))
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        i0 = round(x) - half_size
        j0 = round(y) - half_size
        cut[k] = image[j0 : j0 + size, i0 : i0 + size]
        if noise is None:
            wts[k] = 1.0
        elif np.ndim(noise) == 0:
            wts[k] = 1.0 / float(noise)
        else:
            wts[k] = 1.0 / np.asarray(noise)[j0 : j0 + size, i0 : i0 + size]
        edge = np.concatenate([cut[k, 0], cut[k, -1], cut[k, :, 0], cut[k, :, -1]])
        b0 = float(np.median(edge))
        init[k] = (x - i0, y - j0, max(float(np.sum(cut[k] - b0)), 1.0), b0)
    if not np.all(np.isfinite(cut)):
        raise InputDataError("PSF star cutouts contain non-finite pixels")

    # Starting core width from second moments of the brightest star.
    k0 = int(np.argmax(init[:, 2]))
    c0 = np.clip(cut[k0] - init[k0, 3], 0, None)
    jj, ii = np.indices(c0.shape)
    m = c0.sum()
    var = (
        np.sum(c0 * ((ii - init[k0, 0]) ** 2 + (jj - init[k0, 1]) ** 2)) / (2 * m) if m > 0 else 2.0
    )
    sigma0 = float(np.clip(np.sqrt(max(var, 0.25)), 0.5, half_size / 2))

    n = len(stars)

    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if with_wings:
            shape = p[:4]
            rest = p[4:]
        else:
            shape = np.array([p[0], 3.0, 3.0, 0.0])
            rest = p[1:]
        return shape, rest.reshape(n, 4)

    def resid(p: np.ndarray) -> np.ndarray:
        shape, star = unpack(p)
        return ((_model_cutouts(shape, star, size, nsub) - cut) * wts).ravel()

    if with_wings:
        p0 = np.concatenate([[sigma0, 2.0 * sigma0, 3.0, 0.2], init.ravel()])
        lo_s = [0.3, 0.5, 1.2, 0.0]
        hi_s = [half_size, 4.0 * half_size, 10.0, 0.95]
    else:
        p0 = np.concatenate([[sigma0], init.ravel()])
        lo_s, hi_s = [0.3], [float(half_size)]
    lo_star = np.tile([-np.inf, -np.inf, 0.0, -np.inf], n)
    hi_star = np.tile([np.inf, np.inf, np.inf, np.inf], n)
    lo = np.concatenate([lo_s, lo_star])
    hi = np.concatenate([hi_s, hi_star])
    p0 = np.clip(p0, lo + 1e-9, hi - 1e-9)
    # Each star's own parameters touch only its cutout: telling least_squares so lets it
    # estimate the Jacobian with ~8 model evaluations instead of one per parameter.
    n_shape = len(lo_s)
    npix = size * size
    sparsity = lil_matrix((n * npix, len(p0)), dtype=int)
    sparsity[:, :n_shape] = 1
    for k in range(n):
        sparsity[k * npix : (k + 1) * npix, n_shape + 4 * k : n_shape + 4 * k + 4] = 1
    res = least_squares(
        resid,
        p0,
        bounds=(lo, hi),
        x_scale="jac",
        jac_sparsity=sparsity,
        max_nfev=100 * n_shape + 200,
    )
    shape, _ = unpack(res.x)
    model = PSFModel(*[float(v) for v in shape])
    dof = max(res.fun.size - res.x.size, 1)
    chi2 = float(np.sum(res.fun**2) / dof)
    return PSFFit(model=model, n_stars=n, reduced_chi2=chi2, fwhm=model.fwhm)
