"""GP1 sequence steps: stack of an alert sequence, then its transient, light curve and products.

:func:`stack_sequence` stacks the analysed images of one sequence (one trigger, camera and
filter) on the first one's grid; the pipeline analyses the stack like an image (sources,
PSF, zero point, subtraction). :func:`sequence_products` takes the most significant kept
candidate of the stack difference (or of the best image) as the transient, measures it by
forced PSF photometry on every image's difference (the light curve), and returns the
products: DT, OTQLC, OTPO, OTLC, QTI (FITS), QF (PNG) and an HTML summary.
"""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from svomflow.errors import InputDataError, SvomflowError
from svomflow.products.catalogue import FigurePage, FitsModel, Product
from svomflow.products.naming import header_component
from svomflow.tasks.gp1.alert_position import (
    AfterglowChoice,
    AlertPosition,
    AssociationConfig,
    TransientCandidate,
    association_cards,
    choose_afterglow,
)
from svomflow.tasks.gp1.analysis import cone_table, forced_difference_photometry
from svomflow.tasks.gp1.config import StackingModule, SummaryModule
from svomflow.tasks.gp1.figures import (
    calibration_figure,
    finding_chart,
    light_curve_figure,
    sensitivity_figure,
)
from svomflow.tasks.gp1.images import (
    ImageResult,
    ImageSummary,
    ReducedImage,
    celestial_wcs,
    header_as_stored,
    mjd,
)
from svomflow.tasks.photometry.extract import ExtractConfig, estimate_background
from svomflow.tasks.photometry.stack import StackInput, stack_images
from svomflow.tasks.step import step

__all__ = [
    "SEQUENCE_PRODUCTS",
    "SequenceResult",
    "light_curve",
    "select_transient",
    "sequence_products",
    "stack_sequence",
]

#: Product types of a sequence, in publication order.
SEQUENCE_PRODUCTS = ("DT", "OTQLC", "OTPO", "OTLC", "QTI", "QF", "SUMMARY")


@step(name="stacking", config=StackingModule)
def stack_sequence(
    images: list[ImageResult], extract: ExtractConfig, *, config: StackingModule
) -> ImageResult:
    """Stack the reduced images of a sequence on the first one's grid, at its zero point.

    Each image is background-subtracted and scaled to the first one's zero point and
    exposure (transparency) before the combination. The stack is a new image of the
    sequence (``stem`` ``stack``) whose sources, photometry and subtraction are still to do.
    """
    if not images:
        raise InputDataError("no analysed alert image to stack")
    first = images[0].summary
    inputs = []
    zp0 = first.zp
    for r in images:
        img, s = r.reduced, r.summary
        data = np.where(img.mask, 0.0, img.data).astype(np.float64)
        bk = estimate_background(data, extract, img.mask if img.mask.any() else None)
        sub = np.where(img.mask, np.nan, data - bk.back())
        scale = 1.0
        if zp0 is not None and s.zp is not None:
            # Bring every image to the first one's zero point (transparency, exposure).
            scale = 10 ** (0.4 * (zp0 - s.zp)) * first.exptime / s.exptime
        wcs = celestial_wcs(img.header)
        if wcs is None:
            raise InputDataError(f"{s.stem}: no WCS to stack with")
        inputs.append(
            StackInput(
                sub,
                wcs,
                rms=float(bk.globalrms),
                name=Path(s.raw).name,
                scale=scale,
                exptime=s.exptime,
                gain=s.gain,
            )
        )
    ref_img = images[0].reduced
    res = stack_images(
        inputs, target_wcs=inputs[0].wcs, shape=ref_img.data.shape, config=config.stack
    )
    h = ref_img.header.copy()
    h.remove("NCOMBINE", ignore_missing=True)
    for key, val, com in res.cards:
        if key == "EXPTIME":
            h["TOTEXP"] = (val, "[s] total exposure of the inputs")
            continue
        h[key] = (val, com)
    h["REDLEVEL"] = ("stack", "GP1 reduction level")
    # A mean of N exposures has N times the electrons per ADU of Poisson noise.
    h["GAIN"] = (first.gain * len(images), "[e-/adu] effective gain of the mean")
    h["IMGSTEM"] = ("stack", "name of the input image")
    data = np.nan_to_num(res.data).astype(np.float32)
    reduced = ReducedImage(data, ~np.isfinite(res.data), header_as_stored(h))
    summary = replace(
        first,
        stem="stack",
        raw="stack",
        is_stack=True,
        n_inputs=len(images),
        inputs=[r.summary.raw for r in images],
        gain=first.gain * len(images),
        saturation=float(np.nanmax(res.data)) + 1.0,
        mjd_mid=float(np.mean([r.summary.mjd_mid for r in images])),
        zp=None,
        zp_err=None,
        # the stack is on the first image's solved grid
        done=["reduction", "astrometry"],
    )
    return ImageResult(summary, reduced)


