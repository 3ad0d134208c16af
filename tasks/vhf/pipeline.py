"""The VHF quick analysis as pure steps, and one call that runs them all (for the bench and tests).

The Prefect flow (:mod:`svomflow.flows.vhf`) wraps each of these steps in one coarse task;
the Monte Carlo bench calls :func:`analyse` directly in worker processes.

Steps: :func:`resolve_calibration` (what each instrument needs, failing early and naming
what is missing), :func:`svomflow.tasks.vhf.timing.instrument_lightcurves` and
:func:`~svomflow.tasks.vhf.timing.instrument_measures` per instrument, :func:`positions`,
:func:`spectrum`, :func:`classification`, then :func:`summary` (the JSON numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from svomflow.errors import CalibrationNotFoundError, InputDataError
from svomflow.instruments.attitude import angular_separation_deg
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.products.atomic import sha256_file
from svomflow.products.provenance import CalibrationRef
from svomflow.tasks.classification import CrudeClass, classify
from svomflow.tasks.coded_mask.image_trigger import ImageTrigger
from svomflow.tasks.coded_mask.quick_position import QuickPosition
from svomflow.tasks.localisation.grm_ratio import GRMLocalisation
from svomflow.tasks.timing import HardnessRatio, hardness_ratio, net_counts, uniform_bins
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.inputs import VHFInputs
from svomflow.tasks.vhf.position import (
    DetectorResponse,
    GRMSpectrumResult,
    coded_mask_position,
    count_ratio_position,
    has_response_model,
    image_trigger_search,
    quick_spectrum_for,
    response_for_direction,
)
from svomflow.tasks.vhf.timing import (
    InstrumentTiming,
    clip_band,
    instrument_lightcurves,
    instrument_measures,
    manual_background,
)

__all__ = [
    "Positions",
    "SpectrumStep",
    "VHFResult",
    "analyse",
    "classification",
    "joint_hardness",
    "positions",
    "resolve_calibration",
    "spectrum",
    "summary",
    "timing_all",
]


def _definition_file(name: str) -> Path:
    return Path(str(resources.files("svomflow.config") / "instruments" / f"{name.lower()}.yaml"))


def resolve_calibration(inputs: VHFInputs) -> dict[str, list[CalibrationRef]]:
    """Check and record what each instrument's steps need; fail early naming what is missing.

    Coded-mask instruments need the mask description of their definition file; instruments
    with a response model need every detector of the model in the data (the response for the
    burst direction is computed later from the model). Instruments without a definition file
    (GBM) need only their EBOUNDS, already checked on reading.

    Raises
    ------
    CalibrationNotFoundError
        Naming the instrument and the missing item.
    """
    out: dict[str, list[CalibrationRef]] = {}
    for name, d in inputs.instruments.items():
        refs: list[CalibrationRef] = []
        defn = d.definition
        if defn is not None:
            path = _definition_file(defn.name)
            digest = sha256_file(path) if path.is_file() else "unknown"
            if d.imaging is not None:
                try:
                    MaskGeometry.from_instrument(defn)
                except (KeyError, ValueError, TypeError) as exc:
                    raise CalibrationNotFoundError(
                        f"{name}: mask pattern (MASKPATT) cannot be built from {path}: {exc}"
                    ) from None
                refs.append(CalibrationRef(codename="MASKPATT", path=str(path), sha256=digest))
            if has_response_model(defn):
                want = [x["name"] for x in defn.get("detectors")]
                missing = [w for w in want if w not in d.events.detectors]
                if missing:
                    raise CalibrationNotFoundError(
                        f"{name}: the response model has detectors {want} but the data lack "
                        f"{missing}; give every detector's events"
                    )
                refs.append(
                    CalibrationRef(codename="SPECRESP MATRIX", path=str(path), sha256=digest)
                )
        out[name] = refs
    return out


def timing_all(
    inputs: VHFInputs, config: VHFConfig
) -> tuple[dict[str, InstrumentTiming], dict[str, str]]:
    """Timing of every instrument; an instrument where no burst is found is reported, not fatal.

    Raises
    ------
    InputDataError
        When no instrument shows the burst.
    """
    timings: dict[str, InstrumentTiming] = {}
    failed: dict[str, str] = {}
    for name, d in inputs.instruments.items():
        try:
            timings[name] = instrument_measures(d, instrument_lightcurves(d, config), config)
        except InputDataError as exc:
            failed[name] = str(exc)
    if not timings:
        raise InputDataError("no burst found: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return timings, failed


@dataclass
class Positions:
    """Positions per instrument and the direction adopted for the response."""

    coded_mask: dict[str, QuickPosition] = field(default_factory=dict)
    image_trigger: dict[str, ImageTrigger | None] = field(default_factory=dict)
    count_ratio: dict[str, GRMLocalisation] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)

    def best(self) -> dict[str, Any] | None:
        """The most precise position: coded mask first, else count ratio."""
        for name, q in self.coded_mask.items():
            p = q.position
            return {
                "instrument": name,
                "ra_deg": p.ra_deg,
                "dec_deg": p.dec_deg,
                "r90_arcmin": p.r90_arcmin,
                "r90_deg": p.r90_arcmin / 60.0,
                "snr": p.snr,
            }
        for name, g in self.count_ratio.items():
            return {
                "instrument": name,
                "ra_deg": g.ra_deg,
                "dec_deg": g.dec_deg,
                "r90_arcmin": g.error_radius_90_deg * 60.0,
                "r90_deg": g.error_radius_90_deg,
                "snr": None,
            }
        return None


def positions(
    inputs: VHFInputs, timings: dict[str, InstrumentTiming], config: VHFConfig
) -> Positions:
    """Coded-mask quick position + image trigger, and count-ratio positions, where they apply."""
    out = Positions()
    for name, d in inputs.instruments.items():
        t = timings.get(name)
        if d.imaging is not None:
            out.image_trigger[name] = image_trigger_search(d, config)
            if t is not None:
                try:
                    out.coded_mask[name] = coded_mask_position(d, t, config)
                except InputDataError as exc:
                    out.flags.setdefault(name, []).append(f"no position: {exc}")
        if t is not None and has_response_model(d.definition) and d.attitude is not None:
            try:
                out.count_ratio[name] = count_ratio_position(d, t, d.attitude, config)
            except InputDataError as exc:
                out.flags.setdefault(name, []).append(f"no count-ratio position: {exc}")
    return out


@dataclass
class SpectrumStep:
    """Responses for the burst direction and the quick spectrum, per instrument."""

    responses: dict[str, list[DetectorResponse]] = field(default_factory=dict)
    spectra: dict[str, GRMSpectrumResult] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)


def spectrum(
    inputs: VHFInputs,
    timings: dict[str, InstrumentTiming],
    pos: Positions,
    config: VHFConfig,
) -> SpectrumStep:
    """Response for the best position and the quick spectral fit of each instrument that has a model."""
    out = SpectrumStep()
    best = pos.best()
    for name, d in inputs.instruments.items():
        t = timings.get(name)
        if t is None:
            continue
        if not has_response_model(d.definition) or d.attitude is None:
            if d.imaging is None:  # a counts-only instrument without a model (e.g. GBM)
                out.flags.setdefault(name, []).append(
                    "no response model for this instrument: quick spectrum not fitted"
                )
            continue
        if best is None:
            out.flags.setdefault(name, []).append("no position: no response, no spectrum")
            continue
        resp = response_for_direction(d, (best["ra_deg"], best["dec_deg"]), d.attitude)
        out.responses[name] = resp
        try:
            out.spectra[name] = quick_spectrum_for(d, t, resp, config)
        except InputDataError as exc:
            out.flags.setdefault(name, []).append(f"no quick spectrum: {exc}")
    return out


def joint_hardness(
    inputs: VHFInputs, timings: dict[str, InstrumentTiming], config: VHFConfig
) -> HardnessRatio | None:
    """Cross-instrument hardness ratio (QHR_ECLGRM) over the soft instrument's burst interval."""
    jc = config.joint_hardness
    soft, hard = (
        inputs.instruments.get(jc.soft_instrument),
        inputs.instruments.get(jc.hard_instrument),
    )
    ts, th = timings.get(jc.soft_instrument), timings.get(jc.hard_instrument)
    if soft is None or hard is None or ts is None or th is None:
        return None
    interval = ts.burst_interval
    nets = []
    for d, t, band in ((soft, ts, jc.soft_band_kev), (hard, th, jc.hard_band_kev)):
        b = clip_band(tuple(band), d.energy_range_kev)
        if b is None:
            return None
        ev = d.events
        tb = ev.time[ev.in_band(*b)]
        assert t.curve.background is not None
        bk = manual_background(
            uniform_bins(tb, t.dt_s, ev.gti), t.curve.background, config.background
        )
        nets.append((net_counts(tb, ev.gti, bk, interval), b))
    (ns, bs), (nh, bh) = nets
    return hardness_ratio(nh, ns, hard_band_kev=bh, soft_band_kev=bs, interval=interval)


