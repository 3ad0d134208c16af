"""What one VHF quick analysis found, and its key numbers as one JSON-ready object.

:class:`VHFOutcome` is what the pipeline's plan returns (the flow, the CLI, the bench and
notebooks read it); :func:`summary` turns it into the numbers the flow returns and
``svomflow vhf --json`` prints (times in s since ``t0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from svomflow.tasks.classification import CrudeClass
from svomflow.tasks.coded_mask.image_trigger import ImageTrigger
from svomflow.tasks.coded_mask.quick_position import QuickPosition
from svomflow.tasks.localisation.grm_ratio import GRMLocalisation
from svomflow.tasks.timing import HardnessRatio
from svomflow.tasks.vhf.curves import InstrumentTiming
from svomflow.tasks.vhf.spectrum import GRMSpectrumResult

__all__ = ["Positions", "VHFOutcome", "summary"]


@dataclass
class Positions:
    """Positions per instrument (``INSTRUME``) and the flags of those not measured."""

    coded_mask: dict[str, QuickPosition] = field(default_factory=dict)
    image_trigger: dict[str, ImageTrigger | None] = field(default_factory=dict)
    count_ratio: dict[str, GRMLocalisation] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)

    def best(self) -> dict[str, Any] | None:
        """Return the most precise position: coded mask first, else count ratio."""
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


@dataclass
class VHFOutcome:
    """Everything the VHF analysis measured for one burst (per instrument by ``INSTRUME``).

    Attributes
    ----------
    t0
        Reference time of every relative time (mission s).
    instruments
        Instruments of the input files, in order.
    input_flags
        What reading each instrument's files noted (sorted on read, duplicates...).
    timings
        Timing of each instrument that shows the burst.
    failed
        Why the others show no burst.
    positions, spectra, joint_hardness, crude
        The other steps' results; ``crude_instrument`` is the instrument classified,
        ``primary`` the one whose T90 is reported at top level.
    flags
        Per instrument, what the spectrum step could not do.
    stage_seconds
        Wall time of each stage of the plan (steps and their publication).
    """

    t0: float
    instruments: list[str]
    input_flags: dict[str, list[str]]
    timings: dict[str, InstrumentTiming]
    failed: dict[str, str]
    positions: Positions
    spectra: dict[str, GRMSpectrumResult]
    spectrum_flags: dict[str, list[str]]
    joint_hardness: HardnessRatio | None
    crude: CrudeClass | None
    crude_instrument: str | None
    primary: str
    stage_seconds: dict[str, float] = field(default_factory=dict)


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


def _positions_dict(pos: Positions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, q in pos.coded_mask.items():
        out[name] = {k: _f(v) for k, v in q.position.to_dict().items()}
    for name, g in pos.count_ratio.items():
        out[name] = {
            "ra_deg": _f(g.ra_deg),
            "dec_deg": _f(g.dec_deg),
            "error_radius_1sigma_deg": _f(g.error_radius_1sigma_deg),
            "error_radius_90_deg": _f(g.error_radius_90_deg),
        }
    return out


def _flags(result: VHFOutcome) -> list[str]:
    flags = [f"{name}: {why}" for name, why in result.failed.items()]
    for name, t in result.timings.items():
        if not t.t90_status.measured:
            flags.append(f"{name}: {t.t90_status.quality}: {t.t90_status.reason}")
    for src in (result.positions.flags, result.spectrum_flags):
        for name, fl in src.items():
            flags.extend(f"{name}: {f}" for f in fl)
    for name, fl in result.input_flags.items():
        flags.extend(f"{name}: {f}" for f in fl)
    return flags


def summary(result: VHFOutcome) -> dict[str, Any]:
    """Return the key numbers as one JSON-ready object (times in s since ``t0``)."""
    t0 = result.t0
    per = {k: _timing_dict(v, t0) for k, v in result.timings.items()}
    top = per[result.primary]
    pos = result.positions
    best = pos.best()
    position = None
    if best is not None:
        position = {k: _f(v) if k != "instrument" else v for k, v in best.items()}
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
        k: v.spectrum.to_dict() | {"interval": list(v.interval)} for k, v in result.spectra.items()
    }
    jh = result.joint_hardness
    crude = result.crude
    return {
        "t0": t0,
        "instruments": list(result.instruments),
        "t90_instrument": result.primary,
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
        "positions": _positions_dict(pos),
        "spectrum": spectra,
        "per_instrument": per,
        "failed_instruments": result.failed,
        "flags": _flags(result),
    }
