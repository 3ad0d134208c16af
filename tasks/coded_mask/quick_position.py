"""OTLOC ECLAIRs: from an event list and a burst interval to the quick position (QPO).

Pure (no Prefect, no I/O): the VHF pipeline reads the events
(:func:`svomflow.products.burst_events.read_burst_events`), picks the burst interval and
the bad pixels of the CALDB (``BADPIX``) and calls :func:`quick_position`; the noisy and dead
pixels found in the data are excluded with them.
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
from svomflow.instruments.pixels import PixelMap
from svomflow.tasks.coded_mask.imaging import (
    MaskModel,
    background_templates,
    find_noisy_pixels,
    make_shadowgram,
)
from svomflow.tasks.coded_mask.position import LocalisationConfig, SourcePosition, localise

__all__ = ["QuickPosition", "quick_position"]


@dataclass
class QuickPosition:
    """The ECLAIRs quick position with the pixels it excluded (known and found)."""

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
    bad_pixels: PixelMap | None = None,
    known_sources_radec: Sequence[tuple[float, float]] = (),
    config: LocalisationConfig | None = None,
    instrument: InstrumentDefinition | None = None,
) -> QuickPosition:
    """Localise the burst in ``interval`` against ``background_interval``.

    Noisy and dead pixels are found from the background interval (rates against the
    background templates, ``noisy_pixel.max_rate_sigma`` of the instrument file) and
    excluded with the known ones (``bad_pixels``, the CALDB's BADPIX); known sources in the
    field (RA/Dec) are modelled and removed; the band defaults to the image-trigger band.
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
    known = bad_pixels if bad_pixels is not None else PixelMap.empty(geom.shape)
    if known.shape != geom.shape:
        raise InputDataError(f"bad-pixel map of shape {known.shape}, the plane is {geom.shape}")
    # known noisy pixels would bias the template fit of the search: left out of it
    noisy_found, dead_found = find_noisy_pixels(
        off.counts,
        usable=~known.noisy,
        templates=background_templates(model),
        max_sigma=float(inst.get("noisy_pixel.max_rate_sigma")),
    )
    noisy = noisy_found | known.noisy
    dead = dead_found | known.dead
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
    sources = []
    for ra, dec in known_sources_radec:
        ty, tz = attitude.to_projected(ra, dec)
        if np.isfinite(ty) and np.isfinite(tz):
            sources.append((float(ty), float(tz)))
    pos = localise(sg, model, attitude, cfg, known_sources=sources)
    return QuickPosition(
        position=pos,
        noisy_pixels=noisy,
        dead_pixels=dead,
        interval=(float(interval[0]), float(interval[1])),
        background_interval=(float(b0), float(b1)),
        band_kev=(float(band[0]), float(band[1])),
    )
