"""Step ``spectra``: the spectra of every fitted interval, per detector (PHA, BAK products).

Per detector one PHA product, a row per interval (type II), in the order the fits use:

* whole-detector counts with a background from the off-source intervals
  (:func:`~svomflow.tasks.xband.spectra.extract_spectrum`; the BAK product holds the
  background, published first so that the spectrum's ``BACKFILE`` names it);
* for an imaging instrument with ``spectral.eclairs_method = "mask_weighted"``: mask-weighted
  counts for the burst direction (:mod:`svomflow.tasks.xband.mask_spectra`), the weights
  cancelling the flat and CXB background and the shadows of the known sources in the field
  (a known source within its radius of the burst is not cancelled: its shadow is the
  burst's); no background product.

The spectra leave out the CALDB's bad pixels and those the image found noisy, and use the
CALDB's dead time for their exposure. The same numbers are returned as fit datasets
(:class:`~svomflow.tasks.xband.datasets.FitDataset`) with the responses of the RSP products.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.instruments.coded_mask import MaskGeometry, mask_pattern
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product, link_name
from svomflow.products.catalogue.instrument_codes import detector_code
from svomflow.products.ogip import TimeReference
from svomflow.tasks.classification.crude import KnownSource
from svomflow.tasks.coded_mask.known_sources import angular_separation_deg, sources_in_field
from svomflow.tasks.coded_mask.mask_weighting import default_templates, mask_weights
from svomflow.tasks.spectral import SpectrumDataset
from svomflow.tasks.step import step
from svomflow.tasks.xband.config import SpectralConfig
from svomflow.tasks.xband.datasets import FitDataset, pha_spectrum
from svomflow.tasks.xband.localise import Positions
from svomflow.tasks.xband.mask_spectra import (
    WeightedSpectrum,
    extract_weighted_spectrum,
    weighted_spectra_hdu,
)
from svomflow.tasks.xband.responses import InstrumentResponses, Responses, usable_pixels
from svomflow.tasks.xband.selection import channel_bounds, per_instrument
from svomflow.tasks.xband.spectra import (
    ExtractedSpectrum,
    detector_background,
    ebounds_gti_hdus,
    extract_spectrum,
    spectra_hdus,
)
from svomflow.tasks.xband.tables import primary

__all__ = ["DetectorSpectra", "IntervalSpectra", "mask_weighted", "spectra"]

Interval = tuple[float, float]


@dataclass
class DetectorSpectra:
    """One detector's spectra as fit datasets, one per interval (the PHA product's rows)."""

    instrument: str
    detector: str
    datasets: list[FitDataset]


@dataclass
class IntervalSpectra:
    """The spectra of every interval of every instrument (and what the extraction noted).

    ``channel_range`` is each instrument's energy range (keV, first channel's lower to last
    channel's upper bound); ``cancelled_sources`` the known sources whose shadows the mask
    weights of an imaging instrument cancel; ``background_order`` the order of each
    time-background polynomial (``<instrument>_<detector>``).
    """

    labels: list[str]
    intervals: list[Interval]
    detectors: dict[str, list[DetectorSpectra]] = field(default_factory=dict)
    channel_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    cancelled_sources: dict[str, list[str]] = field(default_factory=dict)
    background_order: dict[str, int] = field(default_factory=dict)
    products: list[Product] = field(default_factory=list)

    def datasets(self, names: Sequence[str], row: int) -> list[FitDataset]:
        """Return the datasets of one fit: interval ``row`` (0-based) of each detector of ``names``."""
        return [d.datasets[row] for n in names for d in self.detectors.get(n, [])]


def mask_weighted(ev: InstrumentEvents, config: SpectralConfig) -> bool:
    """Whether an instrument's spectra are mask-weighted (an imaging one, so configured)."""
    return ev.imaging and config.eclairs_method == "mask_weighted"


def _timeref(ev: InstrumentEvents) -> TimeReference:
    assert ev.definition is not None
    ref = ev.definition.get("time_reference")
    return TimeReference(float(ref["mjdref"]), str(ref["timesys"]), str(ref["timeunit"]))


def _dataset_name(name: str, detector: str, n_detectors: int) -> str:
    return name if n_detectors == 1 else f"{name}_{detector}"


def _met(interval: Interval, t0: float) -> Interval:
    # as the PHA product's TSTART/TSTOP columns
    return (interval[0] + t0, interval[1] + t0)


