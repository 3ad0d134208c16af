"""GP1 sequence modules: stack of the alert sequence, transient, light curve and products.

Reads the per-image states of one work directory (one trigger, camera and filter), stacks
the images (reproject), analyses the stack like an image (sources, PSF, zero point,
subtraction), takes the most significant kept candidate of the stack difference as the
transient, measures it by forced PSF photometry on every image's difference (the light
curve), and writes the products: DT, QLC, PO, LC, QTI (FITS), QF (PNG) and an HTML summary.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from svomflow.errors import InputDataError
from svomflow.tasks.gp1.analysis import (
    _mjd,
    _wcs,
    forced_difference_photometry,
    load_state,
    run_findstars,
    run_photometry,
    run_subtraction,
    save_state,
)
from svomflow.tasks.gp1.config import GP1Config
from svomflow.tasks.gp1.reduction import ReducedImage, read_reduced, write_reduced
from svomflow.tasks.photometry.extract import estimate_background
from svomflow.tasks.photometry.stack import StackInput, stack_images

__all__ = [
    "PRODUCT_TYPES",
    "build_products",
    "collect_states",
    "light_curve",
    "run_stack",
    "select_transient",
]

PRODUCT_TYPES = ("DT", "QLC", "PO", "LC", "QTI", "QF", "SUMMARY")


def collect_states(work_dir: str | Path, *, need: str = "subtraction") -> list[dict[str, Any]]:
    """Return the alert image states of a work directory that passed ``need``, by time."""
    out = []
    for p in sorted(Path(work_dir).glob("*.json")):
        if p.name.startswith("stack") or p.name.endswith(".products.json"):
            continue
        try:
            s = load_state(p)
        except ValueError:
            continue
        if s.get("alert") and need in s.get("done", []) and not s.get("is_stack"):
            out.append(s)
    return sorted(out, key=lambda s: s["mjd_mid"])


def run_stack(states: list[dict[str, Any]], cfg: GP1Config) -> dict[str, Any]:
    """Stack the reduced images of ``states`` on the first one's grid; analyse the stack."""
    if not states:
        raise InputDataError("no analysed alert image to stack")
    first = states[0]
    inputs = []
    zp0 = first.get("zp")
    for s in states:
        img = read_reduced(s["reduced"])
        data = np.where(img.mask, 0.0, img.data).astype(np.float64)
        bk = estimate_background(
            data, cfg.steps.findstars.extract, img.mask if img.mask.any() else None
        )
        sub = np.where(img.mask, np.nan, data - bk.back())
        scale = 1.0
        if zp0 is not None and s.get("zp") is not None:
            # Bring every image to the first one's zero point (transparency, exposure).
            scale = 10 ** (0.4 * (zp0 - s["zp"])) * first["exptime"] / s["exptime"]
        inputs.append(
            StackInput(
                sub,
                _wcs(img.header),
                rms=float(bk.globalrms),
                name=Path(s["raw"]).name,
                scale=scale,
                exptime=s["exptime"],
                gain=s["gain"],
            )
        )
    ref_img = read_reduced(first["reduced"])
    res = stack_images(
        inputs, target_wcs=inputs[0].wcs, shape=ref_img.data.shape, config=cfg.steps.stacking.stack
    )
    h = ref_img.header.copy()
    for key in ("NCOMBINE",):
        h.remove(key, ignore_missing=True)
    for key, val, com in res.cards:
        if key == "EXPTIME":
            h["TOTEXP"] = (val, "[s] total exposure of the inputs")
            continue
        h[key] = (val, com)
    h["REDLEVEL"] = ("stack", "GP1 reduction level")
    # A mean of N exposures has N times the electrons per ADU of Poisson noise.
    h["GAIN"] = (first["gain"] * len(states), "[e-/adu] effective gain of the mean")
    mask = ~np.isfinite(res.data)
    work = Path(first["work_dir"])
    path = work / "stack.red.fits"
    write_reduced(ReducedImage(np.nan_to_num(res.data).astype(np.float32), mask, h), path)
    st = dict(first)
    st.update(
        stem="stack",
        reduced=str(path),
        raw=str(path),
        is_stack=True,
        n_inputs=len(states),
        inputs=[s["raw"] for s in states],
        gain=first["gain"] * len(states),
        saturation=float(np.nanmax(res.data)) + 1.0,
        mjd_mid=float(np.mean([s["mjd_mid"] for s in states])),
        done=["reduction"],
    )
    for key in ("zp", "zp_err", "photometry", "difference", "candidates"):
        st.pop(key, None)
    save_state(st)
    st = run_findstars(st, cfg)
    st["done"].append("astrometry")  # the stack is on the first image's solved grid
    if cfg.steps.photometry.enabled:
        st = run_photometry(st, cfg)
    if cfg.steps.subtraction.enabled:
        st = run_subtraction(st, cfg)
    return save_state(st)


