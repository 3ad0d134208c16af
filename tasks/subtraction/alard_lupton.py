"""Image subtraction by Alard-Lupton kernel fitting (spatially constant kernel).

Model (Alard & Lupton 1998): ``sci(x) ~ (K * ref)(x) + b`` with the kernel a sum of Gaussians
times polynomials, ``K = sum_k a_k B_k``, and a constant differential background ``b``.
The coefficients come from linear least squares on stamps around bright unsaturated stars
(weighted by the pixel variances), with stamps whose fit is bad (variables, transients,
artefacts) clipped and the fit redone. The sum of the kernel is the photometric scale
between the two images (flux scaling comes for free).

The sharper image is convolved: when the science image is sharper than the reference, the
roles are swapped and the difference divided by the kernel sum, so the difference is always
in science-image units, positive where the science image is brighter.

Both images must already be on the same pixel grid (see :mod:`svomflow.tasks.photometry.stack`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field
from scipy.fft import next_fast_len
from svomflow.config import StepConfig
from svomflow.errors import InputDataError
from svomflow.tasks.subtraction.convolve import convolve_same
from threadpoolctl import threadpool_limits

__all__ = [
    "SubtractionConfig",
    "SubtractionResult",
    "gaussian_basis",
    "subtract_images",
]


class SubtractionConfig(StepConfig):
    """Alard-Lupton kernel fit settings."""

    basis_sigmas_fwhm: list[float] = Field(
        default_factory=lambda: [0.25, 0.5, 1.0],
        description="Gaussian widths of the basis, in units of the larger FWHM.",
    )
    basis_degrees: list[int] = Field(
        default_factory=lambda: [6, 4, 2],
        description="Polynomial degree multiplying each Gaussian.",
    )
    kernel_half_width_fwhm: float = Field(
        2.0, gt=0, description="Kernel half width in units of the larger FWHM."
    )
    stamp_half_width_fwhm: float = Field(
        3.0, gt=0, description="Stamp half width in units of the larger FWHM."
    )
    max_stamps: int = Field(50, ge=3, description="Stars used to fit the kernel.")
    clip_sigma: float = Field(3.0, gt=0, description="Stamp rejection threshold.")


@dataclass
class SubtractionResult:
    """Difference image, its 1-sigma noise, the fitted kernel and fit figures."""

    difference: np.ndarray
    noise: np.ndarray
    kernel: np.ndarray
    scale: float
    background: float
    n_stamps: int
    convolved: str
    """"reference" or "science": which image was convolved."""
    stamp_chi2: float

    @property
    def psf_of(self) -> str:
        """Which input image's PSF a point source has in the difference image."""
        return "science" if self.convolved == "reference" else "reference"


def gaussian_basis(half_width: int, sigmas: list[float], degrees: list[int]) -> list[np.ndarray]:
    """Return the AL basis: ``x^i y^j exp(-r^2/2s^2)`` (i + j <= degree), each normalised.

    Following Alard (2000), every function but the first is made to sum to zero (the first
    is normalised to one), so that the photometric scale is carried by one coefficient.
    """
    if len(sigmas) != len(degrees):
        raise InputDataError("basis_sigmas_fwhm and basis_degrees must have the same length")
    yy, xx = np.mgrid[-half_width : half_width + 1, -half_width : half_width + 1].astype(float)
    out = []
    for s, deg in zip(sigmas, degrees, strict=True):
        g = np.exp(-(xx**2 + yy**2) / (2 * s**2))
        for i in range(deg + 1):
            for j in range(deg + 1 - i):
                out.append(g * (xx / half_width) ** i * (yy / half_width) ** j)
    first = out[0] / out[0].sum()
    basis = [first]
    for b in out[1:]:
        s = b.sum()
        basis.append(b - s * first if abs(s) > 1e-12 else b)
    return basis


def _stamps(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    half: int,
    pad: int,
    bad: np.ndarray | None,
    max_stamps: int,
) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    ny, nx = shape
    for xi, yi in zip(x, y, strict=True):
        i, j = round(xi), round(yi)
        if i - half - pad < 0 or j - half - pad < 0 or i + half + pad >= nx or j + half + pad >= ny:
            continue
        if bad is not None and bad[j - half : j + half + 1, i - half : i + half + 1].any():
            continue
        if any(abs(i - a) <= 2 * half and abs(j - b) <= 2 * half for a, b in out):
            continue
        out.append((i, j))
        if len(out) >= max_stamps:
            break
    return out


