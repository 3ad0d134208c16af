"""Stacking of an image sequence onto a common WCS (reproject) with inverse-variance weights.

Each input is background subtracted, scaled to a common photometric zero point (when the
zero points are known), reprojected onto the target grid (``reproject_interp`` by default,
``reproject_exact`` for flux-conserving resampling), and combined as the weighted mean with
weights ``footprint / sigma_bkg^2`` (per-image background rms after scaling). The product
header records the inputs (``NCOMBINE``, ``IMCMBnnn``, ``WGTnnn``, ``SCLnnn``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from pydantic import Field
from svomflow.config import StepConfig
from svomflow.errors import InputDataError

__all__ = ["StackConfig", "StackInput", "StackResult", "stack_images"]


class StackConfig(StepConfig):
    """Stacking settings."""

    method: str = Field(
        "interp", pattern="^(interp|exact)$", description="reproject method: interp or exact."
    )
    order: str = Field("bilinear", description="Interpolation order for reproject_interp.")
    combine: str = Field(
        "weighted_mean",
        pattern="^(weighted_mean|clipped_mean|median)$",
        description="Combination: weighted mean, weighted mean after per-pixel sigma clipping "
        "across inputs (removes cosmic rays and satellite trails, needs 3 inputs; it also "
        "clips a fading transient, so not for alert sequences), or median.",
    )
    clip_sigma: float = Field(4.0, gt=0, description="Per-pixel clipping threshold.")
    min_coverage: float = Field(
        0.5, ge=0, le=1, description="Pixels covered by fewer inputs (fraction) are NaN."
    )


@dataclass
class StackInput:
    """One image to stack: background-subtracted data, WCS, rms and photometric scale."""

    data: np.ndarray
    wcs: WCS
    rms: float
    name: str
    scale: float = 1.0
    """Multiplicative factor bringing this image to the common zero point."""
    exptime: float = 0.0
    gain: float = 0.0
    """e-/ADU of ``data`` before scaling (0 = ignore the sources' Poisson noise in clipping)."""
    header: fits.Header = field(default_factory=fits.Header)


@dataclass
class StackResult:
    """The stacked image, its per-pixel noise and header cards recording the inputs."""

    data: np.ndarray
    noise: np.ndarray
    coverage: np.ndarray
    wcs: WCS
    cards: list[tuple[str, object, str]]


def stack_images(
    inputs: list[StackInput],
    *,
    target_wcs: WCS | None = None,
    shape: tuple[int, int] | None = None,
    config: StackConfig | None = None,
) -> StackResult:
    """Reproject and combine ``inputs`` on ``target_wcs`` (default: the first input's grid)."""
    from reproject import reproject_exact, reproject_interp

    cfg = config or StackConfig()
    if not inputs:
        raise InputDataError("nothing to stack")
    tw = target_wcs or inputs[0].wcs.celestial
    shp = shape or inputs[0].data.shape
    n = len(inputs)
    num = np.zeros(shp)
    den = np.zeros(shp)
    cov = np.zeros(shp)
    clipped = cfg.combine == "clipped_mean" and n >= 3
    layers: list[np.ndarray] | None = [] if (cfg.combine == "median" or clipped) else None
    sigmas: list[float] = []
    weights: list[float] = []
    poisson: list[float] = []
    cards: list[tuple[str, object, str]] = [("NCOMBINE", n, "number of images combined")]
    for k, inp in enumerate(inputs, start=1):
        if inp.rms <= 0 or not np.isfinite(inp.rms):
            raise InputDataError(f"{inp.name}: background rms must be positive")
        data = np.asarray(inp.data, float) * inp.scale
        if cfg.method == "exact":
            arr, foot = reproject_exact((data, inp.wcs.celestial), tw, shape_out=shp)
        else:
            arr, foot = reproject_interp(
                (data, inp.wcs.celestial), tw, shape_out=shp, order=cfg.order
            )
        good = (foot > 0.99) & np.isfinite(arr)
        w = 1.0 / (inp.rms * inp.scale) ** 2
        num[good] += w * arr[good]
        den[good] += w
        cov[good] += 1
        if layers is not None:
            layers.append(np.where(good, arr, np.nan))
            sigmas.append(inp.rms * inp.scale)
            weights.append(w)
            # Variance per unit of scaled signal: scale^2 * (v / scale) / gain.
            poisson.append(inp.scale / inp.gain if inp.gain > 0 else 0.0)
        cards += [
            (f"IMCMB{k:03d}", inp.name[-68:], "input image"),
            (f"WGT{k:03d}", float(f"{w:.6g}"), "weight (1/rms^2 after scaling)"),
            (f"SCL{k:03d}", float(f"{inp.scale:.6g}"), "photometric scale applied"),
        ]
    enough = cov >= max(1, int(np.ceil(cfg.min_coverage * n)))
    with np.errstate(invalid="ignore", divide="ignore"):
        if clipped and layers is not None:
            cube = np.array(layers)
            sig = np.array(sigmas)[:, None, None]
            wts = np.array(weights)[:, None, None]
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                med = np.nanmedian(cube, axis=0)
            # Clip on the background noise plus the Poisson noise of the median's signal,
            # so that bright stars are not clipped.
            pois = np.array(poisson)[:, None, None]
            floor = np.sqrt(sig**2 + np.clip(med, 0, None)[None] * pois)
            ok = np.isfinite(cube) & (np.abs(cube - med[None]) <= cfg.clip_sigma * floor)
            den = np.sum(np.where(ok, wts, 0.0), axis=0)
            num = np.sum(np.where(ok, wts * np.nan_to_num(cube), 0.0), axis=0)
            cov = ok.sum(axis=0).astype(float)
            enough = cov >= max(1, int(np.ceil(cfg.min_coverage * n)))
            out = num / den
            noise = 1.0 / np.sqrt(den)
        elif layers is not None:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                out = np.nanmedian(np.array(layers), axis=0)
            # Median of N Gaussian samples: sqrt(pi/2) times the mean's error.
            noise = np.sqrt(np.pi / 2) / np.sqrt(den)
        else:
            out = num / den
            noise = 1.0 / np.sqrt(den)
    out = np.where(enough, out, np.nan)
    noise = np.where(enough, noise, np.nan)
    exptime = float(sum(i.exptime for i in inputs))
    cards.append(("EXPTIME", exptime, "[s] total exposure of the inputs"))
    return StackResult(out, noise, cov, tw, cards)