def primary_instrument(timings: dict[str, InstrumentTiming], config: VHFConfig) -> str:
    """Instrument whose T90 is reported at top level and classified (config order, else first)."""
    for name in config.classification_catalogs:
        t = timings.get(name)
        if t is not None and t.durations is not None:
            return name
    for name, t in timings.items():
        if t.durations is not None:
            return name
    return next(iter(timings))


def classification(
    timings: dict[str, InstrumentTiming], pos: Positions, config: VHFConfig
) -> tuple[CrudeClass | None, str | None, list[str]]:
    """Crude class of the burst from the primary instrument's T90 (None when there is no T90)."""
    name = primary_instrument(timings, config)
    t = timings[name]
    if t.durations is None:
        return None, None, ["no T90 in any instrument: not classified"]
    catalog = config.classification_catalogs.get(name, config.classification.catalog)
    cfg = config.classification.model_copy(update={"catalog": catalog})
    d = t.durations
    err = d.t90_err if np.isfinite(d.t90_err) else 0.0
    hr = t.hardness.ratio if t.hardness is not None and t.hardness.reliable else None
    nets = {k: (v.net, v.net_err) for k, v in t.detector_net.items()}
    best = pos.best()
    position = None if best is None else (best["ra_deg"], best["dec_deg"], best["r90_deg"])
    return (
        classify(d.t90, err, cfg, hardness=hr, detector_net_counts=nets, position=position),
        name,
        [],
    )


