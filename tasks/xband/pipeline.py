"""Steps of the X-band analysis, one per product family, on event files and a work directory.

Each ``step_*`` reads what it needs (the event files, the small results of earlier steps as
plain dictionaries), writes its working files (responses, spectra) under ``work_dir`` and
returns ``(results, products)``: JSON-ready results for the next steps and the summary, and
:class:`ProductSpec` items that the flow publishes. No Prefect here (notebooks and tests call
the steps directly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.products.content import copy_file, fits_hdus
from svomflow.products.ogip import TimeReference, primary_hdu
from svomflow.tasks.timing import (
    BinnedCounts,
    LagConfig,
    PeakFluxConfig,
    hardness_ratio,
    net_counts,
    peak_flux,
    time_lag,
)
from svomflow.tasks.xband.config import XbandAnalysisConfig
from svomflow.tasks.xband.events import InstrumentEvents, XbandEvents, read_xband_events
from svomflow.tasks.xband.fitting import DatasetSpec, IntervalFit, conversion_factor, fit_datasets
from svomflow.tasks.xband.intervals import common_intervals, instrument_timing
from svomflow.tasks.xband.spectra import detector_background, extract_spectrum, write_spectra
from svomflow.tasks.xband.tables import lightcurve_preview, results_table, spectrum_preview

__all__ = [
    "CODES",
    "ProductSpec",
    "dataset_specs",
    "extract_interval_spectra",
    "step_hardness_lag",
    "step_lightcurves",
    "step_localise",
    "step_responses",
    "step_spectra",
    "step_timing",
]

# instrument code of each instrument in product names (PO_ECL, SP_GRM, SP_ECLGRM)
CODES = {"eclairs": "ECL", "grm": "GRM"}


@dataclass
class ProductSpec:
    """A product to publish: type code, instrument code, content (HDUs or a writer), extension.

    ``source`` is the work file the content was read from: other products that name it
    (``BACKFILE``, ``RESPFILE``) are pointed at its published name when they are published.
    """

    type_code: str
    instrument: str
    content: list[Any] | Callable[[Path], None]
    ext: str = "fits"
    extra_inputs: list[str] = field(default_factory=list)
    source: str | None = None


def _prim(
    ev: InstrumentEvents | None, extra: Sequence[tuple[str, Any, str]] = ()
) -> fits.PrimaryHDU:
    tel = ev.definition.telescope if ev else "SVOM"
    ins = ev.definition.instrument if ev else "ECLAIRS+GRM"
    return primary_hdu(telescope=tel, instrument=ins, extra=list(extra))


def _timeref(ev: InstrumentEvents) -> TimeReference:
    ref = ev.definition.get("time_reference")
    return TimeReference(float(ref["mjdref"]), str(ref["timesys"]), str(ref["timeunit"]))


def _read(files: Sequence[str], t0: float | None) -> XbandEvents:
    return read_xband_events(list(files), t0=t0)


def _off(info: dict[str, Any]) -> list[tuple[float, float]]:
    iv = info["intervals"]
    out = [tuple(iv["pre_burst"])]
    if iv.get("post_burst"):
        out.append(tuple(iv["post_burst"]))
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- TEMP
def step_timing(
    files: Sequence[str], t0: float | None, cfg: XbandAnalysisConfig, work_dir: Path
) -> tuple[dict[str, Any], list[ProductSpec]]:
    """T90 per instrument and the common intervals (T90_*, TINT_ECLGRM and a preview)."""
    ev = _read(files, t0)
    timings = [instrument_timing(e, cfg.intervals) for e in ev.instruments.values()]
    ci = common_intervals(timings, ev.instruments, cfg.intervals)
    products: list[ProductSpec] = []
    t90: dict[str, Any] = {}
    for tm in timings:
        e = ev.instruments[tm.instrument]
        d = tm.durations
        row: dict[str, Any] = {"band_lo": tm.band_kev[0], "band_hi": tm.band_kev[1]}
        if d is not None:
            row.update(
                t90=d.t90,
                t90_err=d.t90_err,
                t90_start=d.t90_start,
                t90_start_err=d.t90_start_err,
                t50=d.t50,
                t50_err=d.t50_err,
                t50_start=d.t50_start,
                t50_start_err=d.t50_start_err,
                total_counts=d.total_counts,
                total_counts_err=d.total_counts_err,
                method=d.method,
            )
        row["flags"] = "; ".join(tm.flags) or "none"
        row["quality"] = tm.status.quality
        row["dt_s"] = tm.dt_s
        if not tm.status.measured:
            row["quality_reason"] = tm.status.reason
        t90[tm.instrument] = row
        bkg = tm.background.counts(tm.bins)[0]
        lc = results_table(
            [
                {"time": lo, "timedel": hi - lo, "counts": c, "background": b, "exposure": x}
                for lo, hi, c, b, x in zip(
                    tm.bins.lo, tm.bins.hi, tm.bins.counts, bkg, tm.bins.exposure, strict=True
                )
            ],
            extname="LIGHTCURVE",
            units={
                "time": "s",
                "timedel": "s",
                "counts": "count",
                "background": "count",
                "exposure": "s",
            },
            header=[
                ("TIMEZERO", ev.t0, "mission time of T0 (s)"),
                ("E_MIN", tm.band_kev[0], "keV"),
                ("E_MAX", tm.band_kev[1], "keV"),
            ],
        )
        tab = results_table(
            [row],
            extname="DURATIONS",
            units={k: "s" for k in row if k.startswith(("t90", "t50"))}
            | {
                "band_lo": "keV",
                "band_hi": "keV",
                "total_counts": "count",
                "total_counts_err": "count",
                "dt_s": "s",
            },
            header=[("TIMEZERO", ev.t0, "mission time of T0 (s)")],
        )
        prim = _prim(e)
        # QUALITY: GOOD / FLAGGED, or why no T90 was measured (e.g. TAIL_AT_DATA_END: the
        # burst is still above background at the end of the data) with the full reason
        prim.header["QUALITY"] = (tm.status.quality, "T90 quality: read QUALREAS")
        if not tm.status.measured:
            prim.header["QUALREAS"] = (tm.status.reason, "why no T90 was measured")
        products.append(ProductSpec("T90", CODES[tm.instrument], [prim, tab, lc]))
    named = ci.all_named()
    rows = [
        {"name": n, "tstart": a, "tstop": b, "tstart_met": a + ev.t0, "tstop_met": b + ev.t0}
        for n, (a, b) in named
    ]
    itab = results_table(
        rows,
        extname="INTERVALS",
        units={"tstart": "s", "tstop": "s", "tstart_met": "s", "tstop_met": "s"},
        header=[
            ("TIMEZERO", ev.t0, "mission time of T0 (s)"),
            ("RESMETH", ci.method, "time-resolved intervals method"),
            ("PEAKINST", ci.peak_instrument, "instrument of the peak interval"),
        ],
    )
    products.append(ProductSpec("TINT", "ECLGRM", [_prim(None), itab]))
    curves = []
    for tm in timings:
        w = tm.bins.hi - tm.bins.lo
        curves.append(
            (
                f"{tm.instrument} {tm.band_kev[0]:g}-{tm.band_kev[1]:g} keV",
                tm.bins.lo,
                w,
                tm.bins.rate,
                tm.bins.rate_error,
            )
        )

    def preview(p: Path) -> None:
        lightcurve_preview(p, curves, named, ylabel="counts/s", title="X-band intervals")

    products.append(ProductSpec("TINT-PREVIEW", "ECLGRM", preview, ext="png"))
    info = {
        "t0": ev.t0,
        "instruments": list(ev.instruments),
        "intervals": {
            "pre_burst": list(ci.pre_burst),
            "post_burst": list(ci.post_burst) if ci.post_burst else None,
            "main": list(ci.main),
            "peak": list(ci.peak),
            "resolved": [list(x) for x in ci.resolved],
            "method": ci.method,
        },
        "t90": t90,
    }
    return info, products


# --------------------------------------------------------------------------- LOC
def step_localise(
    files: Sequence[str], cfg: XbandAnalysisConfig, info: dict[str, Any]
) -> tuple[dict[str, Any], list[ProductSpec]]:
    """Refined ECLAIRs position (imaging) and GRM position (count ratios): PO_ECL, PO_GRM."""
    from svomflow.tasks.xband.localise import eclairs_position, grm_position

    ev = _read(files, info["t0"])
    iv = info["intervals"]
    out: dict[str, Any] = {}
    products = []
    ecl = ev.get("eclairs")
    if ecl is not None:
        # image the main and the peak interval: the peak wins for short bursts, whose main
        # interval is mostly background
        qp = max(
            (
                eclairs_position(
                    ecl,
                    tuple(iv[k]),
                    tuple(iv["pre_burst"]),
                    cfg.eclairs_position_band_kev,
                    known_sources_radec=[(q.ra_deg, q.dec_deg) for q in cfg.known_sources],
                )
                for k in ("main", "peak")
            ),
            key=lambda q: q.position.snr,
        )
        d = qp.to_dict()
        noisy = np.argwhere(qp.noisy_pixels | qp.dead_pixels)
        out["eclairs"] = {**d, "excluded_pixels": noisy.tolist()}
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
                ("TSTART", qp.interval[0] + ev.t0, "imaged interval start (mission s)"),
                ("TSTOP", qp.interval[1] + ev.t0, "imaged interval end (mission s)"),
                ("EQUINOX", 2000.0, ""),
                ("RADESYS", "ICRS", ""),
            ],
        )
        products.append(ProductSpec("PO", "ECL", [_prim(ecl), tab]))
    grm = ev.get("grm")
    if grm is not None and grm.attitude is not None:
        # as for ECLAIRs: the main or the peak interval, whichever has the higher net S/N
        gp = max(
            (
                grm_position(grm, tuple(iv[k]), _off(info), cfg.grm_localisation)
                for k in ("main", "peak")
            ),
            key=lambda g: g.net_counts.sum() / np.sqrt(g.variances.sum()),
        )
        loc = gp.localisation
        out["grm"] = {
            "ra_deg": loc.ra_deg,
            "dec_deg": loc.dec_deg,
            "error_radius_1sigma_deg": loc.error_radius_1sigma_deg,
            "error_radius_90_deg": loc.error_radius_90_deg,
            "chi2_min": loc.chi2_min,
        }
        rows = [dict(out["grm"])]
        for k, name in enumerate(grm.detectors):
            rows[0][f"net_{name}"] = float(gp.net_counts[k])
        tab = results_table(
            rows,
            extname="POSITION",
            units={
                "ra_deg": "deg",
                "dec_deg": "deg",
                "error_radius_1sigma_deg": "deg",
                "error_radius_90_deg": "deg",
            },
            header=[("E_MIN", gp.band_kev[0], "keV"), ("E_MAX", gp.band_kev[1], "keV")],
        )
        products.append(ProductSpec("PO", "GRM", [_prim(grm), tab]))
    return out, products


# --------------------------------------------------------------------------- RSP
def step_responses(
    files: Sequence[str],
    info: dict[str, Any],
    loc: dict[str, Any],
    work_dir: Path,
    *,
    eclairs_weighting: Literal["none", "mask"] = "mask",
) -> tuple[dict[str, Any], list[ProductSpec]]:
    """ECLAIRs response at the refined position; GRM responses for the burst direction.

    ``eclairs_weighting="mask"`` (the default, as ``spectral.eclairs_method``) makes the
    ECLAIRs response that of mask-weighted spectra; ``"none"`` that of whole-plane spectra
    (``spectral.eclairs_method = "time_background"``).
    """
    from svomflow.instruments.grm_response import grm_response
    from svomflow.products.ogip import write_rsp
    from svomflow.tasks.coded_mask.response import eclairs_response, write_eclairs_rsp

    ev = _read(files, info["t0"])
    work_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    products: list[ProductSpec] = []
    if "eclairs" in loc:
        pe = loc["eclairs"]
        direction, source = (pe["ra_deg"], pe["dec_deg"]), "ECLAIRs"
    elif "grm" in loc:
        direction, source = (loc["grm"]["ra_deg"], loc["grm"]["dec_deg"]), "GRM"
    else:
        raise InputDataError("no position to compute responses for")
    out["direction"] = list(direction)
    out["direction_source"] = source
    ecl = ev.get("eclairs")
    if ecl is not None:
        usable = np.ones(ecl.dead_pixels.shape, dtype=bool) if ecl.dead_pixels is not None else None
        for y, z in loc.get("eclairs", {}).get("excluded_pixels", []):
            usable[y, z] = False
        assert ecl.attitude is not None
        ty, tz = ecl.attitude.to_projected(*direction)
        resp = eclairs_response(
            float(ty),
            float(tz),
            usable_pixels=usable,
            ra_dec=direction,
            instrument=ecl.definition,
            weighting=eclairs_weighting,
        )
        path = work_dir / "eclairs.rsp"
        write_eclairs_rsp(
            path,
            resp,
            validity=(ecl.gti[0, 0] + ev.t0, ecl.gti[-1, 1] + ev.t0),
            instrument=ecl.definition,
        )
        out["eclairs"] = {
            "rsp": str(path),
            "coding_fraction": resp.coding_fraction,
            "off_axis_deg": resp.off_axis_deg,
            "weighting": resp.weighting,
        }
        products.append(ProductSpec("RSP", "ECL", copy_file(path), source=str(path)))
    grm = ev.get("grm")
    if grm is not None and grm.attitude is not None:
        out["grm"] = {}
        for det in grm.detectors:
            lo, hi, m, eb = grm_response(
                direction, detector=det, attitude=grm.attitude, instrument=grm.definition
            )
            path = work_dir / f"grm_{det.lower()}.rsp"
            write_rsp(
                path,
                lo,
                hi,
                m,
                eb,
                detector=det,
                direction_radec=direction,
                telescope=grm.definition.telescope,
                instrument=grm.definition.instrument,
                extra={
                    "TSTART": float(grm.gti[0, 0] + ev.t0),
                    "TSTOP": float(grm.gti[-1, 1] + ev.t0),
                    "DIRSRC": source,
                },
            )
            out["grm"][det] = {"rsp": str(path)}
            products.append(ProductSpec("RSP", f"GRM-{det}", copy_file(path), source=str(path)))
    return out, products


# --------------------------------------------------------------------------- SPEC + FLUENCE
def _extract_all(
    ev: XbandEvents,
    cfg: XbandAnalysisConfig,
    info: dict[str, Any],
    loc: dict[str, Any],
    rsp: dict[str, Any],
    work_dir: Path,
    notes: dict[str, Any] | None = None,
) -> tuple[dict[str, list[tuple[str, str]]], list[ProductSpec]]:
    """Write per detector a type II file of every interval; return (pha, rsp) per detector.

    ``notes`` receives ``eclairs_cancelled_sources`` (the known sources whose shadows the
    mask weights cancel) when the ECLAIRs spectra are mask-weighted.
    """
    iv = info["intervals"]
    labels = ["main", "peak"] + [f"resolved_{k + 1:02d}" for k in range(len(iv["resolved"]))]
    intervals = [tuple(iv["main"]), tuple(iv["peak"])] + [tuple(x) for x in iv["resolved"]]
    return extract_interval_spectra(
        ev, cfg, intervals, labels, _off(info), loc, rsp, work_dir, notes
    )


def extract_interval_spectra(
    ev: XbandEvents,
    cfg: XbandAnalysisConfig,
    intervals: Sequence[tuple[float, float]],
    labels: Sequence[str],
    off: Sequence[tuple[float, float]],
    loc: dict[str, Any],
    rsp: dict[str, Any],
    work_dir: Path,
    notes: dict[str, Any] | None = None,
) -> tuple[dict[str, list[tuple[str, str]]], list[ProductSpec]]:
    """Per detector one PHA file (a row per interval, in order); (pha, rsp) per detector.

    The extraction of :func:`step_spectra` (``spectral.eclairs_method`` chooses the ECLAIRs
    spectra) for any intervals, ``off`` being the off-source intervals of the backgrounds;
    the Monte Carlo of the joint fit (``simulation/xband_mc.py``) uses it as it is.
    ``notes`` receives ``eclairs_cancelled_sources`` (mask-weighted ECLAIRs spectra) and
    ``background_order`` (the order of each time-background polynomial, per detector).
    """
    out: dict[str, list[tuple[str, str]]] = {}
    products = []
    for name, e in ev.instruments.items():
        if name not in rsp:
            continue
        sc = cfg.spectral
        erange = sc.eclairs_energy_kev if name == "eclairs" else sc.grm_energy_kev
        mask = usable = None
        if e.pixel_y is not None and e.dead_pixels is not None:
            usable = np.ones(e.dead_pixels.shape, dtype=bool)
            for y, z in loc.get("eclairs", {}).get("excluded_pixels", []):
                usable[y, z] = False
            mask = usable[e.pixel_y, e.pixel_z]
        min_ch = sc.eclairs_min_channels if name == "eclairs" else 1
        if _mask_weighted(name, e, cfg):
            src, cancelled = _extract_weighted(ev, e, cfg, intervals, labels, usable, rsp, work_dir)
            if notes is not None:
                notes[f"{name}_cancelled_sources"] = cancelled
            out[name] = [(str(src), rsp[name]["rsp"])]
            products.append(
                ProductSpec(
                    "PHA",
                    CODES[name],
                    fits_hdus(src),
                    extra_inputs=[rsp[name]["rsp"]],
                    source=str(src),
                )
            )
            continue
        for k, det in enumerate(e.detectors):
            rsp_path = rsp[name]["rsp"] if name == "eclairs" else rsp[name][det]["rsp"]
            bkg = detector_background(e, k, off, erange)
            if notes is not None:
                notes.setdefault("background_order", {})[f"{name}_{det}"] = int(bkg.model.order)
            spectra = [
                extract_spectrum(
                    e,
                    bkg,
                    tuple(x),
                    min_counts=sc.min_counts,
                    min_channels=min_ch,
                    event_mask=mask,
                    min_bkg_counts=sc.min_bkg_counts,
                )
                for x in intervals
            ]
            stem = f"{name}_{det.lower()}"
            src, bak = write_spectra(
                spectra,
                work_dir / f"{stem}.pha",
                work_dir / f"{stem}_bak.pha",
                telescope=e.definition.telescope,
                instrument=e.definition.instrument,
                timeref=_timeref(e),
                t0=ev.t0,
                respfile=Path(rsp_path).name,
                extra_cards=[("INTNAMES", ",".join(labels)[:68], "")],
            )
            out.setdefault(name, []).append((str(src), rsp_path))
            code = CODES[name] if len(e.detectors) == 1 else f"{CODES[name]}-{det}"
            # the background first: the spectrum names its published file
            products.append(ProductSpec("BAK", code, fits_hdus(bak), source=str(bak)))
            products.append(
                ProductSpec("PHA", code, fits_hdus(src), extra_inputs=[rsp_path], source=str(src))
            )
    return out, products


def _mask_weighted(name: str, e: InstrumentEvents, cfg: XbandAnalysisConfig) -> bool:
    """Whether this instrument's spectra are mask-weighted (imaging instrument, configured)."""
    return (
        name == "eclairs"
        and cfg.spectral.eclairs_method == "mask_weighted"
        and e.pixel_y is not None
    )


