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
from svomflow.errors import InputDataError
from svomflow.tasks.photometry._kernels import render_psf_stars
from threadpoolctl import threadpool_limits

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


def _centres(catalog: Table) -> tuple[np.ndarray, np.ndarray]:
    """Return the 0-based star centres: windowed (``XWIN_IMAGE``) where the catalog has them.

    The fit cuts the stars out at these centres, so the selection checks its edge test on them.
    """
    xcol = "XWIN_IMAGE" if "XWIN_IMAGE" in catalog.colnames else "X_IMAGE"
    ycol = "YWIN_IMAGE" if "YWIN_IMAGE" in catalog.colnames else "Y_IMAGE"
    return np.asarray(catalog[xcol], float) - 1, np.asarray(catalog[ycol], float) - 1


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
    xw, yw = _centres(catalog)  # what fit_psf cuts out at
    snr = np.asarray(catalog["FLUX_AUTO"], float) / np.maximum(
        np.asarray(catalog["FLUXERR_AUTO"], float), 1e-30
    )
    ok = (np.asarray(catalog["FLAGS"]) == 0) & (snr >= min_snr)
    ok &= (x >= half_size) & (x < shape[1] - half_size - 1)
    ok &= (y >= half_size) & (y < shape[0] - half_size - 1)
    # and the cutout test of fit_psf on its own centres: a star kept here has its cutout
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(xw) & np.isfinite(yw)
        ok &= (np.round(xw) >= half_size) & (np.round(xw) + half_size + 1 <= shape[1])
        ok &= (np.round(yw) >= half_size) & (np.round(yw) + half_size + 1 <= shape[0])
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