def select_transient(result: ImageResult) -> dict[str, Any] | None:
    """Return the most significant kept candidate of an analysed image (or stack) as a row."""
    t = result.candidates
    if t is None or len(t) == 0:
        return None
    kept = t[t["REJECT"] == "ok"]
    if len(kept) == 0:
        return None
    best = kept[np.argmax(kept["SNR"])]
    return {
        k: (v.item() if hasattr(v, "item") else v) for k, v in zip(best.colnames, best, strict=True)
    }


def light_curve(images: list[ImageResult], ra: float, dec: float, *, t0_mjd: float | None) -> Table:
    """Measure the transient on every image difference (forced PSF), calibrated: the light curve."""
    rows = []
    for r in images:
        s = r.summary
        f = forced_difference_photometry(r, ra, dec)
        zp = np.nan if s.zp is None else s.zp
        zpe = np.nan if s.zp_err is None else s.zp_err
        flux, err = f["flux"], f["flux_err"]
        det = np.isfinite(flux) and err > 0 and flux / err >= 3
        mag = zp - 2.5 * np.log10(flux / s.exptime) if det else np.nan
        magerr = float(np.hypot(2.5 / np.log(10) * err / flux, zpe)) if det else np.nan
        # 3-sigma upper limit for non-detections.
        lim = zp - 2.5 * np.log10(3 * err / s.exptime) if np.isfinite(err) and err > 0 else np.nan
        t = (s.mjd_mid - t0_mjd) * 86400.0 if t0_mjd is not None else np.nan
        maglim = np.nan if s.maglim is None else s.maglim
        rows.append(
            (
                s.mjd_mid, t, s.exptime, s.filter, flux, err, mag, magerr,
                lim, bool(det), maglim, Path(s.raw).name,
            )
        )  # fmt: skip
    return Table(
        rows=rows,
        names=(
            "MJD", "TIME", "EXPOSURE", "FILTER", "FLUX", "FLUX_ERR", "MAG", "MAG_ERR",
            "MAG_LIM3", "DETECTED", "MAGLIM5", "IMAGE",
        ),
    )  # fmt: skip


def _decay_index(lc: Table) -> tuple[float, float] | None:
    det = lc[lc["DETECTED"] & np.isfinite(lc["TIME"]) & (lc["TIME"] > 0)]
    if len(det) < 2:
        return None
    x = np.log10(np.asarray(det["TIME"], float))
    y = np.asarray(det["MAG"], float)
    w = 1 / np.asarray(det["MAG_ERR"], float) ** 2
    a = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(a.T @ (a * w[:, None]))
    beta = cov @ (a.T @ (w * y))
    # m = m0 + 2.5 alpha log10 t  ->  alpha = slope / 2.5
    return float(beta[1] / 2.5), float(np.sqrt(cov[1, 1]) / 2.5)


@dataclass
class SequenceResult:
    """What a sequence gave: its transient (a candidate row), decay index and products."""

    sequence: str
    n_images: int
    transient: dict[str, Any] | None
    decay_index: tuple[float, float] | None
    stack_maglim: float | None
    products: list[Product]
    alert_position: AlertPosition | None = None
    association: AfterglowChoice | None = None


def _guided_choice(
    source: ImageResult,
    images: list[ImageResult],
    position: AlertPosition,
    t0_mjd: float | None,
    config: AssociationConfig,
) -> AfterglowChoice | None:
    """Weigh the kept candidates of ``source`` by the alert position and their fading.

    Each candidate's decay index comes from its forced-photometry light curve on every
    image's difference (when the trigger time is known). ``index`` is the row in the kept
    candidates (the DT product's rows).
    """
    t = source.candidates
    if t is None or len(t) == 0:
        return None
    kept = t[t["REJECT"] == "ok"]
    if len(kept) == 0:
        return None
    order = np.argsort(-np.asarray(kept["SNR"], float))[: config.max_candidates]
    cands = []
    for i in order:
        row = kept[int(i)]
        ra, dec = float(row["ALPHA_J2000"]), float(row["DELTA_J2000"])
        decay = None
        if t0_mjd is not None and len(images) >= 2:
            decay = _decay_index(light_curve(images, ra, dec, t0_mjd=t0_mjd))
        cands.append(
            TransientCandidate(
                ra,
                dec,
                float(row["SNR"]),
                decay_index=None if decay is None else decay[0],
                decay_error=None if decay is None else decay[1],
                index=int(i),
            )
        )
    return choose_afterglow(cands, position, config)