def select_transient(state: dict[str, Any]) -> dict[str, Any] | None:
    """Return the most significant kept candidate of an analysed image (or stack)."""
    if "candidates" not in state:
        return None
    t = Table.read(state["candidates"])
    if len(t) == 0:
        return None
    kept = t[t["REJECT"] == "ok"]
    if len(kept) == 0:
        return None
    best = kept[np.argmax(kept["SNR"])]
    return {
        k: (v.item() if hasattr(v, "item") else v) for k, v in zip(best.colnames, best, strict=True)
    }


def _trigger_mjd(cfg: GP1Config, states: list[dict[str, Any]]) -> float | None:
    if cfg.trigger_time:
        return _mjd(cfg.trigger_time)
    for s in states:
        if s.get("trigger_time"):
            return _mjd(s["trigger_time"])
    return None


def light_curve(
    states: list[dict[str, Any]], ra: float, dec: float, *, t0_mjd: float | None
) -> Table:
    """Forced PSF photometry of the transient on every image difference, calibrated."""
    rows = []
    for s in states:
        f = forced_difference_photometry(s, ra, dec)
        zp, zpe = s.get("zp", np.nan), s.get("zp_err", np.nan)
        flux, err = f["flux"], f["flux_err"]
        det = np.isfinite(flux) and err > 0 and flux / err >= 3
        mag = zp - 2.5 * np.log10(flux / s["exptime"]) if det else np.nan
        magerr = float(np.hypot(2.5 / np.log(10) * err / flux, zpe)) if det else np.nan
        # 3-sigma upper limit for non-detections.
        lim = (
            zp - 2.5 * np.log10(3 * err / s["exptime"]) if np.isfinite(err) and err > 0 else np.nan
        )
        t = (s["mjd_mid"] - t0_mjd) * 86400.0 if t0_mjd is not None else np.nan
        rows.append(
            (
                s["mjd_mid"], t, s["exptime"], s["filter"], flux, err, mag, magerr,
                lim, bool(det), s.get("maglim", np.nan), Path(s["raw"]).name,
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


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _plots(states, chart_state, lc, transient, cfg) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    # Variability: the light curve with errors and 3-sigma limits.
    fig, ax = plt.subplots(figsize=(6, 4))
    if lc is None:
        lc = Table(
            {
                "MJD": [],
                "TIME": [],
                "MAG": [],
                "MAG_ERR": [],
                "MAG_LIM3": [],
                "DETECTED": np.zeros(0, bool),
            }
        )
    tcol = "TIME" if len(lc) and np.isfinite(lc["TIME"]).all() else "MJD"
    det = np.asarray(lc["DETECTED"], bool)
    if det.any():
        ax.errorbar(lc[tcol][det], lc["MAG"][det], lc["MAG_ERR"][det], fmt="o", label="detections")
    if (~det).any():
        ax.plot(lc[tcol][~det], lc["MAG_LIM3"][~det], "v", label="3-sigma limits")
    ax.invert_yaxis()
    ax.set_xlabel("T - T0 (s)" if tcol == "TIME" else "MJD")
    ax.set_ylabel(f"{states[0]['filter']} (mag)")
    ax.set_title("Transient light curve")
    if tcol == "TIME" and det.any():
        ax.set_xscale("log")
    if len(lc):
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no transient", transform=ax.transAxes, ha="center")
    out["lightcurve"] = _png(fig)
    # Calibration: zero-point residuals of every image.
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in states:
        pts = s.get("zp_points")
        if pts:
            ax.plot(
                pts["ref"], pts["resid"], ".", ms=3, label=f"{s['stem'][-12:]} ZP={s['zp']:.3f}"
            )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("reference magnitude")
    ax.set_ylabel("ref - (inst + ZP) (mag)")
    ax.set_title("Photometric calibration")
    if any(s.get("zp_points") for s in states):
        ax.legend(fontsize=6)
    out["calibration"] = _png(fig)
    # Sensitivity: limiting magnitude and seeing per image.
    fig, ax = plt.subplots(figsize=(6, 4))
    t = np.array([s["mjd_mid"] for s in states])
    t = (t - t[0]) * 86400
    ax.plot(t, [s.get("maglim", np.nan) for s in states], "o-", label="5-sigma limit")
    ax.set_xlabel("time since first image (s)")
    ax.set_ylabel("limiting magnitude")
    ax2 = ax.twinx()
    ax2.plot(t, [s.get("fwhm_arcsec", np.nan) for s in states], "s--", color="C1", label="FWHM")
    ax2.set_ylabel("FWHM (arcsec)")
    ax.invert_yaxis()
    ax.set_title("Sensitivity")
    out["sensitivity"] = _png(fig)
    # Quick finding chart on the stack.
    if transient is not None:
        img = read_reduced(chart_state["reduced"])
        w = _wcs(img.header)
        x, y = transient["X_IMAGE"] - 1, transient["Y_IMAGE"] - 1
        scale = np.sqrt(abs(np.linalg.det(w.pixel_scale_matrix))) * 3600
        half = int(cfg.steps.summary.finding_chart_arcmin * 30 / scale)
        j0, j1 = max(int(y) - half, 0), min(int(y) + half, img.data.shape[0])
        i0, i1 = max(int(x) - half, 0), min(int(x) + half, img.data.shape[1])
        cut = img.data[j0:j1, i0:i1]
        fig, ax = plt.subplots(figsize=(5, 5))
        lo, hi = np.nanpercentile(cut, [5, 99.5])
        ax.imshow(
            cut,
            origin="lower",
            cmap="gray_r",
            vmin=lo,
            vmax=hi,
            extent=(i0 - 0.5, i1 - 0.5, j0 - 0.5, j1 - 0.5),
        )
        ax.add_patch(plt.Circle((x, y), 3 / scale * 2, fill=False, color="r", lw=1.5))
        ax.set_title(
            f"{states[0]['trigger']} {states[0]['filter']}: "
            f"RA {transient['ALPHA_J2000']:.5f} Dec {transient['DELTA_J2000']:+.5f}"
        )
        # North and East arrows from the WCS.
        ra0, dec0 = w.pixel_to_world_values(x, y)
        xn, yn = w.world_to_pixel_values(ra0, dec0 + 20 / 3600)
        xe, ye = w.world_to_pixel_values(ra0 + 20 / 3600 / np.cos(np.deg2rad(dec0)), dec0)
        bx, by = i0 + 0.1 * (i1 - i0), j0 + 0.1 * (j1 - j0)
        ax.annotate(
            "N",
            xy=(bx + (xn - x), by + (yn - y)),
            xytext=(bx, by),
            arrowprops={"arrowstyle": "->", "color": "b"},
            color="b",
        )
        ax.annotate(
            "E",
            xy=(bx + (xe - x), by + (ye - y)),
            xytext=(bx, by),
            arrowprops={"arrowstyle": "->", "color": "b"},
            color="b",
        )
        ax.set_xlabel("x (pix)")
        ax.set_ylabel("y (pix)")
        out["finding_chart"] = _png(fig)
    return out


def build_products(
    work_dir: str | Path, cfg: GP1Config, *, database_url: str | None = None
) -> dict[str, Any]:
    """Stack, select the transient, measure the light curve and publish the products.

    Returns
    -------
    dict
        Product references (type -> path, version, id) and the key figures.
    """
    from svomflow.products.provenance import Provenance
    from svomflow.products.store import ProductStore

    states = collect_states(work_dir)
    if not states:
        raise InputDataError(f"{work_dir}: no alert image analysed up to the subtraction")
    first = states[0]
    stack_state = None
    if cfg.steps.stacking.enabled and len(states) >= 1:
        stack_state = run_stack(states, cfg)
    source = (
        stack_state
        if stack_state is not None
        else max(states, key=lambda s: (select_transient(s) or {}).get("SNR", -1))
    )
    transient = select_transient(source)
    t0 = _trigger_mjd(cfg, states)
    lc = None
    if transient is not None:
        lc = light_curve(states, transient["ALPHA_J2000"], transient["DELTA_J2000"], t0_mjd=t0)
    decay = _decay_index(lc) if lc is not None else None

    store = ProductStore(cfg.output_dir, database_url)
    obs_id = f"{first['trigger']}_{first['filter']}"
    instrument = first["instrument"]
    prov = Provenance.start(
        config=cfg, inputs=[s["raw"] for s in states], flow_name="gp1_reduction"
    )
    refs: dict[str, Any] = {}

    def prim(extra: list[tuple[str, Any, str]] = ()) -> fits.PrimaryHDU:
        h = fits.Header()
        h["TELESCOP"] = ("COLIBRI", "telescope")
        h["INSTRUME"] = (instrument, "camera")
        h["FILTER"] = (first["filter"], "filter")
        h["TRIGID"] = (first["trigger"], "trigger identifier")
        h["NIMAGES"] = (len(states), "alert images analysed")
        for k, v, c in extra:
            h[k] = (v, c)
        return fits.PrimaryHDU(header=h)

    def publish(content, code: str, ext: str = "fits") -> None:
        ref = store.publish(
            content, type_code=code, instrument=instrument, obs_id=obs_id, provenance=prov, ext=ext
        )
        refs[code] = {"path": ref.path, "version": ref.version, "id": ref.id}

    # DT: all kept candidates of the stack (or best image) difference.
    cands = Table.read(source["candidates"]) if "candidates" in source else Table()
    if len(cands):
        cands = cands[cands["REJECT"] == "ok"]
    dt = fits.table_to_hdu(cands) if len(cands) else fits.BinTableHDU(name="DETECTIONS")
    dt.name = "DETECTIONS"
    publish([prim([("NDET", len(cands), "kept transient candidates")]), dt], "DT")

    # QLC: the quick light curve, from each image's own candidates near the transient.
    qrows = []
    for s in states:
        best = None
        if transient is not None and "candidates" in s:
            from svomflow.tasks.gp1.analysis import cone_table

            near = cone_table(
                Table.read(s["candidates"]),
                transient["ALPHA_J2000"],
                transient["DELTA_J2000"],
                cfg.steps.subtraction.match_radius_arcsec,
            )
            near = near[near["REJECT"] == "ok"] if len(near) else near
            if len(near) and "MAG_PSF" in near.colnames:
                best = near[np.argmax(near["SNR"])]
        qrows.append(
            (
                s["mjd_mid"],
                s["exptime"],
                float(best["MAG_PSF"]) if best is not None else np.nan,
                float(best["MAGERR_PSF"]) if best is not None else np.nan,
                float(s.get("maglim", np.nan)),
            )
        )
    qlc = Table(rows=qrows, names=("MJD", "EXPOSURE", "MAG", "MAG_ERR", "MAGLIM5"))
    q = fits.table_to_hdu(qlc)
    q.name = "QUICKLC"
    publish([prim(), q], "QLC")

    # PO and LC and QTI need a transient.
    po_cards: list[tuple[str, Any, str]] = []
    if transient is not None:
        ast = float(source.get("astrometry_rms_arcsec", first.get("astrometry_rms_arcsec", 0.3)))
        scale = float(first["fwhm_arcsec"] / first["fwhm"])
        cen = scale * float(first["fwhm"]) / 2.3548 / max(transient["SNR"], 1.0)
        err = float(np.hypot(ast, cen))
        po_cards = [
            ("RA_OBJ", round(transient["ALPHA_J2000"], 7), "[deg] transient right ascension"),
            ("DEC_OBJ", round(transient["DELTA_J2000"], 7), "[deg] transient declination"),
            ("POS_ERR", round(err, 4), "[arcsec] 1-sigma position error"),
            ("SNR", round(transient["SNR"], 2), "detection S/N on the stack difference"),
        ]
        publish([prim(po_cards)], "PO")
        lch = fits.table_to_hdu(lc)
        lch.name = "LIGHTCURVE"
        publish([prim(po_cards), lch], "LC")
    qti = [
        *po_cards,
        ("DETECT", transient is not None, "a transient was found"),
        (
            "MAGLIM",
            round(float(np.nanmin([s.get("maglim", np.nan) for s in states])), 3),
            "[mag] shallowest 5-sigma limit of the sequence",
        ),
    ]
    if stack_state is not None and "maglim" in stack_state:
        qti.append(("STKLIM", round(stack_state["maglim"], 3), "[mag] stack 5-sigma limit"))
    if lc is not None and lc["DETECTED"].any():
        k = int(np.flatnonzero(lc["DETECTED"])[0])
        qti.append(("MAG1", round(float(lc["MAG"][k]), 3), "[mag] first detection"))
        qti.append(("MAG1ERR", round(float(lc["MAG_ERR"][k]), 3), "[mag] its error"))
        qti.append(("MJD1", round(float(lc["MJD"][k]), 6), "MJD of the first detection"))
    if decay is not None:
        qti.append(("ALPHA", round(decay[0], 3), "power-law decay index F ~ t^-alpha"))
        qti.append(("ALPHAERR", round(decay[1], 3), "its error"))
    publish([prim(qti)], "QTI")

    plots = _plots(states, source, lc, transient, cfg) if cfg.steps.summary.enabled else {}
    if "finding_chart" in plots:
        png = plots["finding_chart"]
        publish(lambda p: p.write_bytes(png), "QF", ext="png")
    if cfg.steps.summary.enabled:
        html = _html(first, states, stack_state, transient, decay, refs, plots)
        publish(lambda p: p.write_text(html), "SUMMARY", ext="html")
    summary = {
        "work_dir": str(work_dir),
        "n_images": len(states),
        "transient": transient,
        "decay_index": decay,
        "products": refs,
        "stack": stack_state["reduced"] if stack_state else None,
        "light_curve": None
        if lc is None
        else [dict(zip(lc.colnames, [r[c] for c in lc.colnames], strict=True)) for r in lc],
    }
    import json

    from svomflow.products.atomic import atomic_write_bytes

    atomic_write_bytes(
        Path(work_dir) / "sequence.products.json",
        json.dumps(summary, indent=1, default=_json_default).encode(),
    )
    return summary


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def _html(first, states, stack_state, transient, decay, refs, plots) -> str:
    def img(name: str) -> str:
        if name not in plots:
            return "<p>(no plot)</p>"
        b64 = base64.b64encode(plots[name]).decode()
        return f'<img alt="{name}" src="data:image/png;base64,{b64}"/>'

    rows = "".join(
        f"<tr><td>{Path(s['raw']).name}</td><td>{s['exptime']:.0f}</td>"
        f"<td>{s.get('fwhm_arcsec', float('nan')):.2f}</td>"
        f"<td>{s.get('astrometry_n', '-')}</td><td>{s.get('astrometry_rms_arcsec', float('nan')):.3f}</td>"
        f"<td>{s.get('zp', float('nan')):.3f} &plusmn; {s.get('zp_err', float('nan')):.3f}</td>"
        f"<td>{s.get('maglim', float('nan')):.2f}</td><td>{s.get('n_candidates', '-')}</td>"
        f"<td>{s.get('redlevel', '')}</td></tr>"
        for s in states
    )
    tr = "<p>No transient candidate passed the vetting.</p>"
    if transient is not None:
        tr = (
            f"<p>Transient at RA {transient['ALPHA_J2000']:.6f}, Dec {transient['DELTA_J2000']:+.6f}"
            f" (S/N {transient['SNR']:.1f} on the stack difference)"
            + (f"; decay index {decay[0]:.2f} &plusmn; {decay[1]:.2f}" if decay else "")
            + ".</p>"
        )
    prods = "".join(
        f"<li>{k}: {Path(v['path']).name} (v{v['version']})</li>" for k, v in refs.items()
    )
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>GP1 {first["trigger"]} {first["filter"]}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;border-bottom:1px solid #ccc}}</style>
</head><body>
<h1>GP1 summary: {first["trigger"]} &mdash; {first["instrument"]} {first["filter"]}</h1>
<p>Generated {now}; {len(states)} alert images{", stacked" if stack_state else ""}.</p>
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
