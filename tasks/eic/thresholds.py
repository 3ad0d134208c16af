"""Low-threshold (SBN) table per ASIC channel: put each pixel's threshold at the target energy.

The discriminator of each ASIC channel cuts the pixel's spectrum at its low threshold: below
it nothing, just above it the electronic noise rising steeply towards lower energies. The
step finds this noise edge in each pixel's low-energy spectrum, as the channel where the
counts first reach half of the low-energy maximum (3-channel smoothed), interpolated between
channels, and converts it to keV with the pixel's gain and offset. The new DAC setting moves
the threshold from the measured edge to the target by whole DAC steps::

    dac_new = dac_old + round((target - edge) / dac_step)

clipped to the DAC range; ``PRED_KEV`` is the threshold expected with it. A pixel whose edge
cannot be found (too few counts below ``edge_search_max_kev``: a dead pixel) keeps its
setting and is flagged; so is a pixel on its module's gain (its edge in keV is known only to
the module's gain scatter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from svomflow.config.base import StepConfig
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue import eic_calib as _declared  # noqa: F401  (SBNTHR)
from svomflow.products.eic_calibration_files import (
    PixelGain,
    PixelSpectra,
    ThresholdTable,
    threshold_table_hdus,
)
from svomflow.tasks.eic.gain import plane_layout
from svomflow.tasks.eic.gate import QCFigure
from svomflow.tasks.step import step

__all__ = [
    "ThresholdCandidate",
    "ThresholdConfig",
    "noise_edge_kev",
    "sbn_thresholds",
    "threshold_figures",
    "threshold_table",
]


class ThresholdConfig(StepConfig):
    """Low-threshold table: target, DAC step and range, edge search."""

    target_kev: float = Field(4.0, gt=0, description="Target low threshold [keV]")
    dac_step_kev: float = Field(0.25, gt=0, description="Threshold change per DAC unit [keV]")
    dac_min: int = Field(0, description="Lowest DAC setting")
    dac_max: int = Field(63, description="Highest DAC setting")
    edge_search_max_kev: float = Field(
        12.0, gt=0, description="Search the noise edge below this energy [keV]"
    )
    min_edge_counts: float = Field(50.0, ge=0, description="Counts the low-energy maximum needs")
    module_shape: tuple[int, int] = Field(
        (8, 4), description="Pixels per module (= ASIC) along Y and Z"
    )


def noise_edge_kev(
    counts: NDArray[np.integer], gain: PixelGain, config: ThresholdConfig
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Return each pixel's noise edge (keV) and whether it was found."""
    c = np.asarray(counts, dtype=np.float64)
    n = c.shape[-1]
    top = int(np.clip(np.ceil(np.max(gain.channel(config.edge_search_max_kev))), 3, n))
    low = c[..., :top]
    smooth = low.copy()
    smooth[..., 1:-1] = (low[..., :-2] + low[..., 1:-1] + low[..., 2:]) / 3.0
    x = np.arange(top)[None, None, :]
    limit = gain.channel(config.edge_search_max_kev)[..., None]
    smooth = np.where(x < limit, smooth, 0.0)
    peak = smooth.max(-1)
    found = peak >= config.min_edge_counts / 3.0
    above = low >= 0.5 * peak[..., None]
    j = np.argmax(above, axis=-1)  # first channel at half the maximum
    jm = np.maximum(j - 1, 0)
    cj = np.take_along_axis(low, j[..., None], -1)[..., 0]
    cm = np.take_along_axis(low, jm[..., None], -1)[..., 0]
    half = 0.5 * peak
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where((j > 0) & (cj > cm), (half - cm) / (cj - cm), 1.0)
    # the count of channel i stands for its middle, i + 0.5
    xe = jm + 0.5 + np.clip(frac, 0.0, 1.0) * (j - jm)
    edge = gain.gain * xe + gain.offset
    return np.where(found, edge, np.nan), found


def threshold_table(
    spectra: PixelSpectra, gain: PixelGain, config: ThresholdConfig
) -> ThresholdTable:
    """Compute the SBN table: the DAC per ASIC channel that puts the threshold at the target."""
    edge, found = noise_edge_kev(spectra.counts, gain, config)
    old = spectra.dac.astype(np.int64)
    step = np.where(found, np.round((config.target_kev - edge) / config.dac_step_kev), 0)
    new = np.clip(old + step.astype(np.int64), config.dac_min, config.dac_max)
    predicted = np.where(found, edge + (new - old) * config.dac_step_kev, np.nan)
    flag = np.full(old.shape, "", dtype="<U40")
    # a pixel on its module's gain has its edge in keV only to the module's scatter
    flag[found & gain.fallback] = "module gain: threshold approximate"
    flag[~found] = "no noise edge: setting kept"
    clipped = found & (new != old + step)
    flag[clipped] = "DAC at the end of its range"
    ny, nz = old.shape
    asic, chan = plane_layout(ny, nz, config.module_shape)
    return ThresholdTable(
        asic=asic,
        channel=chan,
        dac=new.astype(np.int16),
        edge_kev=edge,
        predicted_kev=predicted,
        target_kev=config.target_kev,
        flag=flag,
    )


def threshold_figures(table: ThresholdTable) -> list[QCFigure]:
    """Return the QC figures of an SBN table (what the promotion gate judges)."""
    ok = np.isfinite(table.predicted_kev)
    dev = table.predicted_kev[ok] - table.target_kev
    return [
        QCFigure(
            "median_threshold",
            float(np.median(table.predicted_kev[ok])) if ok.any() else float("nan"),
            "keV",
        ),
        QCFigure(
            "threshold_rms", float(np.sqrt(np.mean(dev**2))) if ok.any() else float("nan"), "keV"
        ),
        QCFigure("unset_fraction", float(1.0 - ok.mean()), ""),
        QCFigure("median_dac", float(np.median(table.dac)), ""),
    ]


@dataclass
class ThresholdCandidate:
    """An SBN table, its QC figures and its product (``SBNTHR``)."""

    table: ThresholdTable
    figures: list[QCFigure]
    products: list[Product]


@step(name="sbn-thresholds", config=ThresholdConfig, outputs=("SBNTHR",))
def sbn_thresholds(
    spectra: PixelSpectra,
    gain: PixelGain,
    telescope: str,
    instrument: str,
    *,
    config: ThresholdConfig,
) -> ThresholdCandidate:
    """Compute the SBN table from the spectra's noise edges and a gain table."""
    table = threshold_table(spectra, gain, config)
    hdus = threshold_table_hdus(table, telescope=telescope, instrument=instrument)
    return ThresholdCandidate(
        table, threshold_figures(table), [Product("SBNTHR", "ECL", FitsModel.from_hdus(hdus))]
    )
