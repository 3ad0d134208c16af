"""Event selections the X-band steps share: bands, detectors, channels, instrument settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel
from svomflow.products.burst_events import InstrumentEvents

__all__ = [
    "band_mask",
    "channel_bounds",
    "default_band",
    "per_instrument",
    "source_file",
    "times_in_band",
]


def band_mask(ev: InstrumentEvents, band_kev: Sequence[float]) -> NDArray[np.bool_]:
    """Events whose channel midpoint lies in ``[lo, hi)`` keV."""
    return np.asarray(ev.events.in_band(float(band_kev[0]), float(band_kev[1])))


def times_in_band(
    ev: InstrumentEvents, band_kev: Sequence[float], detectors: Sequence[int] | None = None
) -> NDArray[np.float64]:
    """Sorted times (s since t0) of the events in a band (optionally of some detectors)."""
    m = band_mask(ev, band_kev)
    if detectors is not None:
        m &= np.isin(ev.events.detector, list(detectors))
    return np.asarray(ev.events.time[m])


def channel_bounds(
    ev: InstrumentEvents, detector_index: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """``(e_min, e_max, first_channel)`` of one detector's channels (keV)."""
    name = ev.events.detectors[detector_index]
    e_min, e_max = ev.events.ebounds[name]
    return np.asarray(e_min), np.asarray(e_max), int(ev.events.first_channel[name])


def source_file(ev: InstrumentEvents) -> str:
    """Return the instrument's event file (named in error messages)."""
    return ev.files[0] if ev.files else ev.name


def default_band(
    ev: InstrumentEvents, given: Sequence[float] | None, key: str
) -> tuple[float, float]:
    """Return the band ``given``, else the instrument file's ``bands_kev.<key>``."""
    assert ev.definition is not None
    band = given if given is not None else ev.definition.get(f"bands_kev.{key}")
    return (float(band[0]), float(band[1]))


def per_instrument(config: BaseModel, field: str, name: str) -> Any:
    """Return the setting ``<name>_<field>`` of a config section (``eclairs_band_kev``)."""
    return getattr(config, f"{name}_{field}")