def fit_psf(
    image: np.ndarray,
    stars: Table,
    *,
    half_size: int = 10,
    noise: np.ndarray | float | None = None,
    with_wings: bool = True,
    nsub: int = 3,
    n_outer: int = 3,
) -> PSFFit:
    """Fit the core+wings PSF model to cutouts of the given stars (variable projection).

    The four shape parameters are fitted by least squares; for every trial shape each
    star's flux and local background are solved linearly (they enter the model linearly),
    with the star centres held fixed. The centres are then re-fitted with the new shape
    (numba PSF fitter) and the shape fit repeated (``n_outer`` rounds). This is the joint
    fit of shape, centres, fluxes and backgrounds, split so that the nonlinear problem has
    4 parameters instead of 4 + 4 N.

    Parameters
    ----------
    image
        Background-subtracted image (a constant per cutout is fitted anyway).
    stars
        Catalog rows (``XWIN_IMAGE``/``YWIN_IMAGE`` or ``X_IMAGE``/``Y_IMAGE``, 1-based) from
        :func:`select_psf_stars`.
    half_size
        Cutout half width (pixel); cutouts are ``2 * half_size + 1`` wide.
    noise
        Per-pixel 1-sigma noise (image or scalar); uniform weights when omitted.
    with_wings
        Fit the Moffat wings (else a pure Gaussian core).

    Returns
    -------
    PSFFit
    """
    from svomflow.tasks.photometry._kernels import psf_fit_sources

    if len(stars) < 1:
        raise InputDataError("no PSF stars: cannot fit a PSF model")
    size = 2 * half_size + 1
    xs, ys = _centres(stars)
    n = len(stars)
    img = np.ascontiguousarray(image, dtype=np.float64)
    if noise is None:
        err = np.ones_like(img)
    else:
        err = np.ascontiguousarray(np.broadcast_to(noise, img.shape), dtype=np.float64)
    corner = np.empty((n, 2), dtype=int)
    cut = np.empty((n, size, size))
    wts = np.empty_like(cut)
    for k in range(n):
        i0 = round(xs[k]) - half_size
        j0 = round(ys[k]) - half_size
        if i0 < 0 or j0 < 0 or i0 + size > img.shape[1] or j0 + size > img.shape[0]:
            raise InputDataError("a PSF star is too close to the image edge for its cutout")
        corner[k] = (i0, j0)
        cut[k] = img[j0 : j0 + size, i0 : i0 + size]
        wts[k] = 1.0 / err[j0 : j0 + size, i0 : i0 + size]
    if not np.all(np.isfinite(cut)) or not np.all(np.isfinite(wts)):
        raise InputDataError("PSF star cutouts contain non-finite pixels")

    # Starting core width from the second moments of the brightest star.
    k0 = int(np.argmax(cut.reshape(n, -1).sum(axis=1)))
    c0 = np.clip(cut[k0] - np.median(cut[k0]), 0, None)
    jj, ii = np.indices(c0.shape)
    m = c0.sum()
    dx0, dy0 = xs[k0] - corner[k0, 0], ys[k0] - corner[k0, 1]
    var = np.sum(c0 * ((ii - dx0) ** 2 + (jj - dy0) ** 2)) / (2 * m) if m > 0 else 2.0
    sigma0 = float(np.clip(np.sqrt(max(var, 0.25)), 0.5, half_size / 2))

    buf = np.zeros((size, size))
    last_chi = np.zeros(n * size * size)

    w = wts.reshape(n, -1)
    cw = cut.reshape(n, -1) * w
    s_11 = np.sum(w * w, axis=1)
    b_1 = np.sum(cw * w, axis=1)
    models = np.empty((n, size * size))

    def resid(p: np.ndarray) -> np.ndarray:
        sh = (p[0], p[1], p[2], p[3]) if with_wings else (p[0], 3.0, 3.0, 0.0)
        for k in range(n):
            buf[:] = 0.0
            render_psf_stars(
                buf, np.array([xs[k] - corner[k, 0]]), np.array([ys[k] - corner[k, 1]]),
                np.array([1.0]), float(sh[0]), float(sh[1]), float(sh[2]), float(sh[3]),
                size, nsub,
            )  # fmt: skip
            models[k] = buf.ravel()
        # every star's flux and background by weighted least squares, all stars at once:
        # the 2 x 2 normal equations of (model, 1) (a per-star lstsq call cost more than
        # the rendering)
        pw = models * w
        s_pp = np.sum(pw * pw, axis=1)
        s_p1 = np.sum(pw * w, axis=1)
        b_p = np.sum(pw * cw, axis=1)
        det = s_pp * s_11 - s_p1**2
        ok = det > 1e-12 * s_pp * s_11
        safe = np.where(ok, det, 1.0)
        amp = np.where(ok, (b_p * s_11 - b_1 * s_p1) / safe, 0.0)
        back = np.where(ok, (s_pp * b_1 - s_p1 * b_p) / safe, b_1 / s_11)
        return (cw - amp[:, None] * pw - back[:, None] * w).ravel()  # type: ignore[no-any-return]

    if with_wings:
        p = np.array([sigma0, 2.0 * sigma0, 3.0, 0.2])
        lo = np.array([0.3, 0.5, 1.2, 0.0])
        hi = np.array([float(half_size), 4.0 * half_size, 10.0, 0.95])
    else:
        p = np.array([sigma0])
        lo, hi = np.array([0.3]), np.array([float(half_size)])
    fit_out = np.zeros((n, 6))
    for outer in range(n_outer):
        p = np.clip(p, lo + 1e-9, hi - 1e-9)
        # least_squares makes many small BLAS calls (a Jacobian of a few columns): threaded
        # OpenBLAS spins on them and takes 2-3 times the CPU on a busy machine.
        with threadpool_limits(limits=1, user_api="blas"):
            res = least_squares(resid, p, bounds=(lo, hi), x_scale="jac", max_nfev=200)
        p = res.x
        last_chi = res.fun
        if outer == n_outer - 1:
            break
        # Re-centre the stars with the current shape.
        sh = (p[0], p[1], p[2], p[3]) if with_wings else (p[0], 3.0, 3.0, 0.0)
        psf_fit_sources(
            img, err, np.zeros(img.shape, bool), xs.copy(), ys.copy(), float(sh[0]),
            float(sh[1]), float(sh[2]), float(sh[3]), max(half_size // 2, 3), nsub, True, 20,
            fit_out,
        )  # fmt: skip
        moved = fit_out[:, 5].astype(int) & 4
        good = np.isfinite(fit_out[:, 0]) & (moved == 0)
        xs = np.where(good, fit_out[:, 0], xs)
        ys = np.where(good, fit_out[:, 1], ys)
    shape = (p[0], p[1], p[2], p[3]) if with_wings else (p[0], 3.0, 3.0, 0.0)
    model = PSFModel(*[float(v) for v in shape])
    dof = max(last_chi.size - 2 * n - len(p), 1)
    chi2 = float(np.sum(last_chi**2) / dof)
    return PSFFit(model=model, n_stars=n, reduced_chi2=chi2, fwhm=model.fwhm)