def _weighted(
    name: str,
    ev: InstrumentEvents,
    config: SpectralConfig,
    intervals: Sequence[Interval],
    usable: NDArray[np.bool_],
    response: InstrumentResponses,
    direction: tuple[float, float],
    known_sources: Sequence[KnownSource],
    dead_time_s: float,
) -> tuple[list[WeightedSpectrum], list[str], int]:
    """Mask-weighted spectra of every interval; the known sources cancelled; the templates."""
    if response.coded_mask is None or response.coded_mask.weighting != "mask":
        raise InputDataError(
            "mask-weighted ECLAIRs spectra need the mask-weighted response: compute the "
            "responses with spectral.eclairs_method = 'mask_weighted'"
        )
    assert ev.attitude is not None and ev.definition is not None
    # the same direction and usable pixels as the response, so weights and area match (the
    # weights' normalisation sum(w f) = sum(f) holds whatever the templates)
    ra, dec = direction
    ty, tz = ev.attitude.to_projected(ra, dec)
    geom = MaskGeometry.from_instrument(ev.definition)
    pattern = mask_pattern(geom)
    known = [
        (k.name, k.ra_deg, k.dec_deg)
        for k in known_sources
        if angular_separation_deg(ra, dec, k.ra_deg, k.dec_deg) > k.radius_deg
    ]
    in_field = sources_in_field(known, ev.attitude, geom, pattern, usable=usable)
    templates = default_templates(geom, pattern) + [s.shadow for s in in_field]
    mw = mask_weights(geom, pattern, float(ty), float(tz), usable=usable, templates=templates)
    spectra = [
        extract_weighted_spectrum(
            ev,
            mw,
            iv,
            dead_time_s=dead_time_s,
            min_snr=config.eclairs_min_snr,
            min_channels=config.eclairs_min_channels,
            smooth_rel_width=config.eclairs_variance_smoothing,
        )
        for iv in intervals
    ]
    return spectra, [s.name for s in in_field], mw.n_templates


def _weighted_product(
    ev: InstrumentEvents,
    spectra: Sequence[WeightedSpectrum],
    code: str,
    respfile: str,
    labels: Sequence[str],
    cancelled: Sequence[str],
    n_templates: int,
    t0: float,
) -> Product:
    assert ev.definition is not None
    cards: list[tuple[str, object, str]] = [
        ("INTNAMES", ",".join(labels)[:68], ""),
        ("WTTEMPL", n_templates, "background templates the weights cancel"),
        ("NKNOWN", len(cancelled), "known sources cancelled by the weights"),
    ]
    cards += [
        (f"KNOWN{k + 1:02d}", n[:68], "known source whose shadow is cancelled")
        for k, n in enumerate(cancelled)
    ]
    hdu = weighted_spectra_hdu(
        spectra,
        telescope=ev.definition.telescope,
        instrument=ev.definition.instrument,
        timeref=_timeref(ev),
        t0=t0,
        respfile=respfile,
        extra_cards=cards,
    )
    # EBOUNDS and GTI as GBM's spectrum files carry them (gdt-core, XSPEC read them)
    extra = ebounds_gti_hdus(ev, 0, [s.interval for s in spectra], t0=t0, timeref=_timeref(ev))
    return Product("PHA", code, FitsModel.from_hdus([primary(ev.definition), hdu, *extra]))


def _time_background_products(
    ev: InstrumentEvents,
    spectra: Sequence[ExtractedSpectrum],
    code: str,
    respfile: str,
    labels: Sequence[str],
    t0: float,
    detector_index: int = 0,
) -> list[Product]:
    assert ev.definition is not None
    src, bak = spectra_hdus(
        spectra,
        telescope=ev.definition.telescope,
        instrument=ev.definition.instrument,
        timeref=_timeref(ev),
        t0=t0,
        respfile=respfile,
        backfile=link_name("BAK", code),
        extra_cards=[("INTNAMES", ",".join(labels)[:68], "")],
    )
    # EBOUNDS and GTI as GBM's spectrum files carry them (gdt-core, XSPEC read them)
    extra = ebounds_gti_hdus(
        ev, detector_index, [s.interval for s in spectra], t0=t0, timeref=_timeref(ev)
    )
    # the background first: the spectrum names its published file
    return [
        Product("BAK", code, FitsModel.from_hdus([primary(ev.definition), bak, *extra])),
        Product("PHA", code, FitsModel.from_hdus([primary(ev.definition), src, *extra])),
    ]


