"""Imaging uniformity map: the relative efficiency of every pixel from flat illumination.

Under a flat sky (the cosmic X-ray background through the mask) plus the flat instrumental
background, pixel ``p`` expects, in time bin ``t``, ``A[t] * S[p] * eff[p]`` counts, where
``A[t]`` is the plane's exposure times the orbit modulation (common to all pixels), ``S[p]``
the illumination model and ``eff[p]`` the relative efficiency sought:

* ``S`` (:func:`flat_illumination`) is ``f * D[p] / mean(D) + (1 - f)``: ``D`` the exposure of
  each pixel to an isotropic sky through the coded mask
  (:func:`svomflow.instruments.coded_mask.diffuse_illumination`, the model imaging uses) and
  ``f`` the CXB share of the background (configuration: an assumption, see the pipeline file);
* ``A[t]`` is the summed counts of the plane's good pixels in bin ``t`` (over a million
  counts per 10-minute bin: its error is negligible);
* ``eff[p] = N[p] / (S[p] * sum_t A[t])`` over the bins where the pixel was good (bad pixels
  and bad episodes of intermittent ones left out), normalised to mean 1 over the measured
  pixels; its error is Poisson, ``eff / sqrt(N)``.

Assumptions (labelled in ``docs/eic_pixels.md``): the CXB is isotropic over the field, the
instrumental background is flat over the plane and both keep their ratio over the period
(a drifting instrumental background biases the map where ``D`` departs from its mean: the
stress case of the docs measures it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from svomflow.config.base import StepConfig
from svomflow.instruments.coded_mask import MaskGeometry, diffuse_illumination, mask_pattern
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.eic_pixel_files import PixelCountHistory, UniformityMap, uniformity_hdus
from svomflow.tasks.eic.gate import QCFigure
from svomflow.tasks.eic.pixel_health import PixelHealthResult
from svomflow.tasks.step import step

__all__ = [
    "UniformityConfig",
    "UniformityResult",
    "flat_illumination",
    "relative_efficiency",
    "uniformity_figures",
    "uniformity_map",
]


class UniformityConfig(StepConfig):
    """Uniformity map from flat illumination."""

    cxb_fraction: float = Field(
        0.86,
        ge=0.0,
        le=1.0,
        description="Share of the cosmic X-ray background in the plane's mean flat rate "
        "(the rest: flat instrumental background)",
    )
    min_counts: int = Field(
        100, ge=1, description="Pixels with fewer counts over their good bins are not measured"
    )


def flat_illumination(geometry: MaskGeometry, cxb_fraction: float) -> NDArray[np.float64]:
    """Return the expected relative count rate of every pixel under a flat background (mean 1).

    ``cxb_fraction`` of the mean comes through the mask from an isotropic sky (each pixel's
    exposure to it), the rest is flat over the plane.
    """
    if not 0.0 <= cxb_fraction <= 1.0:
        raise ValueError("cxb_fraction must lie in [0, 1]")
    d = diffuse_illumination(geometry, mask_pattern(geometry))
    return np.asarray(cxb_fraction * d / d.mean() + (1.0 - cxb_fraction), dtype=np.float64)


def relative_efficiency(
    counts: NDArray[np.integer],
    good: NDArray[np.bool_],
    illumination: NDArray[np.float64],
    min_counts: int = 1,
) -> UniformityMap:
    """Return the relative efficiency map from counts ``(t, y, z)`` and good-bin flags.

    Parameters
    ----------
    counts
        Counts per bin and pixel.
    good
        Same shape: True where the pixel was good in that bin (bins without exposure False).
    illumination
        Expected relative rate of every pixel for efficiency 1 (:func:`flat_illumination`).
    min_counts
        Pixels with fewer counts are not measured (NaN).
    """
    c = np.asarray(counts, dtype=np.float64)
    pixel_good = good.any(axis=0)
    # plane exposure A[t]: counts of the pixels good in every judged bin (bins where no
    # pixel is good, the SAA, have no exposure), per unit illumination
    judged = good.any(axis=(1, 2))
    steady = good[judged].all(axis=0) if judged.any() else pixel_good
    if not steady.any():
        steady = pixel_good
    a = (c[:, steady]).sum(axis=1) / float(illumination[steady].sum())
    n = np.where(good, c, 0.0).sum(axis=0)
    expo = np.tensordot(a, good.astype(np.float64), axes=(0, 0)) * illumination
    ok = pixel_good & (n >= min_counts) & (expo > 0)
    eff = np.full(n.shape, np.nan)
    eff[ok] = n[ok] / expo[ok]
    norm = float(np.mean(eff[ok])) if ok.any() else 1.0
    eff /= norm
    err = np.full(n.shape, np.nan)
    err[ok] = eff[ok] / np.sqrt(n[ok])
    return UniformityMap(efficiency=eff, error=err)


@dataclass(frozen=True)
class UniformityResult:
    """The uniformity map, its QC figures and its CALDB candidate product."""

    umap: UniformityMap
    figures: tuple[QCFigure, ...]
    products: list[Product] = field(default_factory=list)


def uniformity_figures(umap: UniformityMap) -> tuple[QCFigure, ...]:
    """Return the QC figures of a uniformity map (what the promotion gate judges)."""
    m = umap.measured
    eff = umap.efficiency[m]
    if eff.size == 0:
        nan = float("nan")
        return (
            QCFigure("measured_fraction", 0.0),
            QCFigure("efficiency_rms", nan),
            QCFigure("median_error", nan),
        )
    return (
        QCFigure("measured_fraction", float(m.mean())),
        QCFigure("efficiency_rms", float(np.std(eff))),
        QCFigure("median_error", float(np.median(umap.error[m]))),
        QCFigure("min_efficiency", float(eff.min())),
        QCFigure("max_efficiency", float(eff.max())),
    )


@step(name="uniformity", config=UniformityConfig, outputs=("PIXUNIF",))
def uniformity_map(
    history: PixelCountHistory,
    health: PixelHealthResult,
    illumination: NDArray[np.float64],
    *,
    config: UniformityConfig,
) -> UniformityResult:
    """Measure the relative efficiency of every pixel from the period's flat illumination.

    ``illumination`` is :func:`flat_illumination` with this config's ``cxb_fraction`` (the
    pipeline computes it once for both steps). The bad pixels and bad bins found by the pixel-health step are left out.
    """
    umap = relative_efficiency(history.counts, health.good_bins, illumination, config.min_counts)
    figs = uniformity_figures(umap)
    cards = {
        "TSTART": (history.t_start, "[s] start of the period"),
        "TSTOP": (history.t_stop, "[s] end of the period"),
        "CXBFRAC": (config.cxb_fraction, "CXB share of the flat background (assumed)"),
        **{f"QC_{i}": (f.value, f.name) for i, f in enumerate(figs)},
    }
    hdus = uniformity_hdus(
        umap, telescope=history.telescope, instrument=history.instrument, cards=cards
    )
    product = Product("PIXUNIF", "ECL", FitsModel.from_hdus(hdus))
    return UniformityResult(umap=umap, figures=figs, products=[product])
