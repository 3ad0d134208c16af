"""Refined positions with the full X-band data: ECLAIRs imaging and GRM count ratios.

ECLAIRs: :func:`svomflow.tasks.coded_mask.quick_position.quick_position` on the whole main
interval against the pre-burst interval (noisy pixels found there and excluded; known sources
in the field modelled by their shadows and removed before the search, as in the VHF quick
position). GRM:
:func:`svomflow.tasks.localisation.grm_ratio.localise_grm` on each detector's net counts in its
localisation band over the main interval, background from the detector's fitted model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from svomflow.tasks.coded_mask.quick_position import QuickPosition, quick_position
from svomflow.tasks.localisation.grm_ratio import (
    GRMLocalisation,
    GRMLocalisationConfig,
    localise_grm,
)
from svomflow.tasks.xband.events import InstrumentEvents
from svomflow.tasks.xband.intervals import default_band
from svomflow.tasks.xband.spectra import detector_background

__all__ = ["GRMPosition", "eclairs_position", "grm_position"]


def eclairs_position(
    ev: InstrumentEvents,
    main: tuple[float, float],
    pre_burst: tuple[float, float],
    band_kev: tuple[float, float] | None = None,
    known_sources_radec: Sequence[tuple[float, float]] = (),
) -> QuickPosition:
    """Localise the burst in the ECLAIRs image of the main interval.

    ``known_sources_radec`` (deg): sources whose shadows are fitted and removed with the
    background before the search (those outside the field are ignored).
    """
    band = default_band(ev, band_kev, "image_trigger")
    assert ev.pixel_y is not None and ev.pixel_z is not None and ev.attitude is not None
    return quick_position(
        ev.time,
        ev.pixel_y,
        ev.pixel_z,
        ev.energy,
        attitude=ev.attitude,
        interval=main,
        background_interval=pre_burst,
        band_kev=band,
        gti=ev.gti,
        dead_pixels=ev.dead_pixels,
        known_sources_radec=known_sources_radec,
        instrument=ev.definition,
    )


@dataclass
class GRMPosition:
    """GRM localisation with the per-detector net counts it used."""

    localisation: GRMLocalisation
    net_counts: NDArray[np.float64]
    variances: NDArray[np.float64]
    band_kev: tuple[float, float]


def grm_position(
    ev: InstrumentEvents,
    main: tuple[float, float],
    off_intervals: list[tuple[float, float]],
    config: GRMLocalisationConfig,
) -> GRMPosition:
    """Localise from the detectors' net counts in the configured band over the main interval."""
    band = (float(config.band_kev[0]), float(config.band_kev[1]))
    net, var = [], []
    for k in range(len(ev.detectors)):
        bkg = detector_background(ev, k, off_intervals, band)
        t = ev.time[(ev.detector == k) & ev.band_mask(band)]
        n = float(np.count_nonzero((t >= main[0]) & (t < main[1])))
        from svomflow.tasks.timing import BinnedCounts, gti_overlap

        expo = float(gti_overlap(np.array(main), ev.gti)[0])
        mu, v = bkg.model.counts(
            BinnedCounts(np.array([main[0]]), np.array([main[1]]), np.zeros(1), np.array([expo]))
        )
        net.append(n - float(mu[0]))
        var.append(n + float(v[0]))
    assert ev.attitude is not None
    loc = localise_grm(
        np.array(net), np.array(var), attitude=ev.attitude, config=config, instrument=ev.definition
    )
    return GRMPosition(loc, np.array(net), np.array(var), band)