def _extract_weighted(
    ev: XbandEvents,
    e: InstrumentEvents,
    cfg: XbandAnalysisConfig,
    intervals: Sequence[tuple[float, float]],
    labels: Sequence[str],
    usable: np.ndarray | None,
    rsp: dict[str, Any],
    work_dir: Path,
) -> tuple[Path, list[str]]:
    """Mask-weighted spectra of every interval (one PHA, no background file).

    The weights cancel the flat and CXB background and the shadows of the configured known
    sources that the usable pixels see (coding > 0); a known source within its radius of
    the burst direction is not cancelled (its shadow is the burst's). Returns the file and
    the names of the sources cancelled (also in the header: ``NKNOWN``, ``KNOWNnn``).
    """
    from svomflow.instruments.coded_mask import MaskGeometry, mask_pattern
    from svomflow.tasks.coded_mask.known_sources import angular_separation_deg, sources_in_field
    from svomflow.tasks.coded_mask.mask_weighting import default_templates, mask_weights
    from svomflow.tasks.xband.mask_spectra import (
        extract_weighted_spectrum,
        write_weighted_spectra,
    )

    if rsp[e.name].get("weighting") != "mask":
        raise InputDataError(
            "mask-weighted ECLAIRs spectra need the mask-weighted response: run "
            "step_responses with eclairs_weighting='mask'"
        )
    sc = cfg.spectral
    assert e.attitude is not None
    # the same direction and usable pixels as the response, so weights and area match (the
    # weights' normalisation sum(w f) = sum(f) holds whatever the templates)
    ra, dec = (float(x) for x in rsp["direction"])
    ty, tz = e.attitude.to_projected(ra, dec)
    geom = MaskGeometry.from_instrument(e.definition)
    pattern = mask_pattern(geom)
    known = [
        (k.name, k.ra_deg, k.dec_deg)
        for k in cfg.known_sources
        if angular_separation_deg(ra, dec, k.ra_deg, k.dec_deg) > k.radius_deg
    ]
    in_field = sources_in_field(known, e.attitude, geom, pattern, usable=usable)
    templates = default_templates(geom, pattern) + [s.shadow for s in in_field]
    mw = mask_weights(geom, pattern, float(ty), float(tz), usable=usable, templates=templates)
    spectra = [
        extract_weighted_spectrum(
            e,
            mw,
            tuple(x),
            min_snr=sc.eclairs_min_snr,
            min_channels=sc.eclairs_min_channels,
            smooth_rel_width=sc.eclairs_variance_smoothing,
        )
        for x in intervals
    ]
    names = [s.name for s in in_field]
    cards: list[tuple[str, object, str]] = [
        ("INTNAMES", ",".join(labels)[:68], ""),
        ("WTTEMPL", mw.n_templates, "background templates the weights cancel"),
        ("NKNOWN", len(names), "known sources cancelled by the weights"),
    ]
    cards += [
        (f"KNOWN{k + 1:02d}", n[:68], "known source whose shadow is cancelled")
        for k, n in enumerate(names)
    ]
    path = write_weighted_spectra(
        spectra,
        work_dir / f"{e.name}_{e.detectors[0].lower()}_maskwt.pha",
        telescope=e.definition.telescope,
        instrument=e.definition.instrument,
        timeref=_timeref(e),
        t0=ev.t0,
        respfile=Path(rsp[e.name]["rsp"]).name,
        extra_cards=cards,
    )
    return path, names