@step(
    name="spectra",
    config=SpectralConfig,
    calibration=("EBOUNDS", "DEADTIME", "BADPIX"),
    outputs=("PHA", "BAK"),
)
def spectra(
    instruments: Mapping[str, InstrumentEvents],
    intervals: Sequence[tuple[str, Interval]],
    off_source: Sequence[Interval],
    positions: Positions,
    responses: Responses,
    known_sources: Sequence[KnownSource],
    t0: float,
    *,
    config: SpectralConfig,
    calibration: CalibrationSet,
) -> IntervalSpectra:
    """Extract the spectra of the named intervals for every instrument with a response.

    ``off_source`` are the background intervals of the time-background spectra; the
    products' channels are the CALDB's (``EBOUNDS``, with which the events were read).
    """
    labels = [n for n, _ in intervals]
    spans = [(float(a), float(b)) for _, (a, b) in intervals]
    out = IntervalSpectra(labels=labels, intervals=spans)
    for name, ev in instruments.items():
        response = responses.instruments.get(name)
        if response is None:
            continue
        detectors = ev.events.detectors
        dead_time = calibration.get(name, "DEADTIME")
        e_min, e_max, _ = channel_bounds(ev, 0)
        out.channel_range[name] = (float(e_min[0]), float(e_max[-1]))
        usable = None
        if ev.imaging:
            usable = usable_pixels(
                calibration.get(name, "BADPIX"), positions.excluded_pixels.get(name)
            )
        erange = per_instrument(config, "energy_kev", name)
        if mask_weighted(ev, config):
            assert usable is not None
            det = detectors[0]
            ws, cancelled, n_tpl = _weighted(
                name,
                ev,
                config,
                spans,
                usable,
                response,
                responses.direction,
                known_sources,
                dead_time.of(det),
            )
            out.cancelled_sources[name] = cancelled
            code = detector_code(name, det, 1)
            out.products.append(
                _weighted_product(ev, ws, code, response.link[det], labels, cancelled, n_tpl, t0)
            )
            rows = [
                pha_spectrum(
                    f"PHA_{code}",
                    k + 1,
                    s.counts,
                    exposure=s.exposure,
                    interval_met=_met(s.interval, t0),
                    first_channel=s.first_channel,
                    quality=s.quality,
                    grouping=s.grouping,
                    stat_err=np.sqrt(s.variance),
                )
                for k, s in enumerate(ws)
            ]
            datasets = [
                # mask-weighted counts are Gaussian (STAT_ERR): chi2, whatever `stat` is
                FitDataset(
                    SpectrumDataset(name, src, response.by_detector[det]), erange, name, "chi2"
                )
                for src in rows
            ]
            out.detectors[name] = [DetectorSpectra(name, det, datasets)]
            continue
        event_mask = None if usable is None else usable[ev.events.pixel_y, ev.events.pixel_z]
        min_ch = config.eclairs_min_channels if ev.imaging else 1
        for k, det in enumerate(detectors):
            bkg = detector_background(ev, k, off_source, erange)
            out.background_order[f"{name}_{det}"] = int(bkg.model.order)
            extracted = [
                extract_spectrum(
                    ev,
                    bkg,
                    iv,
                    dead_time_s=dead_time.of(det),
                    min_counts=config.min_counts,
                    min_channels=min_ch,
                    event_mask=event_mask,
                    min_bkg_counts=config.min_bkg_counts,
                )
                for iv in spans
            ]
            code = detector_code(name, det, len(detectors))
            out.products += _time_background_products(
                ev, extracted, code, response.link[det], labels, t0, detector_index=k
            )
            datasets = []
            for row, s in enumerate(extracted, start=1):
                met = _met(s.interval, t0)
                src = pha_spectrum(
                    f"PHA_{code}",
                    row,
                    s.counts,
                    exposure=s.exposure,
                    interval_met=met,
                    first_channel=s.first_channel,
                    quality=s.quality,
                    grouping=s.grouping,
                )
                bak = pha_spectrum(
                    f"BAK_{code}",
                    row,
                    s.bkg_counts,
                    exposure=s.bkg_exposure,
                    interval_met=met,
                    first_channel=s.first_channel,
                    backscal=s.bkg_backscal,
                    background=True,
                )
                ds = SpectrumDataset(
                    _dataset_name(name, det, len(detectors)),
                    src,
                    response.by_detector[det],
                    background=bak,
                )
                datasets.append(FitDataset(ds, erange, name))
            out.detectors.setdefault(name, []).append(DetectorSpectra(name, det, datasets))
    return out