def _safe(burst_id: str) -> str:
    """Return a burst id as the images' trigger id is kept (a safe path component)."""
    try:
        return header_component(burst_id, what="burst id")
    except SvomflowError:
        return burst_id


def _row(table: Table, i: int) -> dict[str, Any]:
    best = table[i]
    return {
        k: (v.item() if hasattr(v, "item") else v) for k, v in zip(best.colnames, best, strict=True)
    }


def _primary(first: ImageSummary, n: int, extra: list[tuple[str, Any, str]]) -> fits.PrimaryHDU:
    h = fits.Header()
    h["TELESCOP"] = ("COLIBRI", "telescope")
    h["INSTRUME"] = (first.instrument, "camera")
    h["FILTER"] = (first.filter, "filter")
    h["TRIGID"] = (first.trigger, "trigger identifier")
    h["NIMAGES"] = (n, "alert images analysed")
    for k, v, c in extra:
        h[k] = (v, c)
    return fits.PrimaryHDU(header=h)


def _quick_light_curve(
    images: list[ImageResult], transient: dict[str, Any] | None, radius_arcsec: float
) -> Table:
    """Return each image's own candidate nearest the transient (the quick light curve)."""
    qrows = []
    for r in images:
        s = r.summary
        best = None
        if transient is not None and r.candidates is not None:
            near = cone_table(
                r.candidates, transient["ALPHA_J2000"], transient["DELTA_J2000"], radius_arcsec
            )
            near = near[near["REJECT"] == "ok"] if len(near) else near
            if len(near) and "MAG_PSF" in near.colnames:
                best = near[np.argmax(near["SNR"])]
        qrows.append(
            (
                s.mjd_mid,
                s.exptime,
                float(best["MAG_PSF"]) if best is not None else np.nan,
                float(best["MAGERR_PSF"]) if best is not None else np.nan,
                float(np.nan if s.maglim is None else s.maglim),
            )
        )
    return Table(rows=qrows, names=("MJD", "EXPOSURE", "MAG", "MAG_ERR", "MAGLIM5"))


def _position_cards(
    source: ImageSummary, first: ImageSummary, transient: dict[str, Any]
) -> list[tuple[str, Any, str]]:
    """Return the transient's position cards and its error (astrometric fit, centroid noise)."""
    rms = source.astrometry_rms_arcsec
    if rms is None:
        rms = first.astrometry_rms_arcsec
    ast = float(rms if rms is not None else 0.3)
    fwhm, fwhm_arcsec = float(first.fwhm or np.nan), float(first.fwhm_arcsec or np.nan)
    scale = fwhm_arcsec / fwhm
    cen = scale * fwhm / 2.3548 / max(transient["SNR"], 1.0)
    err = float(np.hypot(ast, cen))
    return [
        ("RA_OBJ", round(transient["ALPHA_J2000"], 7), "[deg] transient right ascension"),
        ("DEC_OBJ", round(transient["DELTA_J2000"], 7), "[deg] transient declination"),
        ("POS_ERR", round(err, 4), "[arcsec] 1-sigma position error"),
        ("SNR", round(transient["SNR"], 2), "detection S/N on the stack difference"),
    ]


