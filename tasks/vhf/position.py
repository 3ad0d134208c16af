"""OTLOC and QSPEC steps of the VHF flow: coded-mask position, count-ratio position, quick spectrum.

Which step applies to an instrument is read from its definition, never from its name: a
definition with a ``mask`` section and events with pixels gets the coded-mask quick
position and the image trigger; one with ``detectors`` and a ``crystal`` model (a response
can be computed for any direction) gets the count-ratio position, the response for the
burst direction (RSP) and the quick spectral fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from svomflow.config import InstrumentDefinition
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.products.ogip_spectra import Response
from svomflow.tasks.coded_mask.image_trigger import ImageTrigger, image_trigger
from svomflow.tasks.coded_mask.imaging import MaskModel
from svomflow.tasks.coded_mask.position import LocalisationConfig
from svomflow.tasks.coded_mask.quick_position import QuickPosition, quick_position
from svomflow.tasks.localisation.grm_ratio import GRMLocalisation, localise_grm
from svomflow.tasks.spectral.quick_spectrum import QuickSpectrum, quick_spectrum
from svomflow.tasks.timing import net_counts, uniform_bins
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.inputs import InstrumentData
from svomflow.tasks.vhf.timing import InstrumentTiming, manual_background

__all__ = [
    "DetectorResponse",
    "GRMSpectrumResult",
    "coded_mask_position",
    "count_ratio_position",
    "has_response_model",
    "image_trigger_search",
    "is_coded_mask",
    "quick_spectrum_for",
    "response_for_direction",
]


def is_coded_mask(data: InstrumentData) -> bool:
    """Whether the instrument can image (a mask in its definition and pixels in its events)."""
    return data.imaging is not None


def has_response_model(defn: InstrumentDefinition | None) -> bool:
    """Whether a response can be computed for any direction (detector axes and crystal model)."""
    return (
        defn is not None
        and defn.get("crystal", None) is not None
        and bool(defn.get("detectors", None))
    )


def _known_sources(cfg: VHFConfig) -> list[tuple[float, float]]:
    return [(s.ra_deg, s.dec_deg) for s in cfg.classification.known_sources]


def coded_mask_position(
    data: InstrumentData, timing: InstrumentTiming, config: VHFConfig | None = None
) -> QuickPosition:
    """Quick position (QPO) over the burst interval against the pre-burst background."""
    cfg = config or VHFConfig()
    im = data.imaging
    defn = data.definition
    if im is None or defn is None:
        raise InputDataError(f"{data.name}: no imaging data")
    interval = timing.burst_interval
    ivs = timing.background_intervals
    before = [iv for iv in ivs if iv[1] <= interval[0]]
    bkg_iv = before[-1] if before else ivs[-1]
    loc = cfg.localisation or LocalisationConfig.from_instrument(defn)
    return quick_position(
        im.time,
        im.y,
        im.z,
        im.energy_kev,
        attitude=im.attitude,
        interval=interval,
        background_interval=bkg_iv,
        band_kev=cfg.position_band_kev,
        gti=im.gti,
        dead_pixels=im.dead_pixels,
        known_sources_radec=_known_sources(cfg),
        config=loc,
        instrument=defn,
    )


def image_trigger_search(
    data: InstrumentData, config: VHFConfig | None = None
) -> ImageTrigger | None:
    """Best image-trigger detection over the instrument's exposures (None: nothing above threshold)."""
    cfg = config or VHFConfig()
    im = data.imaging
    defn = data.definition
    if im is None or defn is None:
        return None
    model = MaskModel.from_geometry(MaskGeometry.from_instrument(defn))
    band = cfg.position_band_kev or tuple(defn.get("bands_kev.image_trigger"))
    radec = _known_sources(cfg)
    known = []
    for ra, dec in radec:
        ty, tz = im.attitude.to_projected(ra, dec)
        if np.isfinite(ty) and np.isfinite(tz):
            known.append((float(ty), float(tz)))
    found = image_trigger(
        im.time,
        im.y,
        im.z,
        im.energy_kev,
        model,
        t_start=float(im.gti[0, 0]),
        t_stop=float(im.gti[-1, 1]),
        exposures_s=[float(x) for x in defn.get("image_trigger.exposures_s")],
        band_kev=(float(band[0]), float(band[1])),
        threshold=float(defn.get("image_trigger.snr_threshold")),
        usable=~im.dead_pixels,
        gti=im.gti,
        known_sources=known,
    )
    return found[0] if found else None