def _fit_rows(fits_: Sequence[IntervalFit], t0: float) -> list[dict[str, Any]]:
    rows = []
    for f in fits_:
        r = f.result
        row: dict[str, Any] = {
            "interval": f.label,
            "tstart": f.interval[0],
            "tstop": f.interval[1],
            "tstart_met": f.interval[0] + t0,
            "tstop_met": f.interval[1] + t0,
            "model": f.model,
            "statistic": r.statistic,
            "stat": r.stat,
            "dof": r.dof,
            "converged": bool(r.converged),
            "fallback": bool(f.fallback),
        }
        for pname, p in r.parameters.items():
            if p.frozen:
                continue
            row[pname] = p.value
            row[f"{pname}_errlo"] = (
                p.error_low if p.error_low is not None else (-p.error if p.error else None)
            )
            row[f"{pname}_errhi"] = p.error_high if p.error_high is not None else p.error
        for key, fl in f.fluxes.items():
            row[key] = fl.value
            row[f"{key}_errlo"] = fl.error_low
            row[f"{key}_errhi"] = fl.error_high
        rows.append(row)
    return rows


def _units(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    units = {"tstart": "s", "tstop": "s", "tstart_met": "s", "tstop_met": "s"}
    for k in rows[0] if rows else []:
        base = k.split("_err")[0]
        if base.startswith("photon_"):
            units[k] = "ph/cm2/s"
        elif base.startswith("energy_"):
            units[k] = "erg/cm2/s"
        elif base.startswith("fluence_"):
            units[k] = "erg/cm2"
        elif base == "epeak" or base == "ebreak":
            units[k] = "keV"
        elif base == "K":
            units[k] = "ph/cm2/s/keV"
    return units


def dataset_specs(
    ev: XbandEvents,
    cfg: XbandAnalysisConfig,
    files_by_inst: dict[str, list[tuple[str, str]]],
    names: Sequence[str],
    row: int,
) -> list[DatasetSpec]:
    """The datasets of one fit: row ``row`` of each detector's file of the ``names`` instruments.

    ``files_by_inst`` is :func:`extract_interval_spectra`'s; each dataset gets its
    instrument's fit range and its statistic (chi2 for mask-weighted spectra).
    """
    sc = cfg.spectral
    out = []
    for name in names:
        e = ev.instruments[name]
        erange = sc.eclairs_energy_kev if name == "eclairs" else sc.grm_energy_kev
        for (pha, r), det in zip(files_by_inst.get(name, []), e.detectors, strict=True):
            dname = name if len(e.detectors) == 1 else f"{name}_{det}"
            # mask-weighted counts are Gaussian (STAT_ERR): chi2, whatever `stat` is
            st = "chi2" if _mask_weighted(name, e, cfg) else None
            out.append(DatasetSpec(pha, row, r, erange, name, dname, stat=st))
    return out


def step_spectra(
    files: Sequence[str],
    cfg: XbandAnalysisConfig,
    info: dict[str, Any],
    loc: dict[str, Any],
    rsp: dict[str, Any],
    work_dir: Path,
) -> tuple[dict[str, Any], list[ProductSpec]]:
    """Extract, fit (ECL, GRM, joint) main/peak/time-resolved spectra; fluences (SP_*, FLUENCE_*)."""
    ev = _read(files, info["t0"])
    work_dir.mkdir(parents=True, exist_ok=True)
    notes: dict[str, Any] = {}
    files_by_inst, products = _extract_all(ev, cfg, info, loc, rsp, work_dir, notes)
    sc = cfg.spectral
    iv = info["intervals"]
    fl = cfg.fluence

    def specs(names: Sequence[str], row: int) -> list[DatasetSpec]:
        return dataset_specs(ev, cfg, files_by_inst, names, row)

    combos: list[tuple[str, list[str], list[tuple[float, float]]]] = []
    if "eclairs" in files_by_inst:
        combos.append(("ECL", ["eclairs"], [fl.eclairs_band_kev]))
    if "grm" in files_by_inst:
        combos.append(("GRM", ["grm"], [fl.grm_band_kev]))
    if len(files_by_inst) == 2:
        combos.append(("ECLGRM", ["eclairs", "grm"], list(fl.joint_bands_kev)))
    results: dict[str, Any] = {"fits": {}, "factors": {}, **notes}
    lc = cfg.lightcurve
    for code, names, bands in combos:
        flux_bands = list(dict.fromkeys([*bands, lc.eclairs_flux_band_kev, lc.grm_flux_band_kev]))
        labels = [
            ("main", 1, tuple(iv["main"]), sc.model),
            ("peak", 2, tuple(iv["peak"]), sc.model),
        ]
        labels += [
            (f"resolved_{k + 1:02d}", 3 + k, tuple(x), sc.resolved_model)
            for k, x in enumerate(iv["resolved"])
        ]
        fits_: list[IntervalFit] = []
        for label, row, interval, model in labels:
            try:
                f = fit_datasets(
                    specs(names, row),
                    label=label,
                    interval=interval,
                    model=model,
                    fallback_model=sc.fallback_model,
                    stat=sc.stat,
                    cross_norm=sc.cross_norm,
                    errors=sc.errors,
                    flux_bands=flux_bands,
                    flux_samples=sc.flux_samples,
                    seed=cfg.seed,
                    flux_errors=sc.flux_errors,
                )
            except InputDataError as exc:
                if label in ("main",):
                    raise
                results.setdefault("skipped", []).append(f"{code} {label}: {exc}")
                continue
            fits_.append(f)
        rows = _fit_rows(fits_, ev.t0)
        results["fits"][code] = [f.summary() for f in fits_]
        tab = results_table(
            rows,
            extname="FITRESULT",
            units=_units(rows),
            header=[
                ("TIMEZERO", ev.t0, "mission time of T0 (s)"),
                ("ERRCONF", "1 sigma", "parameter and flux errors"),
            ],
        )
        products.append(ProductSpec("SP", code, [_prim(None), tab]))
        main_fit = next(f for f in fits_ if f.label == "main")

        def sp_preview(p: Path, f: IntervalFit = main_fit, c: str = code) -> None:
            spectrum_preview(
                p,
                f.result,
                f"SP_{c} main interval: {f.model}, {f.result.statistic} {f.result.stat:.1f}/{f.result.dof}",
            )

        products.append(ProductSpec("SP-PREVIEW", code, sp_preview, ext="png"))
        frows = []
        for band in bands:
            key = f"fluence_{band[0]:g}-{band[1]:g}"
            fx = main_fit.fluxes[key]
            frows.append(
                {
                    "band_lo": band[0],
                    "band_hi": band[1],
                    "fluence": fx.value,
                    "fluence_errlo": fx.error_low,
                    "fluence_errhi": fx.error_high,
                    "tstart": main_fit.interval[0],
                    "tstop": main_fit.interval[1],
                    "model": main_fit.model,
                }
            )
        ftab = results_table(
            frows,
            extname="FLUENCE",
            units={
                "band_lo": "keV",
                "band_hi": "keV",
                "fluence": "erg/cm2",
                "fluence_errlo": "erg/cm2",
                "fluence_errhi": "erg/cm2",
                "tstart": "s",
                "tstop": "s",
            },
            header=[("TIMEZERO", ev.t0, "mission time of T0 (s)")],
        )
        products.append(ProductSpec("FLUENCE", code, [_prim(None), ftab]))
        # counts-to-flux factors of each instrument in this fit (used by LC/PF)
        if len(names) == 1:
            name = names[0]
            e = ev.instruments[name]
            flux_band = lc.eclairs_flux_band_kev if name == "eclairs" else lc.grm_flux_band_kev
            count_band = (
                max(flux_band[0], float(e.e_min[0])),
                min(flux_band[1], float(e.e_max[-1])),
            )
            fac = {}
            for f in fits_:
                ph = f.fluxes[f"photon_{flux_band[0]:g}-{flux_band[1]:g}"].value
                en = f.fluxes[f"energy_{flux_band[0]:g}-{flux_band[1]:g}"].value
                fac[f.label] = {
                    "factor": conversion_factor(f, name, count_band, flux_band),
                    "erg_per_photon": en / ph if ph > 0 else float("nan"),
                    "interval": list(f.interval),
                }
            results["factors"][name] = {
                "count_band": list(count_band),
                "flux_band": list(flux_band),
                "by_interval": fac,
            }
    return results, products


# --------------------------------------------------------------------------- LC + PF
def _factor_at(factors: dict[str, Any], t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    by = factors["by_interval"]
    f = np.full(t.size, by["main"]["factor"])
    erg = np.full(t.size, by["main"]["erg_per_photon"])
    for label, v in by.items():
        if label.startswith("resolved"):
            a, b = v["interval"]
            sel = (t >= a) & (t < b)
            f[sel] = v["factor"]
            erg[sel] = v["erg_per_photon"]
    return f, erg


def step_lightcurves(
    files: Sequence[str], cfg: XbandAnalysisConfig, info: dict[str, Any], spec: dict[str, Any]
) -> tuple[dict[str, Any], list[ProductSpec]]:
    """Light curves and peak fluxes in photon (and energy) flux units: LC_*, PF_*."""
    ev = _read(files, info["t0"])
    lc = cfg.lightcurve
    out: dict[str, Any] = {}
    products: list[ProductSpec] = []
    iv = info["intervals"]
    named = [(k, tuple(iv[k])) for k in ("pre_burst", "post_burst", "main", "peak") if iv.get(k)]
    named += [(f"resolved_{k + 1:02d}", tuple(x)) for k, x in enumerate(iv["resolved"])]
    for name, e in ev.instruments.items():
        factors = spec["factors"].get(name)
        if factors is None:
            continue
        count_band = tuple(factors["count_band"])
        flux_band = tuple(factors["flux_band"])
        bkg = detector_background(e, None, _off(info), count_band)
        from svomflow.tasks.timing import uniform_bins

        t = e.times_in_band(count_band)
        bins = uniform_bins(t, lc.bin_s, e.gti)
        mu, var = bkg.model.counts(bins)
        net = (bins.counts - mu) / bins.exposure
        err = np.sqrt(np.maximum(bins.counts, 1.0) + var) / bins.exposure
        fac, erg = _factor_at(factors, bins.centre)
        rows = [
            {
                "time": lo,
                "timedel": hi - lo,
                "rate": r,
                "error": er,
                "fracexp": x / (hi - lo),
                "photon_flux": r * f,
                "photon_flux_err": er * f,
                "energy_flux": r * f * g,
            }
            for lo, hi, r, er, x, f, g in zip(
                bins.lo, bins.hi, net, err, bins.exposure, fac, erg, strict=True
            )
        ]
        tab = results_table(
            rows,
            extname="RATE",
            units={
                "time": "s",
                "timedel": "s",
                "rate": "count/s",
                "error": "count/s",
                "photon_flux": "ph/cm2/s",
                "photon_flux_err": "ph/cm2/s",
                "energy_flux": "erg/cm2/s",
            },
            header=[
                ("HDUCLASS", "OGIP", ""),
                ("HDUCLAS1", "LIGHTCURVE", ""),
                ("HDUCLAS2", "NET", "background subtracted"),
                ("HDUCLAS3", "RATE", ""),
                ("TIMEZERO", ev.t0, "mission time of T0 (s)"),
                ("TIMEPIXR", 0.0, "bin start"),
                ("E_MIN", count_band[0], "[keV] counts band"),
                ("E_MAX", count_band[1], "[keV] counts band"),
                ("FLUX_LO", flux_band[0], "[keV] photon-flux band"),
                ("FLUX_HI", flux_band[1], "[keV] photon-flux band"),
                ("CONVERSN", "fit per interval", "counts-to-flux: resolved fit, else main"),
            ],
        )
        code = CODES[name]
        products.append(ProductSpec("LC", code, [_prim(e), tab]))
        pcurve = [
            (
                f"{name} photon flux {flux_band[0]:g}-{flux_band[1]:g} keV",
                bins.lo,
                bins.hi - bins.lo,
                net * fac,
                err * fac,
            )
        ]

        def lc_preview(p: Path, c: list = pcurve, n: str = name) -> None:
            lightcurve_preview(p, c, named, ylabel="ph/cm2/s", title=f"LC_{CODES[n]}")

        products.append(ProductSpec("LC-PREVIEW", code, lc_preview, ext="png"))
        pfs = peak_flux(
            t,
            e.gti,
            bkg.model,
            PeakFluxConfig(
                timescales_s=list(lc.peak_timescales_s), resolution_s=lc.peak_resolution_s
            ),
            window=tuple(info["intervals"]["main"]),
        )
        prow = []
        for pf in pfs:
            f, g = _factor_at(factors, np.array([pf.start + pf.timescale_s / 2]))
            prow.append(
                {
                    "timescale": pf.timescale_s,
                    "start": pf.start,
                    "rate": pf.rate,
                    "rate_err": pf.rate_err,
                    "photon_flux": pf.rate * f[0],
                    "photon_flux_err": pf.rate_err * f[0],
                    "energy_flux": pf.rate * f[0] * g[0],
                    "energy_flux_err": pf.rate_err * f[0] * g[0],
                }
            )
        out[name] = prow
        ptab = results_table(
            prow,
            extname="PEAKFLUX",
            units={
                "timescale": "s",
                "start": "s",
                "rate": "count/s",
                "rate_err": "count/s",
                "photon_flux": "ph/cm2/s",
                "photon_flux_err": "ph/cm2/s",
                "energy_flux": "erg/cm2/s",
                "energy_flux_err": "erg/cm2/s",
            },
            header=[
                ("TIMEZERO", ev.t0, "mission time of T0 (s)"),
                ("FLUX_LO", flux_band[0], "[keV]"),
                ("FLUX_HI", flux_band[1], "[keV]"),
            ],
        )
        products.append(ProductSpec("PF", code, [_prim(e), ptab]))
    return out, products


# --------------------------------------------------------------------------- HR + LAG
def _band_series(
    e: InstrumentEvents,
    band: tuple[float, float],
    off: list[tuple[float, float]],
    main: tuple[float, float],
    dt: float,
) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray]:
    bkg = detector_background(e, None, off, band)
    n = max(int(np.floor((main[1] - main[0]) / dt)), 1)
    edges = main[0] + dt * np.arange(n + 1)
    t = e.times_in_band(band)
    counts = np.histogram(t, edges)[0].astype(float)
    mu = bkg.model.counts(BinnedCounts(edges[:-1], edges[1:], counts, np.diff(edges)))[0]
    return counts, mu, bkg, t


def step_hardness_lag(
    files: Sequence[str], cfg: XbandAnalysisConfig, info: dict[str, Any]
) -> tuple[dict[str, Any], list[ProductSpec]]:
    """Hardness ratios and spectral lags per instrument and across them: HR_*, LAG_*."""
    ev = _read(files, info["t0"])
    tc = cfg.temporal
    main = tuple(info["intervals"]["main"])
    off = _off(info)
    pairs: list[
        tuple[
            str,
            tuple[InstrumentEvents, tuple[float, float]],
            tuple[InstrumentEvents, tuple[float, float]],
        ]
    ] = []
    for name, e in ev.instruments.items():
        given = tc.eclairs_bands_kev if name == "eclairs" else tc.grm_bands_kev
        bands = given if given is not None else e.definition.get("bands_kev.hardness")
        soft, hard = (tuple(map(float, bands[0])), tuple(map(float, bands[1])))
        pairs.append((CODES[name], (e, soft), (e, hard)))
    if "eclairs" in ev.instruments and "grm" in ev.instruments:
        s, h = tc.joint_bands_kev
        pairs.append(
            ("ECLGRM", (ev.instruments["eclairs"], tuple(s)), (ev.instruments["grm"], tuple(h)))
        )
    out: dict[str, Any] = {}
    products: list[ProductSpec] = []
    for code, (es, sb), (eh, hb) in pairs:
        cs, ms, bs, ts = _band_series(es, sb, off, main, tc.lag_bin_s)
        ch, mh, bh, th = _band_series(eh, hb, off, main, tc.lag_bin_s)
        nh = net_counts(th, eh.gti, bh.model, main)
        ns = net_counts(ts, es.gti, bs.model, main)
        hr = hardness_ratio(nh, ns, hard_band_kev=hb, soft_band_kev=sb, interval=main)
        hrow = {
            "ratio": hr.ratio,
            "ratio_err": hr.ratio_err,
            "hard_lo": hb[0],
            "hard_hi": hb[1],
            "soft_lo": sb[0],
            "soft_hi": sb[1],
            "hard_net": nh.net,
            "hard_net_err": nh.net_err,
            "soft_net": ns.net,
            "soft_net_err": ns.net_err,
            "tstart": main[0],
            "tstop": main[1],
            "hard_instrument": eh.name,
            "soft_instrument": es.name,
            "reliable": hr.reliable,
        }
        lag = time_lag(
            ch,
            cs,
            mh,
            ms,
            tc.lag_bin_s,
            LagConfig(max_lag_s=tc.max_lag_s, n_sims=tc.lag_sims, seed=cfg.seed),
        )
        lrow = {
            "lag": lag.lag,
            "lag_err": lag.lag_err,
            "ccf_peak": lag.ccf_peak,
            "dt": lag.dt,
            "hard_lo": hb[0],
            "hard_hi": hb[1],
            "soft_lo": sb[0],
            "soft_hi": sb[1],
            "tstart": main[0],
            "tstop": main[1],
            "hard_instrument": eh.name,
            "soft_instrument": es.name,
        }
        out[code] = {"hr": hrow, "lag": lrow}
        kev = {k: "keV" for k in ("hard_lo", "hard_hi", "soft_lo", "soft_hi")}
        products.append(
            ProductSpec(
                "HR",
                code,
                [
                    _prim(None),
                    results_table(
                        [hrow],
                        extname="HARDNESS",
                        units={
                            **kev,
                            "hard_net": "count",
                            "hard_net_err": "count",
                            "soft_net": "count",
                            "soft_net_err": "count",
                            "tstart": "s",
                            "tstop": "s",
                        },
                        header=[("TIMEZERO", ev.t0, "mission time of T0 (s)")],
                    ),
                ],
            )
        )
        products.append(
            ProductSpec(
                "LAG",
                code,
                [
                    _prim(None),
                    results_table(
                        [lrow],
                        extname="LAG",
                        units={
                            **kev,
                            "lag": "s",
                            "lag_err": "s",
                            "dt": "s",
                            "tstart": "s",
                            "tstop": "s",
                        },
                        header=[
                            ("TIMEZERO", ev.t0, "mission time of T0 (s)"),
                            ("LAGSIGN", "positive: soft lags hard", ""),
                        ],
                    ),
                ],
            )
        )
    return out, products
