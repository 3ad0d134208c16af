"""Step ``localise``: refined positions with the full X-band data (PO_ECL, PO_GRM).

ECLAIRs: :func:`svomflow.tasks.coded_mask.quick_position.quick_position` on an interval
against the pre-burst interval (the CALDB's dead and noisy pixels left out, noisy pixels
found in the data too; known sources in the field modelled by their shadows and removed
before the search, as in the VHF quick position). GRM:
:func:`svomflow.tasks.localisation.grm_ratio.localise_grm` on each detector's net counts in
its localisation band, background from the detector's fitted model, through the CALDB's
response model (``RSPPAR``). Both image the main and the peak interval and keep the one of
higher significance: the peak wins for short bursts, whose main interval is mostly
background.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.instruments.pixels import PixelMap
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.tasks.classification.crude import KnownSource
from svomflow.tasks.coded_mask.quick_position import QuickPosition, quick_position
from svomflow.tasks.localisation.grm_ratio import (
    GRMLocalisation,
    GRMLocalisationConfig,
    localise_grm,
)
from svomflow.tasks.step import step
from svomflow.tasks.timing import BinnedCounts, gti_overlap
from svomflow.tasks.xband.config import LocaliseConfig
from svomflow.tasks.xband.intervals import CommonIntervals
from svomflow.tasks.xband.selection import band_mask, default_band, per_instrument
from svomflow.tasks.xband.spectra import detector_background
from svomflow.tasks.xband.tables import primary, results_table

__all__ = [
    "GRMPosition",
    "Positions",
    "eclairs_position",
    "grm_position",
    "localise",
]

Interval = tuple[float, float]


def eclairs_position(
    ev: InstrumentEvents,
    main: Interval,
    pre_burst: Interval,
    bad_pixels: PixelMap,
    band_kev: Sequence[float] | None = None,
    known_sources_radec: Sequence[tuple[float, float]] = (),
) -> QuickPosition:
    """Localise the burst in the ECLAIRs image of an interval.

    ``bad_pixels`` (CALDB ``BADPIX``) are left out; ``known_sources_radec`` (deg): sources
    whose shadows are fitted and removed with the background before the search (those
    outside the field are ignored).
    """
    band = default_band(ev, band_kev, "image_trigger")
    data = ev.events
    assert data.pixel_y is not None and data.pixel_z is not None and ev.attitude is not None
    return quick_position(
        data.time,
        data.pixel_y,
        data.pixel_z,
        data.energy,
        attitude=ev.attitude,
        interval=main,
        background_interval=pre_burst,
        band_kev=band,
        gti=data.gti,
        bad_pixels=bad_pixels,
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

    @property
    def snr(self) -> float:
        """Net counts over their error, all detectors."""
        return float(self.net_counts.sum() / np.sqrt(self.variances.sum()))


def grm_position(
    ev: InstrumentEvents,
    main: Interval,
    off_intervals: Sequence[Interval],
    config: GRMLocalisationConfig,
    model: Any,
) -> GRMPosition:
    """Localise from the detectors' net counts in the configured band over an interval.

    ``model`` is the GRM response model (CALDB ``RSPPAR``).
    """
    band = (float(config.band_kev[0]), float(config.band_kev[1]))
    data = ev.events
    net, var = [], []
    for k in range(len(data.detectors)):
        bkg = detector_background(ev, k, off_intervals, band)
        t = data.time[(data.detector == k) & band_mask(ev, band)]
        n = float(np.count_nonzero((t >= main[0]) & (t < main[1])))
        expo = float(gti_overlap(np.array(main), data.gti)[0])
        mu, v = bkg.model.counts(
            BinnedCounts(np.array([main[0]]), np.array([main[1]]), np.zeros(1), np.array([expo]))
        )
        net.append(n - float(mu[0]))
        var.append(n + float(v[0]))
    assert ev.attitude is not None
    loc = localise_grm(
        np.array(net),
        np.array(var),
        attitude=ev.attitude,
        model=model,
        config=config,
        instrument=ev.definition,
    )
    return GRMPosition(loc, np.array(net), np.array(var), band)


@dataclass
class Positions:
    """The refined positions, by instrument name: coded-mask imaging and count ratios.

    ``excluded_pixels`` marks, per imaging instrument, the pixels left out of the image (bad
    in the CALDB or found noisy): the spectra and the response leave them out too.
    """

    imaging: dict[str, QuickPosition] = field(default_factory=dict)
    excluded_pixels: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    count_ratio: dict[str, GRMPosition] = field(default_factory=dict)
    products: list[Product] = field(default_factory=list)

    @property
    def direction(self) -> tuple[tuple[float, float], str]:
        """The best burst direction (RA, Dec in deg) and which instrument gave it.

        Imaging (arcminutes) is preferred to count ratios (degrees).
        """
        for name, qp in self.imaging.items():
            return (float(qp.position.ra_deg), float(qp.position.dec_deg)), _label(name)
        for name, gp in self.count_ratio.items():
            loc = gp.localisation
            return (float(loc.ra_deg), float(loc.dec_deg)), _label(name)
        raise InputDataError("no position to compute responses for")

    def summary(self) -> dict[str, dict[str, Any]]:
        """Return the positions as JSON-ready dictionaries (the flow's ``positions`` result)."""
        out: dict[str, dict[str, Any]] = {n: qp.to_dict() for n, qp in self.imaging.items()}
        out.update({n: _grm_row(gp) for n, gp in self.count_ratio.items()})
        return out


def _label(name: str) -> str:
    """How the results name an instrument as a position's source (``ECLAIRs``, ``GRM``)."""
    return {"eclairs": "ECLAIRs"}.get(name, name.upper())


def _grm_row(gp: GRMPosition) -> dict[str, Any]:
    loc = gp.localisation
    return {
        "ra_deg": loc.ra_deg,
        "dec_deg": loc.dec_deg,
        "error_radius_1sigma_deg": loc.error_radius_1sigma_deg,
        "error_radius_90_deg": loc.error_radius_90_deg,
        "chi2_min": loc.chi2_min,
    }


def _eclairs_product(ev: InstrumentEvents, qp: QuickPosition, t0: float) -> Product:
    d = qp.to_dict()
    row = {k: v for k, v in d.items() if not isinstance(v, list)}
    units = {
        "ra_deg": "deg",
        "dec_deg": "deg",
        "off_axis_deg": "deg",
        "r90_arcmin": "arcmin",
        "stat_arcmin": "arcmin",
        "sys_arcmin": "arcmin",
        "fit_sigma_arcmin": "arcmin",
        "counts": "count",
        "counts_err": "count",
    }
    tab = results_table(
        [row],
        extname="POSITION",
        units=units,
        header=[
            ("TSTART", qp.interval[0] + t0, "imaged interval start (mission s)"),
            ("TSTOP", qp.interval[1] + t0, "imaged interval end (mission s)"),
            ("EQUINOX", 2000.0, ""),
            ("RADESYS", "ICRS", ""),
        ],
    )
    return Product(
        "PO", instrument_code(ev.key), FitsModel.from_hdus([primary(ev.definition), tab])
    )


def _grm_product(ev: InstrumentEvents, gp: GRMPosition) -> Product:
    row = _grm_row(gp)
    for k, name in enumerate(ev.events.detectors):
        row[f"net_{name}"] = float(gp.net_counts[k])
    tab = results_table(
        [row],
        extname="POSITION",
        units={
            "ra_deg": "deg",
            "dec_deg": "deg",
            "error_radius_1sigma_deg": "deg",
            "error_radius_90_deg": "deg",
        },
        header=[("E_MIN", gp.band_kev[0], "keV"), ("E_MAX", gp.band_kev[1], "keV")],
    )
    return Product(
        "PO", instrument_code(ev.key), FitsModel.from_hdus([primary(ev.definition), tab])
    )


@step(
    name="localise",
    config=LocaliseConfig,
    calibration=("BADPIX", "RSPPAR"),
    outputs=("PO",),
)
def localise(
    instruments: Mapping[str, InstrumentEvents],
    intervals: CommonIntervals,
    known_sources: Sequence[KnownSource],
    t0: float,
    *,
    config: LocaliseConfig,
    calibration: CalibrationSet,
) -> Positions:
    """Refine the burst position with ECLAIRs imaging and GRM count ratios (PO products).

    ``instruments`` are the events by definition name; ``known_sources`` the bright sources
    removed from the ECLAIRs image.
    """
    out = Positions()
    candidates = (intervals.main, intervals.peak)
    for name, ev in instruments.items():
        if ev.imaging:
            known = [(q.ra_deg, q.dec_deg) for q in known_sources]
            bad = calibration.get(name, "BADPIX")
            qp = max(
                (
                    eclairs_position(
                        ev,
                        iv,
                        intervals.pre_burst,
                        bad,
                        per_instrument(config, "band_kev", name),
                        known,
                    )
                    for iv in candidates
                ),
                key=lambda q: q.position.snr,
            )
            out.imaging[name] = qp
            out.excluded_pixels[name] = np.asarray(qp.noisy_pixels | qp.dead_pixels)
            out.products.append(_eclairs_product(ev, qp, t0))
        elif ev.attitude is not None and len(ev.events.detectors) > 1:
            # several detectors facing different ways: their count ratios point to the burst
            model = calibration.get(name, "RSPPAR")
            gp = max(
                (
                    grm_position(ev, iv, intervals.off_source, config.grm, model)
                    for iv in candidates
                ),
                key=lambda g: g.snr,
            )
            out.count_ratio[name] = gp
            out.products.append(_grm_product(ev, gp))
    return out