@step(
    name="summary",
    config=SummaryModule,
    outputs=SEQUENCE_PRODUCTS,
)
def sequence_products(
    images: list[ImageResult],
    stack: ImageResult | None,
    trigger_time: str | None,
    match_radius_arcsec: float,
    *,
    config: SummaryModule,
    alert_position: AlertPosition | None = None,
) -> SequenceResult:
    """Select the transient, measure its light curve and make the sequence's products.

    Parameters
    ----------
    images
        The analysed alert images of the sequence (through the subtraction), any order.
    stack
        Their analysed stack, or ``None`` (the transient is then taken from the image where
        it is most significant).
    trigger_time
        Trigger time (ISO UTC) for T - T0 in the light curve, or ``None``.
    match_radius_arcsec
        Candidates this close across images are one transient (quick light curve).
    alert_position
        The burst's best announced position: when it is this sequence's burst (its
        ``burst_id`` is the images' trigger id), the transient is the candidate most
        probably the afterglow given it (:func:`~svomflow.tasks.gp1.alert_position.
        choose_afterglow`), every candidate's probability goes into DT, and QTI and OTPO
        record the position used (keywords; provenance: the products' content).
    """
    if not images:
        raise InputDataError("no alert image analysed up to the subtraction")
    images = sorted(images, key=lambda r: r.summary.mjd_mid)
    summaries = [r.summary for r in images]
    first = summaries[0]
    source = (
        stack
        if stack is not None
        else max(images, key=lambda r: (select_transient(r) or {}).get("SNR", -1))
    )
    transient = select_transient(source)
    t0 = mjd(trigger_time) if trigger_time else None
    if alert_position is not None and first.trigger not in (
        alert_position.burst_id,
        _safe(alert_position.burst_id),
    ):
        alert_position = None  # another burst's position: not this sequence's
    choice = None
    if alert_position is not None:
        choice = _guided_choice(source, images, alert_position, t0, config.association)
        if choice is not None and choice.chosen is not None and source.candidates is not None:
            kept = source.candidates[source.candidates["REJECT"] == "ok"]
            transient = _row(kept, choice.chosen.candidate.index)
    lc = None
    if transient is not None:
        lc = light_curve(images, transient["ALPHA_J2000"], transient["DELTA_J2000"], t0_mjd=t0)
    decay = _decay_index(lc) if lc is not None else None
    n = len(images)
    inst, obs = first.instrument, first.sequence
    products: list[Product] = []
    # the masters of this sequence's images (a run may hold other sequences' images)
    used = tuple(
        dict.fromkeys(str(r["name"]) for s in summaries for r in s.calibration if "name" in r)
    )

    # the alert position used is part of the products' identity and provenance
    content = {"alert_position": alert_position.model_dump(mode="json")} if alert_position else {}
    alert_cards = association_cards(alert_position, choice)

    def add(code: str, hdus: list[Any]) -> None:
        products.append(
            Product(
                code,
                inst,
                FitsModel.from_hdus(hdus),
                obs_id=obs,
                calibration=used or None,
                content=content,
            )
        )

    # DT: all kept candidates of the stack (or best image) difference.
    cands = source.candidates if source.candidates is not None else Table()
    if len(cands):
        cands = cands[cands["REJECT"] == "ok"]
        if choice is not None:
            # every candidate's probability, those outside the error region too
            figures_of = choice.by_index()
            n_c = len(cands)
            cands["P_AFTERGLOW"] = [
                figures_of[i].probability if i in figures_of else np.nan for i in range(n_c)
            ]
            cands["ALERT_SEP"] = [
                figures_of[i].separation_arcmin if i in figures_of else np.nan for i in range(n_c)
            ]
            cands["IN_REGION"] = [
                bool(figures_of[i].in_region) if i in figures_of else False for i in range(n_c)
            ]
    dt = fits.table_to_hdu(cands) if len(cands) else fits.BinTableHDU(name="DETECTIONS")
    dt.name = "DETECTIONS"
    add("DT", [_primary(first, n, [("NDET", len(cands), "kept transient candidates")]), dt])
    q = fits.table_to_hdu(_quick_light_curve(images, transient, match_radius_arcsec))
    q.name = "QUICKLC"
    add("OTQLC", [_primary(first, n, []), q])
    # OTPO and OTLC need a transient.
    po_cards: list[tuple[str, Any, str]] = []
    if transient is not None and lc is not None:
        po_cards = _position_cards(source.summary, first, transient)
        # the run's result (and the flow's artifact) carries the error OTPO gives
        transient = {**transient, "POS_ERR": next(v for k, v, _ in po_cards if k == "POS_ERR")}
        add("OTPO", [_primary(first, n, [*po_cards, *alert_cards])])
        lch = fits.table_to_hdu(lc)
        lch.name = "LIGHTCURVE"
        add("OTLC", [_primary(first, n, po_cards), lch])
    maglims = [np.nan if s.maglim is None else s.maglim for s in summaries]
    qti = [
        *po_cards,
        *alert_cards,
        ("DETECT", transient is not None, "a transient was found"),
        (
            "MAGLIM",
            round(float(np.nanmin(maglims)), 3),
            "[mag] shallowest 5-sigma limit of the sequence",
        ),
    ]
    if stack is not None and stack.summary.maglim is not None:
        qti.append(("STKLIM", round(stack.summary.maglim, 3), "[mag] stack 5-sigma limit"))
    if lc is not None and lc["DETECTED"].any():
        k = int(np.flatnonzero(lc["DETECTED"])[0])
        qti.append(("MAG1", round(float(lc["MAG"][k]), 3), "[mag] first detection"))
        qti.append(("MAG1ERR", round(float(lc["MAG_ERR"][k]), 3), "[mag] its error"))
        qti.append(("MJD1", round(float(lc["MJD"][k]), 6), "MJD of the first detection"))
    if decay is not None:
        qti.append(("ALPHA", round(decay[0], 3), "power-law decay index F ~ t^-alpha"))
        qti.append(("ALPHAERR", round(decay[1], 3), "its error"))
    add("QTI", [_primary(first, n, qti)])
    figures = {
        "lightcurve": light_curve_figure(lc, first.filter),
        "calibration": calibration_figure(summaries),
        "sensitivity": sensitivity_figure(summaries),
    }
    if transient is not None:
        figures["finding_chart"] = finding_chart(source, transient, config.finding_chart_arcmin)
        products.append(
            Product(
                "QF",
                inst,
                figures["finding_chart"],
                obs_id=obs,
                calibration=used or None,
                content=content,
            )
        )
    codes = [p.type_code for p in products] + ["SUMMARY"]
    # composed when published, with the figures it embeds (after the science products)
    page = partial(_html, first, summaries, stack, transient, decay, codes, figures)
    products.append(
        Product(
            "SUMMARY",
            inst,
            FigurePage(page),
            obs_id=obs,
            calibration=used or None,
            content=content,
        )
    )
    return SequenceResult(
        sequence=obs,
        n_images=n,
        transient=transient,
        decay_index=decay,
        stack_maglim=None if stack is None else stack.summary.maglim,
        products=products,
        alert_position=alert_position,
        association=choice,
    )


