"""The data objects the MXT steps pass to each other (see :mod:`svomflow.tasks.xray.steps`).

``MXTInputs`` (read once by the pipeline) -> ``MergedEvents`` (merge) ->
``CalibratedObservation`` (calibrate, holds the ``EVT`` product) -> ``SourceList`` (detect,
holds ``SRCLIST`` and ``QIMG``) -> ``SourceProducts`` (one per source: ``ARF``, ``SP``,
``LC``, ``QLC``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from svomflow.config.instrument import InstrumentDefinition
from svomflow.instruments.mxt_calibration import PSFModel
from svomflow.products.catalogue import Product, TableBlock
from svomflow.tasks.xray.calibrate import CalibratedEvents
from svomflow.tasks.xray.detect import SourceRecord
from svomflow.tasks.xray.events import MergedEvents, PassData
from svomflow.tasks.xray.lightcurve import SourceLightCurve

__all__ = ["CalibratedObservation", "MXTInputs", "SourceList", "SourceProducts"]


@dataclass(frozen=True)
class MXTInputs:
    """Everything one MXT run reads, once: passes, attitude, SAA intervals, burst information.

    Attributes
    ----------
    passes
        The L1 pass files, read and cleaned of corrupted rows (any order).
    attitude
        The attitude table (``TIME``, ``RA``, ``DEC``, ``ROLL``, ``EARTH``, ``TIMESTEP``).
    saa
        SAA intervals of the week, ``(N, 2)`` mission seconds.
    instrument
        The MXT instrument definition (geometry, channels, bands, time reference).
    trigger_time
        Burst mode: the trigger time (mission s); light curves are drawn relative to it.
    prior_radec
        Burst mode: the ECLAIRs position (deg) fitted as a candidate when stage 1 misses it.
    """

    passes: list[PassData]
    attitude: dict[str, NDArray[Any]]
    saa: NDArray[np.float64]
    instrument: InstrumentDefinition
    trigger_time: float | None = None
    prior_radec: tuple[float, float] | None = None


@dataclass
class CalibratedObservation:
    """Calibrated X-ray events of one observation with its GTIs, gaps and pointing.

    ``events.energy_kev`` holds the energies at the precision of the published ``EVT`` file
    (float32), so that detection on this object and on the file give the same sources.
    """

    events: CalibratedEvents
    merged: MergedEvents
    instrument: InstrumentDefinition
    products: list[Product] = field(default_factory=list)

    @property
    def gti(self) -> NDArray[np.float64]:
        """Good time intervals, ``(N, 2)`` mission seconds."""
        return self.merged.gti

    @property
    def gaps(self) -> list[tuple[float, float, str]]:
        """Gaps between the GTIs, labelled by cause (SAA, Earth, attitude, telemetry)."""
        return self.merged.gaps

    @property
    def exposure_s(self) -> float:
        """Total GTI exposure (s)."""
        return float(np.diff(self.merged.gti, axis=1).sum())

    @property
    def shape(self) -> tuple[int, int]:
        """Detector shape (ny, nx) in pixels."""
        inst = self.instrument
        return int(inst.get("ccd.npix_y")), int(inst.get("ccd.npix_x"))

    @property
    def pixel_scale_arcsec(self) -> float:
        """Detector pixel scale (arcsec)."""
        return float(self.instrument.get("ccd.pixel_scale_arcsec"))


@dataclass
class SourceList:
    """Detected sources, as fitted and as published in the ``SRCLIST`` table.

    Attributes
    ----------
    sources
        The sources above the likelihood threshold, brightest ML first (full precision).
    table
        The published ``SRCLIST`` extension: per-source products use its values (detector
        positions in float32, as a re-run from the file would).
    n_candidates
        Stage-1 candidates.
    products
        ``SRCLIST`` and the image preview ``QIMG``.
    psf
        The PSF the sources were fitted with (the field's self-calibrated one or the CALDB's).
    """

    sources: list[SourceRecord]
    table: TableBlock
    n_candidates: int
    products: list[Product] = field(default_factory=list)
    psf: PSFModel | None = None

    def __len__(self) -> int:
        return len(self.sources)


@dataclass
class SourceProducts:
    """The products of one source: its light curve (kept for callers) and the files."""

    index: int
    lightcurve: SourceLightCurve
    counts_in_region: int
    products: list[Product] = field(default_factory=list)
