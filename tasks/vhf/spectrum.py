"""QSPEC step of the VHF analysis: responses for the burst direction (RSP) and the quick fit (QSP).

For an instrument whose ``RSPPAR`` is a direction-dependent detector model (the GRM), the
response of every detector is computed for the best position of the burst and the detectors'
spectra over the burst interval are fitted jointly
(:func:`~svomflow.tasks.spectral.quick_spectrum.quick_spectrum`). The live time comes from
the dead time per event the events were read with (the instrument's ``DEADTIME``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import detector_code, instrument_code
from svomflow.products.ogip import rsp_hdus
from svomflow.tasks.spectral.quick_spectrum import QuickSpectrum, quick_spectrum
from svomflow.tasks.step import step
from svomflow.tasks.timing import uniform_bins
from svomflow.tasks.vhf import fits_products as fp
from svomflow.tasks.vhf.config import QuickSpectrumStepConfig
from svomflow.tasks.vhf.curves import InstrumentTiming
from svomflow.tasks.vhf.responses import DetectorResponse, response_for_direction, response_model
from svomflow.tasks.vhf.timing import manual_background

__all__ = ["GRMSpectrumResult", "SpectrumResult", "fit_quick_spectrum", "quick_spectrum_step"]


@dataclass
class GRMSpectrumResult:
    """Quick spectrum with the interval and live times it used."""

    spectrum: QuickSpectrum
    interval: tuple[float, float]
    livetime: dict[str, float]


@dataclass
class SpectrumResult:
    """Responses for the burst direction and the quick spectrum (None: why, in ``flags``)."""

    responses: list[DetectorResponse]
    spectrum: GRMSpectrumResult | None
    flags: list[str] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)


def fit_quick_spectrum(
    data: InstrumentEvents,
    timing: InstrumentTiming,
    responses: list[DetectorResponse],
    config: QuickSpectrumStepConfig,
) -> GRMSpectrumResult:
    """Fit the quick spectrum (QSP) of the detectors over the burst interval.

    Background per channel: the off-source counts of each channel, scaled to the interval
    by the ratio of the detector's background model (all channels) integrated over the
    interval and over the off-source intervals; its variance is that of the scaled
    off-source counts (PG-stat).
    """
    ev = data.events
    assert timing.curve.background is not None
    if config.spectrum_interval == "t90":
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
        bk = manual_background(bins, timing.curve.background, config.background)
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
        config=config.spectrum,
        names=names,
        # per-detector fit ranges and exclusions come from the instrument file (or, with
        # none, from the detector type seen in EBOUNDS)
        definition=data.definition,
    )
    return GRMSpectrumResult(
        spectrum=spec, interval=(float(interval[0]), float(interval[1])), livetime=live
    )


def _num(x: object) -> float | None:
    if x is None:
        return None
    v = float(x)  # type: ignore[arg-type]
    return v if np.isfinite(v) else None


def _qsp_hdus(
    sp: GRMSpectrumResult, head: fp.ProductHeader, flags: list[str], config: QuickSpectrumStepConfig
) -> list[object]:
    q = sp.spectrum
    rows = [
        [
            ("PARAM", k, "", "parameter"),
            ("VALUE", v["value"], "", "best fit"),
            ("ERR_LOW", v["error_low"], "", "lower 1-sigma error (negative)"),
            ("ERR_HIGH", v["error_high"], "", "upper 1-sigma error"),
        ]
        for k, v in q.parameters.items()
    ]
    keys = [
        ("MODEL", q.model, "photon model"),
        ("STAT", q.statistic, "fit statistic"),
        ("STATVAL", float(q.stat), "statistic at the best fit"),
        ("DOF", int(q.dof), "degrees of freedom"),
        ("TSTART", sp.interval[0], "[s] fitted interval start, from T0"),
        ("TSTOP", sp.interval[1], "[s] fitted interval stop, from T0"),
        ("PIVOT", config.spectrum.pivot_kev, "[keV] pivot of K"),
        ("PHFLUX", _num(q.photon_flux.get("value")), "[ph/cm2/s] photon flux"),
        ("ENFLUX", _num(q.energy_flux.get("value")), "[erg/cm2/s] energy flux"),
        ("FLUXEMIN", float(config.spectrum.flux_band_kev[0]), "[keV] flux band"),
        ("FLUXEMAX", float(config.spectrum.flux_band_kev[1]), "[keV] flux band"),
        ("CONVERGE", bool(q.converged), "fit converged"),
    ]
    return fp.table_hdus(
        head, extname="SPECPARAM", rows=rows, keywords=keys, flags=flags + list(q.flags)
    )


@step(
    name="quick-spectrum",
    config=QuickSpectrumStepConfig,
    calibration=("RSPPAR", "EBOUNDS", "DEADTIME"),
    outputs=("RSP", "QSP"),
)
def quick_spectrum_step(
    data: InstrumentEvents,
    timing: InstrumentTiming,
    direction_radec: tuple[float, float],
    *,
    config: QuickSpectrumStepConfig,
    calibration: CalibrationSet,
) -> SpectrumResult:
    """Responses of the detectors for the burst direction (RSP) and the quick spectrum (QSP)."""
    model = response_model(calibration, data.key)
    if model is None or data.attitude is None or data.definition is None:
        raise InputDataError(f"{data.name}: no response model or no pointing: no quick spectrum")
    responses = response_for_direction(model, direction_radec, data.attitude)
    code = instrument_code(data.name)
    defn = data.definition
    files = tuple(data.files)
    products = [
        Product(
            "RSP",
            detector_code(data.name, r.detector, len(responses)),
            FitsModel.from_hdus(
                rsp_hdus(
                    r.e_lo,
                    r.e_hi,
                    r.matrix,
                    r.ebounds,
                    telescope=defn.telescope,
                    instrument=defn.instrument,
                    detector=r.detector,
                    direction_radec=r.direction_radec,
                )
            ),
            inputs=files,
        )
        for r in responses
    ]
    try:
        sp = fit_quick_spectrum(data, timing, responses, config)
    except InputDataError as exc:
        return SpectrumResult(responses, None, [f"no quick spectrum: {exc}"], products)
    flags = list(data.flags) + list(timing.flags)
    hdus = _qsp_hdus(sp, fp.ProductHeader.of(data), flags, config)
    products.append(Product("QSP", code, FitsModel.from_hdus(hdus), inputs=files))
    return SpectrumResult(responses, sp, [], products)
