"""OTLOC ECLAIRs step: from an event list and a burst interval to QPO (position) and QCL (S/N).

Pure step (no Prefect, no I/O): the VHF flow reads the L1 file
(:func:`svomflow.simulation.eclairs.read_eclairs_l1` or its own reader), picks the burst
interval (trigger time and timescale) and calls :func:`quick_position`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from svomflow.config import InstrumentDefinition, load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.tasks.coded_mask.imaging import (
    MaskModel,
    background_templates,
    find_noisy_pixels,
    make_shadowgram,
)
from svomflow.tasks.coded_mask.position import LocalisationConfig, SourcePosition, localise

__all__ = ["CALIBRATION_CODES", "QuickPosition", "quick_position"]

# Calibration products this step would take from the CALDB once they exist (the mask
# pattern and bad-pixel list are rebuilt from the instrument file and the data for now).
CALIBRATION_CODES = ("MASKPATT", "BADPIX")


@dataclass
class QuickPosition:
    """The ECLAIRs quick position with the pixels it excluded."""

    position: SourcePosition
    noisy_pixels: NDArray[np.bool_]
    dead_pixels: NDArray[np.bool_]
    interval: tuple[float, float]
    background_interval: tuple[float, float]
    band_kev: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready summary."""
        return {
            **self.position.to_dict(),
            "n_noisy_pixels": int(self.noisy_pixels.sum()),
            "n_dead_pixels": int(self.dead_pixels.sum()),
            "interval": list(self.interval),
            "background_interval": list(self.background_interval),
            "band_kev": list(self.band_kev),
        }


def quick_position(
    time: NDArray[np.float64],
    y: NDArray[np.integer],
    z: NDArray[np.integer],
    energy_kev: NDArray[np.floating],
    *,
    attitude: Attitude,
    interval: tuple[float, float],
    background_interval: tuple[float, float],
    band_kev: tuple[float, float] | None = None,
    gti: NDArray[np.float64] | None = None,
    dead_pixels: NDArray[np.bool_] | None = None,
    known_sources_radec: Sequence[tuple[float, float]] = (),
    config: LocalisationConfig | None = None,
    instrument: InstrumentDefinition | None = None,
) -> QuickPosition:
    """Localise the burst in ``interval`` against ``background_interval``.

    Noisy and dead pixels are found from the background interval (rates against the
    background templates, ``noisy_pixel.max_rate_sigma`` of the instrument file) and
    excluded with the known dead pixels; known sources in the field (RA/Dec) are modelled and
    removed; the band defaults to the image-trigger band.
    """
    inst = instrument or load_instrument("eclairs")
    geom = MaskGeometry.from_instrument(inst)
    model = MaskModel.from_geometry(geom)
    band = tuple(band_kev) if band_kev is not None else tuple(inst.get("bands_kev.image_trigger"))
    cfg = config or LocalisationConfig.from_instrument(inst)
    b0, b1 = background_interval
    if not b1 > b0:
        raise InputDataError(f"quick position: empty background interval {background_interval}")
    off = make_shadowgram(
        time,
        y,
        z,
        energy_kev,
        shape=geom.shape,
        band_kev=(band[0], band[1]),
        interval=(b0, b1),
        gti=gti,
    )
    noisy, dead_found = find_noisy_pixels(
        off.counts,
        templates=background_templates(model),
        max_sigma=float(inst.get("noisy_pixel.max_rate_sigma")),
    )
    dead = dead_found.copy()
    if dead_pixels is not None:
        dead |= np.asarray(dead_pixels, dtype=bool)
    usable = ~(noisy | dead)
    sg = make_shadowgram(
        time,
        y,
        z,
        energy_kev,
        shape=geom.shape,
        band_kev=(band[0], band[1]),
        interval=interval,
        background_interval=(b0, b1),
        gti=gti,
        usable=usable,
    )
    known = []
    for ra, dec in known_sources_radec:
        ty, tz = attitude.to_projected(ra, dec)
        if np.isfinite(ty) and np.isfinite(tz):
            known.append((float(ty), float(tz)))
    pos = localise(sg, model, attitude, cfg, known_sources=known)
    return QuickPosition(
        position=pos,
        noisy_pixels=noisy,
        dead_pixels=dead,
        interval=(float(interval[0]), float(interval[1])),
        background_interval=(float(b0), float(b1)),
        band_kev=(float(band[0]), float(band[1])),
    )
