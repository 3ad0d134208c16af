"""An instrument's energy bands for the VHF steps: from its definition, clipped to its channels.

The bands of an instrument (T90, hardness, light curves, rate trigger, imaging) are data of
its definition file (``bands_kev``); an instrument without one (foreign files) uses the
flow's defaults. Every band is clipped to the energies the instrument's channels cover
(its EBOUNDS: the CALDB's for the mission's instruments, the file's for foreign ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.instruments.channels import EnergyBounds
from svomflow.products.burst_events import InstrumentEvents

__all__ = ["Band", "clip_band", "definition_band", "definition_bands", "energy_range_kev"]

Band = tuple[float, float]


def clip_band(band: Sequence[float], energy_range: Band) -> Band | None:
    """Return ``band`` clipped to ``energy_range`` (None when they do not overlap)."""
    lo, hi = max(band[0], energy_range[0]), min(band[1], energy_range[1])
    return (float(lo), float(hi)) if hi > lo else None


def energy_range_kev(data: InstrumentEvents, calibration: CalibrationSet) -> Band:
    """Energy range (keV) of the instrument's channels, within its ``energy_range_kev``.

    The channels are those of its EBOUNDS calibration when the run has one (the events were
    read with it), else those of its files.
    """
    bounds: EnergyBounds | None = calibration.optional(data.key, "EBOUNDS")
    if bounds is not None:
        lo, hi = float(np.min(bounds.e_min)), float(np.max(bounds.e_max))
    else:
        ebounds = data.events.ebounds.values()
        lo = min(float(np.min(e[0])) for e in ebounds)
        hi = max(float(np.max(e[1])) for e in ebounds)
    if data.definition is not None:
        rng = data.definition.get("energy_range_kev", None)
        if rng is not None:
            lo, hi = max(lo, float(rng[0])), min(hi, float(rng[1]))
    return lo, hi


def _definition_value(data: InstrumentEvents, key: str) -> Sequence[Any] | None:
    if data.definition is None:
        return None
    found: Sequence[Any] | None = data.definition.get(f"bands_kev.{key}", None)
    return found


def definition_band(data: InstrumentEvents, key: str, default: Sequence[float]) -> Band:
    """Return the band ``bands_kev.<key>`` of the instrument's definition, else ``default``."""
    found = _definition_value(data, key)
    b = default if found is None else found
    return (float(b[0]), float(b[1]))


def definition_bands(
    data: InstrumentEvents, key: str, default: Sequence[Sequence[float]]
) -> list[Band]:
    """Return the bands ``bands_kev.<key>`` of the instrument's definition, else ``default``."""
    found = _definition_value(data, key)
    bands = default if found is None else found
    return [(float(b[0]), float(b[1])) for b in bands]
