"""What a burst advocate reads first after a VHF quick analysis: key numbers and a summary page.

:func:`key_numbers` formats the flow's result (values with errors and units, T0 in UTC as
well as mission time); the Prefect artifact and the HTML summary product (QSUM) both show
them. :func:`summary_html` links the previews and products relative to the summary's own
folder, so the page works from disk and from the product server alike.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from svomflow.errors import InputDataError

__all__ = ["key_numbers", "summary_html", "t0_utc"]


def t0_utc(event_files: Sequence[str], t0: float) -> str | None:
    """Return T0 as ISO UTC from the first event file's time reference (MJDREF, TIMESYS).

    None when no file states its reference (the mission time is then shown alone).
    """
    from astropy.io import fits
    from astropy.time import Time

    for path in event_files:
        try:
            with fits.open(path, memmap=False) as hdul:
                for hdu in hdul:
                    h = hdu.header
                    if "MJDREFI" in h:
                        mjdref = float(h["MJDREFI"]) + float(h.get("MJDREFF", 0.0))
                    elif "MJDREF" in h:
                        mjdref = float(h["MJDREF"])
                    else:
                        continue
                    scale = str(h.get("TIMESYS", "TT")).strip().lower()
                    scale = scale if scale in {"tt", "utc", "tai", "tdb"} else "tt"
                    when = Time(mjdref + t0 / 86400.0, format="mjd", scale=scale)
                    return str(when.utc.isot)[:23]
        except (OSError, ValueError, TypeError) as exc:
            raise InputDataError(f"{path}: cannot read the time reference ({exc})") from None
    return None


def _pm(value: float | None, err: float | None, fmt: str = ".3g") -> str:
    if value is None:
        return "n/a"
    if err is None:
        return f"{value:{fmt}}"
    return f"{value:{fmt}} ± {err:{fmt}}"


def _asym(q: Mapping[str, Any], fmt: str = ".3g", scale: float = 1.0) -> str:
    v = q["value"] * scale
    lo, hi = abs(q.get("error_low") or 0.0) * scale, abs(q.get("error_high") or 0.0) * scale
    efmt = ".2e" if "e" in fmt else ".2g"
    return f"{v:{fmt}} (−{lo:{efmt}} +{hi:{efmt}})"


def _band(b: Sequence[float]) -> str:
    return f"{b[0]:g}-{b[1]:g}"


def _spectral_rows(spectrum: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for inst, sp in spectrum.items():
        ep = sp["parameters"].get("epeak")
        if ep:
            rows.append((f"Epeak ({inst}, {sp['model']})", _asym(ep, ".4g") + " keV"))
        flux = sp.get("energy_flux")
        lo_t, hi_t = sp.get("interval", (None, None))
        if flux and lo_t is not None and hi_t is not None and hi_t > lo_t:
            band = flux["band_keV"]
            rows.append(
                (
                    f"fluence ({inst}, {band[0]:g}-{band[1]:g} keV, {lo_t:.1f} to {hi_t:.1f} s)",
                    _asym(flux, ".3e", hi_t - lo_t) + " erg/cm²",
                )
            )
    return rows


def key_numbers(out: Mapping[str, Any], utc: str | None) -> dict[str, str]:
    """Return the burst's key numbers as ``{quantity: value with error and unit}``."""
    rows: dict[str, str] = {
        "T0 (UTC)": utc or "n/a (no time reference in the files)",
        "T0 (mission time)": f"{out['t0']:.3f} s",
    }
    band = out["t90_band_kev"]
    where = f"{out['t90_instrument']}, {band[0]:g}-{band[1]:g} keV"
    rows[f"T90 ({where})"] = _pm(out["t90"], out["t90_err"], ".2f") + " s"
    for scale, p in sorted(out["peak_flux"].items(), key=lambda kv: float(kv[0])):
        rows[f"peak flux ({out['t90_instrument']}, {scale} s)"] = (
            f"{_pm(p['rate'], p['rate_err'], '.4g')} {p.get('unit', 'counts/s')} "
            f"at T0{p['start']:+.2f} s"
        )
    rows.update(_spectral_rows(out.get("spectrum", {})))
    hr = out.get("hardness_ratio")
    if hr:
        rows[f"hardness {_band(hr['hard_band_kev'])}/{_band(hr['soft_band_kev'])} keV"] = _pm(
            hr["ratio"], hr["error"]
        )
    jh = out.get("hardness_ratio_joint")
    if jh:
        rows[f"hardness (joint) {_band(jh['hard_band_kev'])}/{_band(jh['soft_band_kev'])} keV"] = (
            _pm(jh["ratio"], jh["error"])
        )
    for inst, p in out.get("positions", {}).items():
        if "r90_arcmin" in p:
            err = f"r90 {p['r90_arcmin']:.2f} arcmin"
        else:
            err = f"r90 {p['error_radius_90_deg']:.1f} deg"
        rows[f"position {inst} (RA, Dec J2000)"] = (
            f"{p['ra_deg']:.4f}°, {p['dec_deg']:+.4f}°, {err}"
        )
    c = out.get("classification")
    if c:
        rows["class"] = f"{c['class']} (P(short) {c['p_short']:.3f})"
    for flag in out.get("flags", []):
        rows.setdefault("flags", "")
        rows["flags"] = (rows["flags"] + "; " if rows["flags"] else "") + str(flag)
    return rows


def summary_html(
    obs_id: str,
    numbers: Mapping[str, str],
    products: Sequence[tuple[str, str]],
    folder: str | os.PathLike[str],
) -> str:
    """Return the HTML summary page: key numbers, previews, and the products list.

    Parameters
    ----------
    obs_id
        The burst id (title).
    numbers
        :func:`key_numbers`.
    products
        ``(label, path)`` of each product; PNG files are shown as images.
    folder
        Where the page will be written: links are relative to it.
    """
    esc = html.escape
    rows = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in numbers.items())
    links, images = [], []
    for label, path in products:
        rel = Path(os.path.relpath(path, folder)).as_posix()
        links.append(
            f'<li><a href="{esc(rel)}">{esc(label)}</a> <code>{esc(Path(path).name)}</code></li>'
        )
        if path.endswith(".png"):
            images.append(
                f'<figure><img src="{esc(rel)}" alt="{esc(label)}"><figcaption>{esc(label)}</figcaption></figure>'
            )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>VHF quick analysis {esc(obs_id)}</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}"
        "th{text-align:left;padding-right:1em}img{max-width:100%}</style></head><body>\n"
        f"<h1>VHF quick analysis {esc(obs_id)}</h1>\n<table>\n{rows}\n</table>\n"
        f"<h2>Previews</h2>\n{''.join(images)}\n"
        f"<h2>Products</h2>\n<ul>\n{chr(10).join(links)}\n</ul>\n</body></html>\n"
    )