def _fmt(v: float | None, spec: str) -> str:
    return format(float("nan") if v is None else v, spec)


def _html(
    first: ImageSummary,
    summaries: list[ImageSummary],
    stack: ImageResult | None,
    transient: dict[str, Any] | None,
    decay: tuple[float, float] | None,
    codes: list[str],
    figures: dict[str, Any],
) -> str:
    def img(name: str) -> str:
        if name not in figures:
            return "<p>(no plot)</p>"
        b64 = base64.b64encode(figures[name].png()).decode()
        return f'<img alt="{name}" src="data:image/png;base64,{b64}"/>'

    rows = "".join(
        f"<tr><td>{Path(s.raw).name}</td><td>{s.exptime:.0f}</td>"
        f"<td>{_fmt(s.fwhm_arcsec, '.2f')}</td>"
        f"<td>{'-' if s.astrometry_n is None else s.astrometry_n}</td>"
        f"<td>{_fmt(s.astrometry_rms_arcsec, '.3f')}</td>"
        f"<td>{_fmt(s.zp, '.3f')} &plusmn; {_fmt(s.zp_err, '.3f')}</td>"
        f"<td>{_fmt(s.maglim, '.2f')}</td>"
        f"<td>{'-' if s.n_candidates is None else s.n_candidates}</td>"
        f"<td>{s.redlevel}</td></tr>"
        for s in summaries
    )
    tr = "<p>No transient candidate passed the vetting.</p>"
    if transient is not None:
        tr = (
            f"<p>Transient at RA {transient['ALPHA_J2000']:.6f}, Dec {transient['DELTA_J2000']:+.6f}"
            f" (S/N {transient['SNR']:.1f} on the stack difference)"
            + (f"; decay index {decay[0]:.2f} &plusmn; {decay[1]:.2f}" if decay else "")
            + ".</p>"
        )
    prods = "".join(f"<li>{c}</li>" for c in codes)
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>GP1 {first.trigger} {first.filter}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;border-bottom:1px solid #ccc}}</style>
</head><body>
<h1>GP1 summary: {first.trigger} &mdash; {first.instrument} {first.filter}</h1>
<p>Generated {now}; {len(summaries)} alert images{", stacked" if stack is not None else ""}.</p>
<h2>Transient</h2>{tr}
<h2>Images</h2><table><tr><th>image</th><th>exp (s)</th><th>FWHM (")</th><th>N ast</th>
<th>ast RMS (")</th><th>ZP</th><th>lim 5&sigma;</th><th>cands</th><th>reduction</th></tr>{rows}</table>
<h2>Variability</h2>{img("lightcurve")}
<h2>Calibration</h2>{img("calibration")}
<h2>Sensitivity</h2>{img("sensitivity")}
<h2>Finding chart</h2>{img("finding_chart")}
<h2>Products</h2><ul>{prods}</ul>
</body></html>
"""