def subtract_images(
    science: np.ndarray,
    reference: np.ndarray,
    *,
    science_noise: np.ndarray,
    reference_noise: np.ndarray,
    science_fwhm: float,
    reference_fwhm: float,
    star_x: np.ndarray,
    star_y: np.ndarray,
    mask: np.ndarray | None = None,
    config: SubtractionConfig | None = None,
) -> SubtractionResult:
    """Fit a PSF-matching kernel on stars and return the difference ``science - K * reference``.

    Parameters
    ----------
    science, reference
        Background-subtracted images on the same pixel grid (ADU).
    science_noise, reference_noise
        Per-pixel 1-sigma noise of each image.
    science_fwhm, reference_fwhm
        PSF FWHM (pixel) of each image; the sharper one is convolved.
    star_x, star_y
        0-based positions of bright, unsaturated, isolated stars (brightest first).
    mask
        Bad pixels (True) in either image; stamps touching them are skipped and the
        difference is NaN there.
    """
    cfg = config or SubtractionConfig()
    if science.shape != reference.shape:
        raise InputDataError(
            f"science {science.shape} and reference {reference.shape} are not on the same grid"
        )
    fwhm = max(science_fwhm, reference_fwhm)
    swap = science_fwhm < reference_fwhm
    target, source = (reference, science) if swap else (science, reference)
    t_noise, s_noise = (
        (reference_noise, science_noise) if swap else (science_noise, reference_noise)
    )
    kh = max(int(np.ceil(cfg.kernel_half_width_fwhm * fwhm)), 2)
    sh = max(int(np.ceil(cfg.stamp_half_width_fwhm * fwhm)), kh)
    # Basis widths scale with the FWHM, but never below ~0.5 pixel (would alias).
    sigmas = [max(f * fwhm / 2.3548, 0.5) for f in cfg.basis_sigmas_fwhm]
    basis = gaussian_basis(kh, sigmas, cfg.basis_degrees)
    nb = len(basis) + 1  # + background
    bad = None
    if mask is not None:
        bad = np.asarray(mask, bool)
    finite = np.isfinite(source) & np.isfinite(target)
    bad = ~finite if bad is None else (bad | ~finite)
    stamps = _stamps(source.shape, star_x, star_y, sh, kh, bad, cfg.max_stamps)
    if len(stamps) < 3:
        raise InputDataError(
            f"only {len(stamps)} usable stamps for the subtraction kernel (need 3)"
        )
    mats, vecs, data = [], [], []
    # Every basis function correlated with a stamp: one FFT of the stamp, one inverse FFT for
    # all functions. A circular convolution over the stamp's side n is the linear one on its
    # 'valid' part (indices 2 kh .. n - 1), so no padding is needed beyond a fast FFT size.
    n = 2 * (sh + kh) + 1
    side = next_fast_len(n, real=True)
    basis_ft = np.fft.rfft2(np.array([b[::-1, ::-1] for b in basis]), s=(side, side))
    for i, j in stamps:
        src = source[j - sh - kh : j + sh + kh + 1, i - sh - kh : i + sh + kh + 1]
        tgt = target[j - sh : j + sh + 1, i - sh : i + sh + 1]
        var = (
            t_noise[j - sh : j + sh + 1, i - sh : i + sh + 1] ** 2
            + s_noise[j - sh : j + sh + 1, i - sh : i + sh + 1] ** 2
        )
        conv = np.fft.irfft2(np.fft.rfft2(src, s=(side, side)) * basis_ft, s=(side, side))
        a = np.empty((tgt.size, nb))
        a[:, :-1] = conv[:, 2 * kh : n, 2 * kh : n].reshape(nb - 1, -1).T
        a[:, -1] = 1.0
        w = 1.0 / var.ravel()
        # einsum, not BLAS matmul: these small products are slower through a threaded BLAS
        # on a busy machine than in one plain loop.
        mats.append(np.einsum("pi,pj->ij", a * w[:, None], a, optimize=False))
        vecs.append(np.einsum("pi,p->i", a, tgt.ravel() * w, optimize=False))
        data.append((a, tgt.ravel(), w))
    use = np.ones(len(stamps), bool)
    coef = np.zeros(nb)
    chi2 = np.zeros(len(stamps))
    # the same for the solves and the stamps' residuals (small LAPACK/BLAS calls)
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(5):
            m = sum(mats[k] for k in np.flatnonzero(use))
            v = sum(vecs[k] for k in np.flatnonzero(use))
            coef = np.linalg.lstsq(m, v, rcond=None)[0]
            for k, (a, t, w) in enumerate(data):
                chi2[k] = np.sum((t - a @ coef) ** 2 * w) / t.size
            med = np.median(chi2[use])
            mad = 1.4826 * np.median(np.abs(chi2[use] - med))
            new = chi2 <= med + cfg.clip_sigma * max(mad, 0.05 * med)
            if new.sum() < 3 or np.array_equal(new, use):
                break
            use = new
    kernel = sum(c * b for c, b in zip(coef[:-1], basis, strict=True))
    bkg = float(coef[-1])
    scale = float(kernel.sum())
    if not np.isfinite(scale) or scale <= 0:
        raise InputDataError(f"subtraction kernel has a non-positive sum ({scale})")
    # Convolution flips the kernel; our basis columns used the flipped kernel (correlation
    # written as a convolution), so convolve with the flipped kernel here too.
    kflip = kernel[::-1, ::-1]
    src_fill = np.where(bad, 0.0, source)
    conv = convolve_same(src_fill, kflip)
    conv_var = convolve_same(np.where(bad, 0.0, s_noise**2), kflip**2)
    diff = target - conv - bkg
    var = np.where(bad, np.nan, t_noise**2 + np.clip(conv_var, 0, None))
    if swap:
        # Difference was reference - K*science; turn it into science units and sign.
        diff = -diff / scale
        var = var / scale**2
        bkg = -bkg / scale
    # Pixels within a kernel width of a bad pixel are unreliable.
    if bad.any():
        from scipy.ndimage import binary_dilation

        grown = binary_dilation(bad, iterations=kh)
        diff = np.where(grown, np.nan, diff)
        var = np.where(grown, np.nan, var)
    return SubtractionResult(
        difference=diff,
        noise=np.sqrt(var),
        kernel=kernel,
        scale=scale if not swap else 1.0 / scale,
        background=bkg,
        n_stamps=int(use.sum()),
        convolved="science" if swap else "reference",
        stamp_chi2=float(np.median(chi2[use])),
    )