@dataclass
class VHFResult:
    """Everything the VHF analysis computed for one burst."""

    inputs: VHFInputs
    calibration: dict[str, list[CalibrationRef]]
    timings: dict[str, InstrumentTiming]
    failed: dict[str, str]
    positions: Positions
    spectrum: SpectrumStep
    joint_hardness: HardnessRatio | None
    crude: CrudeClass | None
    crude_instrument: str | None


def analyse(
    paths: list[str], t0: float | None = None, config: VHFConfig | None = None
) -> VHFResult:
    """Run every VHF step on event files, without Prefect and without writing products."""
    from svomflow.tasks.vhf.inputs import load_inputs

    cfg = config or VHFConfig()
    inputs = load_inputs(paths, t0)
    cal = resolve_calibration(inputs)
    timings, failed = timing_all(inputs, cfg)
    pos = positions(inputs, timings, cfg)
    spec = spectrum(inputs, timings, pos, cfg)
    jh = joint_hardness(inputs, timings, cfg)
    crude, crude_inst, _ = classification(timings, pos, cfg)
    return VHFResult(inputs, cal, timings, failed, pos, spec, jh, crude, crude_inst)


def _f(x: Any) -> float | None:
    """JSON-safe float (NaN/inf -> None)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _timing_dict(t: InstrumentTiming, t0: float) -> dict[str, Any]:
    d = t.durations
    out: dict[str, Any] = {
        "band_kev": list(t.band_kev),
        "t90": _f(d.t90) if d else None,
        "t90_err": _f(d.t90_err) if d else None,
        "t90_start": _f(d.t90_start) if d else None,
        "t90_start_err": _f(d.t90_start_err) if d else None,
        "t50": _f(d.t50) if d else None,
        "t50_err": _f(d.t50_err) if d else None,
        "t50_start": _f(d.t50_start) if d else None,
        "net_counts": _f(d.total_counts) if d else None,
        "t90_method": d.method if d else None,
        "t90_quality": t.t90_status.quality,
        "t90_quality_reason": t.t90_status.reason or None,
        "t90_dt_s": _f(t.dt_s),
        "peak_flux": {
            f"{p.timescale_s:g}": {
                "rate": _f(p.rate),
                "rate_err": _f(p.rate_err),
                "start": _f(p.start),
                "unit": "counts/s",
            }
            for p in t.peaks
        },
        "hardness_ratio": None,
        "trigger": None,
        "background_order": t.curve.background.order if t.curve.background else None,
        "background_intervals": t.background_intervals,
        "flags": list(t.flags),
    }
    if t.hardness is not None:
        h = t.hardness
        out["hardness_ratio"] = {
            "ratio": _f(h.ratio),
            "error": _f(h.ratio_err),
            "soft_band_kev": list(h.soft_band_kev),
            "hard_band_kev": list(h.hard_band_kev),
            "interval": list(h.interval),
            "reliable": h.reliable,
        }
    if t.trigger is not None:
        b = t.trigger.best
        out["trigger"] = {
            "time": _f(b.start + t0),
            "start": _f(b.start),
            "timescale_s": _f(b.timescale_s),
            "band_kev": list(b.band_kev),
            "significance": _f(b.significance),
            "triggered": t.trigger.triggered,
        }
    return out


def summary(result: VHFResult) -> dict[str, Any]:
    """The key numbers as one JSON-ready object (times in s since ``t0``)."""
    t0 = result.inputs.t0
    per = {k: _timing_dict(v, t0) for k, v in result.timings.items()}
    prim = (
        primary_instrument(result.timings, VHFConfig())
        if result.crude_instrument is None
        else result.crude_instrument
    )
    top = per[prim]
    pos = result.positions
    best = pos.best()
    position = None
    if best is not None:
        position = {k: _f(v) if k != "instrument" else v for k, v in best.items()}
    per_pos: dict[str, Any] = {}
    for name, q in pos.coded_mask.items():
        per_pos[name] = {k: _f(v) for k, v in q.position.to_dict().items()}
    for name, g in pos.count_ratio.items():
        per_pos[name] = {
            "ra_deg": _f(g.ra_deg),
            "dec_deg": _f(g.dec_deg),
            "error_radius_1sigma_deg": _f(g.error_radius_1sigma_deg),
            "error_radius_90_deg": _f(g.error_radius_90_deg),
        }
    for name, it in pos.image_trigger.items():
        # an instrument whose timing failed (a burst outside the ECLAIRs field, seen by the
        # GRM only) still had its image-trigger search: it gets an entry without timing
        entry = per.setdefault(name, {"t90": None, "failed": result.failed.get(name, "no timing")})
        entry["image_trigger"] = (
            None
            if it is None
            else {"start": _f(it.t_start), "exposure_s": _f(it.exposure_s), "snr": _f(it.snr)}
        )
    spectra = {
        k: v.spectrum.to_dict() | {"interval": list(v.interval)}
        for k, v in result.spectrum.spectra.items()
    }
    jh = result.joint_hardness
    crude = result.crude
    flags: list[str] = []
    for name, why in result.failed.items():
        flags.append(f"{name}: {why}")
    for name, t in result.timings.items():
        if not t.t90_status.measured:
            flags.append(f"{name}: {t.t90_status.quality}: {t.t90_status.reason}")
    for src in (pos.flags, result.spectrum.flags):
        for name, fl in src.items():
            flags.extend(f"{name}: {f}" for f in fl)
    for name, d in result.inputs.instruments.items():
        flags.extend(f"{name}: {f}" for f in d.flags)
    return {
        "t0": t0,
        "instruments": list(result.inputs.instruments),
        "t90_instrument": prim,
        "t90_band_kev": top["band_kev"],
        "t90": top["t90"],
        "t90_err": top["t90_err"],
        "t90_start": top["t90_start"],
        "t90_quality": top["t90_quality"],
        "t50": top["t50"],
        "t50_err": top["t50_err"],
        "t50_start": top["t50_start"],
        "peak_flux": top["peak_flux"],
        "hardness_ratio": top["hardness_ratio"],
        "hardness_ratio_joint": None
        if jh is None
        else {
            "ratio": _f(jh.ratio),
            "error": _f(jh.ratio_err),
            "soft_band_kev": list(jh.soft_band_kev),
            "hard_band_kev": list(jh.hard_band_kev),
            "reliable": jh.reliable,
        },
        "classification": None
        if crude is None
        else {
            "class": crude.klass,
            "p_short": _f(crude.p_short),
            "flags": list(crude.flags),
            "catalog": crude.catalog,
            "instrument": result.crude_instrument,
        },
        "position": position,
        "positions": per_pos,
        "spectrum": spectra,
        "per_instrument": per,
        "failed_instruments": result.failed,
        "flags": flags,
    }


def position_error_arcmin(summary_: dict[str, Any], ra: float, dec: float) -> float | None:
    """Distance (arcmin) of the reported position from a true one (None without a position)."""
    p = summary_.get("position")
    if not p:
        return None
    return float(angular_separation_deg(p["ra_deg"], p["dec_deg"], ra, dec)) * 60.0
