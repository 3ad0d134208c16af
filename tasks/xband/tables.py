"""FITS tables with units for result products, and the PNG previews of the X-band analysis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy.io import fits
from svomflow.config import InstrumentDefinition
from svomflow.products.catalogue import FigureModel, FitsModel
from svomflow.products.ogip import primary_hdu

__all__ = ["lightcurve_figure", "primary", "results_product", "results_table", "spectrum_figure"]


def primary(
    definition: InstrumentDefinition | None, extra: Sequence[tuple[str, Any, str]] = ()
) -> fits.PrimaryHDU:
    """Primary HDU of a product of one instrument, or of both (``None``: ``ECLAIRS+GRM``)."""
    tel = definition.telescope if definition is not None else "SVOM"
    ins = definition.instrument if definition is not None else "ECLAIRS+GRM"
    return primary_hdu(telescope=tel, instrument=ins, extra=list(extra))


def results_product(
    definition: InstrumentDefinition | None, *tables: fits.BinTableHDU
) -> FitsModel:
    """Build a product of result tables under the primary HDU of its instrument(s)."""
    return FitsModel.from_hdus([primary(definition), *tables])


def results_table(
    rows: Sequence[Mapping[str, Any]],
    *,
    extname: str,
    units: Mapping[str, str] | None = None,
    header: Sequence[tuple[str, Any, str]] = (),
) -> fits.BinTableHDU:
    """Build a binary table from rows of scalars (missing values: NaN or empty string).

    Column types follow the values: strings ``A``, booleans ``L``, integers ``K``, floats ``D``.
    """
    names: list[str] = []
    for r in rows:
        for k in r:
            if k not in names:
                names.append(k)
    cols = []
    for name in names:
        vals = [r.get(name) for r in rows]
        sample = next((v for v in vals if v is not None), None)
        unit = (units or {}).get(name)
        if isinstance(sample, str):
            arr = np.array([("" if v is None else str(v)) for v in vals])
            width = max(1, max(len(x) for x in arr)) if len(arr) else 1
            cols.append(fits.Column(name.upper()[:68], f"{width}A", array=arr))
        elif isinstance(sample, bool | np.bool_):
            cols.append(
                fits.Column(name.upper()[:68], "L", array=np.array([bool(v) for v in vals]))
            )
        elif isinstance(sample, int | np.integer):
            cols.append(
                fits.Column(
                    name.upper()[:68], "K", unit=unit, array=np.array([int(v or 0) for v in vals])
                )
            )
        else:
            arr = np.array([np.nan if v is None else float(v) for v in vals], dtype=float)
            cols.append(fits.Column(name.upper()[:68], "D", unit=unit, array=arr))
    hdu = fits.BinTableHDU.from_columns(cols, name=extname)
    for k, v, c in header:
        hdu.header[k] = (v, c)
    return hdu


def lightcurve_figure(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
    intervals: Sequence[tuple[str, tuple[float, float]]],
    *,
    ylabel: str,
    title: str,
) -> FigureModel:
    """Plot light curves (label, bin starts, widths, values, errors) with intervals shaded."""

    def draw(fig: Any) -> None:
        axes = fig.subplots(len(curves), 1, sharex=True, squeeze=False)
        colors = {"pre_burst": "0.85", "post_burst": "0.85", "main": "C2", "peak": "C3"}
        for ax, (label, lo, width, val, err) in zip(axes[:, 0], curves, strict=True):
            ax.step(
                np.append(lo, lo[-1] + width[-1]), np.append(val, val[-1]), where="post", lw=0.8
            )
            if err is not None:
                ax.errorbar(
                    lo + width / 2, val, yerr=err, fmt="none", lw=0.4, alpha=0.5, color="C0"
                )
            for name, (a, b) in intervals:
                if name.startswith("resolved"):
                    ax.axvline(a, color="C1", lw=0.5, ls=":")
                    continue
                ax.axvspan(
                    a, b, color=colors.get(name, "C4"), alpha=0.15 if name != "peak" else 0.3, lw=0
                )
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_title(label, fontsize=8, loc="left")
        axes[-1, 0].set_xlabel("time since T0 (s)")
        fig.suptitle(
            title + "  (grey: background, green: main, red: peak, dotted: time-resolved)",
            fontsize=8,
        )
        fig.tight_layout()

    return FigureModel(draw=draw, size_in=(8.0, 2.2 * len(curves) + 0.8), dpi=90)


# the size of svomflow.tasks.spectral.plot's figure
_SPECTRUM_SIZE_IN = (7.0, 6.0)
_SPECTRUM_DPI = 90


def spectrum_figure(result: Any, title: str) -> FigureModel:
    """Count spectra with the folded model and residuals (:func:`svomflow.tasks.spectral.plot`)."""

    def draw(fig: Any) -> None:
        from svomflow.tasks.spectral.plot import draw_fit

        draw_fit(result, fig, title)

    return FigureModel(draw=draw, size_in=_SPECTRUM_SIZE_IN, dpi=_SPECTRUM_DPI)
