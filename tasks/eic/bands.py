"""The on-board energy-band table: each band's bounds in raw ADC channels, per pixel.

The on-board software bins events by raw ADC channel, so each band (the rate-trigger bands
and the image-trigger band of the instrument file) becomes, for every pixel, the first and
last channel whose middle lies in the band: channel ``i`` belongs to ``[E_lo, E_hi)`` when
``E_lo <= gain * (i + 0.5) + offset < E_hi``.

Per pixel rather than per module: with a pixel-to-pixel gain scatter of a few per cent
inside a module, one module-wide bound at 120 keV would misplace pixels' events by up to
several keV (tens of channels), far more than a channel (0.16 keV); a per-pixel table costs
6400 x bands x 2 small integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field
from svomflow.config.base import StepConfig
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue import eic_calib as _declared  # noqa: F401  (BANDTAB)
from svomflow.products.eic_calibration_files import BandTable, PixelGain, band_table_hdus
from svomflow.tasks.eic.gate import QCFigure
from svomflow.tasks.step import step

__all__ = ["BandCandidate", "BandConfig", "band_figures", "band_table", "energy_bands"]


class BandConfig(StepConfig):
    """On-board energy bands (keV) and the ADC range."""

    bands_kev: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "trig_4_20": (4.0, 20.0),
            "trig_4_50": (4.0, 50.0),
            "trig_20_50": (20.0, 50.0),
            "trig_50_120": (50.0, 120.0),
            "image_4_50": (4.0, 50.0),
        },
        description="On-board bands by name: [E_min, E_max) keV (the instrument file's "
        "trigger and image-trigger bands by default)",
    )
    n_adc: int = Field(1024, ge=2, description="Number of raw ADC channels")


def band_table(gain: PixelGain, config: BandConfig) -> BandTable:
    """Return each band's first and last ADC channel per pixel (see the module notes)."""
    names = tuple(config.bands_kev)
    lo = np.array([config.bands_kev[n][0] for n in names], dtype=np.float64)
    hi = np.array([config.bands_kev[n][1] for n in names], dtype=np.float64)
    first = np.ceil(gain.channel(lo) - 0.5)
    last = np.ceil(gain.channel(hi) - 0.5) - 1
    top = config.n_adc - 1
    return BandTable(
        names=names,
        e_min=lo,
        e_max=hi,
        chan_lo=np.clip(first, 0, top).astype(np.int16),
        chan_hi=np.clip(last, 0, top).astype(np.int16),
    )


def band_figures(table: BandTable) -> list[QCFigure]:
    """Return the QC figures of a band table: empty bands, median top channel."""
    width = (table.chan_hi - table.chan_lo + 1).astype(float)
    return [
        QCFigure("empty_band_fraction", float(np.mean(width <= 0)), ""),
        QCFigure("median_top_channel", float(np.median(table.chan_hi.max(axis=-1))), "chan"),
    ]


@dataclass
class BandCandidate:
    """An on-board band table, its QC figures and its product (``BANDTAB``)."""

    table: BandTable
    figures: list[QCFigure]
    products: list[Product]


@step(name="energy-bands", config=BandConfig, outputs=("BANDTAB",))
def energy_bands(
    gain: PixelGain, telescope: str, instrument: str, *, config: BandConfig
) -> BandCandidate:
    """Compute the on-board band table from a gain table."""
    table = band_table(gain, config)
    hdus = band_table_hdus(table, telescope=telescope, instrument=instrument)
    return BandCandidate(
        table, band_figures(table), [Product("BANDTAB", "ECL", FitsModel.from_hdus(hdus))]
    )