def _detector_net(
    data: InstrumentData,
    timing: InstrumentTiming,
    band: tuple[float, float],
    interval: tuple[float, float],
    cfg: VHFConfig,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    defn = data.definition
    assert defn is not None
    names = [d["name"] for d in defn.get("detectors")]
    ev = data.events
    missing = [n for n in names if n not in ev.detectors]
    if missing:
        raise InputDataError(f"{data.name}: no events of detector(s) {', '.join(missing)}")
    assert timing.curve.background is not None
    nets, vars_ = [], []
    for n in names:
        sel = (ev.detector == ev.detectors.index(n)) & ev.in_band(*band)
        t = ev.time[sel]
        bk = manual_background(
            uniform_bins(t, timing.dt_s, ev.gti), timing.curve.background, cfg.background
        )
        nc = net_counts(t, ev.gti, bk, interval)
        nets.append(nc.net)
        vars_.append(nc.net_err**2)
    return names, np.array(nets), np.array(vars_)


def count_ratio_position(
    data: InstrumentData,
    timing: InstrumentTiming,
    attitude: Attitude,
    config: VHFConfig | None = None,
) -> GRMLocalisation:
    """Coarse position (QPO_GRM) from the detectors' background-subtracted counts."""
    cfg = config or VHFConfig()
    _, net, var = _detector_net(
        data, timing, tuple(cfg.grm_localisation.band_kev), timing.burst_interval, cfg
    )
    return localise_grm(
        net, var, attitude=attitude, config=cfg.grm_localisation, instrument=data.definition
    )


@dataclass
class DetectorResponse:
    """The response of one detector for the burst direction (photon bins x channels, cm2)."""

    detector: str
    e_lo: np.ndarray
    e_hi: np.ndarray
    matrix: np.ndarray
    ebounds: np.ndarray
    direction_radec: tuple[float, float]

    def as_response(self) -> Response:
        """The same response as the spectral fitter's :class:`Response`."""
        return Response(
            energ_lo=self.e_lo,
            energ_hi=self.e_hi,
            matrix=self.matrix,
            e_min=self.ebounds[:, 0],
            e_max=self.ebounds[:, 1],
            first_channel=0,
            path=Path(f"<{self.detector} response>"),
            has_area=True,
        )


def response_for_direction(
    data: InstrumentData, direction_radec: tuple[float, float], attitude: Attitude
) -> list[DetectorResponse]:
    """Compute each detector's response for a sky direction (RSP product)."""
    from svomflow.instruments.grm_response import grm_response

    defn = data.definition
    if not has_response_model(defn):
        raise InputDataError(f"{data.name}: no response model in its definition")
    out = []
    for d in defn.get("detectors"):  # type: ignore[union-attr]
        lo, hi, m, eb = grm_response(
            direction_radec, detector=d["name"], attitude=attitude, instrument=defn
        )
        out.append(DetectorResponse(d["name"], lo, hi, m, eb, tuple(direction_radec)))  # type: ignore[arg-type]
    return out


@dataclass
class GRMSpectrumResult:
    """Quick spectrum with the interval and live times it used."""

    spectrum: QuickSpectrum
    interval: tuple[float, float]
    livetime: dict[str, float]


def quick_spectrum_for(
    data: InstrumentData,
    timing: InstrumentTiming,
    responses: list[DetectorResponse],
    config: VHFConfig | None = None,
) -> GRMSpectrumResult:
    """Fit the quick spectrum (QSP) of the detectors over the burst interval.

    Background per channel: the off-source counts of each channel, scaled to the interval
    by the ratio of the detector's background model (all channels) integrated over the
    interval and over the off-source intervals; its variance is that of the scaled
    off-source counts (PG-stat).
    """
    cfg = config or VHFConfig()
    ev = data.events
    assert timing.curve.background is not None
    if cfg.spectrum_interval == "t90":
        interval = timing.burst_interval
    else:
        interval = timing.curve.background.source
    off = np.asarray(timing.curve.background.intervals, float)
    counts, bkgs, resps, live, names = [], [], [], {}, []
    for r in responses:
        if r.detector not in ev.detectors:
            raise InputDataError(f"{data.name}: no events of detector {r.detector}")
        k = ev.detectors.index(r.detector)
        e_min, _ = ev.ebounds[r.detector]
        if e_min.size != r.ebounds.shape[0]:
            raise InputDataError(
                f"{data.name} {r.detector}: {e_min.size} channels in the events but "
                f"{r.ebounds.shape[0]} in the response"
            )
        sel = ev.detector == k
        t = ev.time[sel]
        ch = ev.channel[sel] - ev.first_channel[r.detector]
        nch = e_min.size
        inside = (t >= interval[0]) & (t < interval[1])
        c_on = np.bincount(ch[inside], minlength=nch).astype(float)
        in_off = np.zeros(t.size, bool)
        for a, b in off:
            in_off |= (t >= a) & (t < b)
        c_off = np.bincount(ch[in_off], minlength=nch).astype(float)
        bins = uniform_bins(t, timing.dt_s, ev.gti)
        bk = manual_background(bins, timing.curve.background, cfg.background)
        edges_on = np.array([interval[0]]), np.array([interval[1]])
        mu_on = float((bk.design(*edges_on) @ bk.coeffs)[0] * (interval[1] - interval[0]))
        mu_off = sum(
            float((bk.design(np.array([a]), np.array([b])) @ bk.coeffs)[0] * (b - a))
            for a, b in off
        )
        if mu_off <= 0 or c_off.sum() == 0:
            raise InputDataError(f"{data.name} {r.detector}: no background counts off source")
        scale = mu_on / mu_off
        dead = float(ev.deadtime[sel][inside].sum())
        live[r.detector] = float(interval[1] - interval[0]) - dead
        counts.append(c_on)
        bkgs.append((c_off * scale, c_off * scale**2))
        resps.append(r.as_response())
        names.append(r.detector)
    spec = quick_spectrum(
        counts,
        bkgs,
        resps,
        [live[n] for n in names],
        config=cfg.spectrum,
        names=names,
        # per-detector fit ranges and exclusions come from the instrument file (or, with
        # none, from the detector type seen in EBOUNDS)
        definition=data.definition,
    )
    return GRMSpectrumResult(
        spectrum=spec, interval=(float(interval[0]), float(interval[1])), livetime=live
    )
