"""Step ``fit``: spectral fits of every interval and the fluences (SP, SP-PREVIEW, FLUENCE).

One call per combination of instruments (``ECL``, ``GRM``, the joint ``ECLGRM``): the main
and peak intervals with ``spectral.model``, the time-resolved ones with
``spectral.resolved_model`` (:func:`~svomflow.tasks.xband.fitting.fit_datasets`, falling
back to ``spectral.fallback_model``). A time-resolved or peak interval that cannot be fitted
is skipped and named; the main one is required. A one-instrument fit also gives the
instrument's counts-to-flux factors per interval, for the light curves and peak fluxes in
physical units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.products.catalogue import FitsModel, Product
from svomflow.tasks.step import step
from svomflow.tasks.xband.config import SpectralConfig
from svomflow.tasks.xband.extraction import IntervalSpectra
from svomflow.tasks.xband.fitting import IntervalFit, conversion_factor, fit_datasets
from svomflow.tasks.xband.tables import primary, results_table, spectrum_figure

__all__ = ["FIT_CALIBRATION", "ConversionFactor", "CountsToFlux", "SpectralFits", "fit"]

Band = tuple[float, float]

#: The CALDB codes a fit's numbers depend on (recorded in the provenance of its products
#: and of the light curves in flux units): the events', the pixels' and the responses'.
FIT_CALIBRATION = ("EBOUNDS", "DEADTIME", "BADPIX", "RSPPAR")


@dataclass(frozen=True)
class ConversionFactor:
    """Photon flux per count rate of one fitted interval, and its mean photon energy."""

    factor: float
    erg_per_photon: float
    interval: tuple[float, float]


@dataclass
class CountsToFlux:
    """An instrument's counts-to-flux factors: count band, flux band, one per fitted interval."""

    instrument: str
    count_band: Band
    flux_band: Band
    by_interval: dict[str, ConversionFactor]

    def at(self, t: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Factors and erg per photon at times ``t``: the time-resolved fit's, else the main's."""
        main = self.by_interval["main"]
        f = np.full(t.size, main.factor)
        erg = np.full(t.size, main.erg_per_photon)
        for label, v in self.by_interval.items():
            if label.startswith("resolved"):
                a, b = v.interval
                sel = (t >= a) & (t < b)
                f[sel] = v.factor
                erg[sel] = v.erg_per_photon
        return f, erg


@dataclass
class SpectralFits:
    """The fits of one combination of instruments (``code``), the skipped intervals, factors."""

    code: str
    instruments: tuple[str, ...]
    fits: list[IntervalFit]
    skipped: list[str] = field(default_factory=list)
    factors: CountsToFlux | None = None
    products: list[Product] = field(default_factory=list)

    @property
    def main(self) -> IntervalFit:
        """The fit of the main interval."""
        return next(f for f in self.fits if f.label == "main")

    def summary(self) -> list[dict[str, Any]]:
        """JSON-ready summaries of the fits (the flow's ``fits[code]``)."""
        return [f.summary() for f in self.fits]


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


def _fluence_product(main: IntervalFit, code: str, bands: Sequence[Band], t0: float) -> Product:
    rows = []
    for band in bands:
        fx = main.fluxes[f"fluence_{band[0]:g}-{band[1]:g}"]
        rows.append(
            {
                "band_lo": band[0],
                "band_hi": band[1],
                "fluence": fx.value,
                "fluence_errlo": fx.error_low,
                "fluence_errhi": fx.error_high,
                "tstart": main.interval[0],
                "tstop": main.interval[1],
                "model": main.model,
            }
        )
    tab = results_table(
        rows,
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
        header=[("TIMEZERO", t0, "mission time of T0 (s)")],
    )
    model = FitsModel.from_hdus([primary(None), tab])
    return Product("FLUENCE", code, model, calibration=FIT_CALIBRATION)


def _factors(
    fits_: Sequence[IntervalFit],
    instrument: str,
    channel_range: tuple[float, float],
    flux_band: Band,
) -> CountsToFlux:
    # the counts of the flux band that the instrument records
    count_band = (max(flux_band[0], channel_range[0]), min(flux_band[1], channel_range[1]))
    key = f"{flux_band[0]:g}-{flux_band[1]:g}"
    by_interval = {}
    for f in fits_:
        ph = f.fluxes[f"photon_{key}"].value
        en = f.fluxes[f"energy_{key}"].value
        by_interval[f.label] = ConversionFactor(
            factor=conversion_factor(f, instrument, count_band, flux_band),
            erg_per_photon=en / ph if ph > 0 else float("nan"),
            interval=f.interval,
        )
    return CountsToFlux(instrument, count_band, flux_band, by_interval)


@step(name="fit", config=SpectralConfig, outputs=("SP", "SP-PREVIEW", "FLUENCE"))
def fit(
    code: str,
    instruments: Sequence[str],
    spectra: IntervalSpectra,
    fluence_bands: Sequence[Band],
    flux_bands: Sequence[Band],
    flux_band: Band | None,
    t0: float,
    seed: int,
    *,
    config: SpectralConfig,
) -> SpectralFits:
    """Fit the spectra of ``instruments`` (definition names) in every interval; fluences.

    ``fluence_bands`` are the FLUENCE product's bands, ``flux_bands`` every band whose flux
    is computed (those and the light curves' flux bands); with one instrument,
    ``flux_band`` is the band of its counts-to-flux factors.
    """
    names = tuple(instruments)
    models = {"main": config.model, "peak": config.model}
    out = SpectralFits(code=code, instruments=names, fits=[])
    for row, (label, interval) in enumerate(zip(spectra.labels, spectra.intervals, strict=True)):
        try:
            f = fit_datasets(
                spectra.datasets(names, row),
                label=label,
                interval=interval,
                model=models.get(label, config.resolved_model),
                fallback_model=config.fallback_model,
                stat=config.stat,
                cross_norm=config.cross_norm,
                errors=config.errors,
                flux_bands=list(flux_bands),
                flux_samples=config.flux_samples,
                seed=seed,
                flux_errors=config.flux_errors,
            )
        except InputDataError as exc:
            if label == "main":
                raise
            out.skipped.append(f"{code} {label}: {exc}")
            continue
        out.fits.append(f)
    rows = _fit_rows(out.fits, t0)
    tab = results_table(
        rows,
        extname="FITRESULT",
        units=_units(rows),
        header=[
            ("TIMEZERO", t0, "mission time of T0 (s)"),
            ("ERRCONF", "1 sigma", "parameter and flux errors"),
        ],
    )
    main = out.main
    r = main.result
    title = f"SP_{code} main interval: {main.model}, {r.statistic} {r.stat:.1f}/{r.dof}"
    sp_model = FitsModel.from_hdus([primary(None), tab])
    out.products = [
        Product("SP", code, sp_model, calibration=FIT_CALIBRATION),
        Product("SP-PREVIEW", code, spectrum_figure(r, title), calibration=FIT_CALIBRATION),
        _fluence_product(main, code, fluence_bands, t0),
    ]
    if len(names) == 1 and flux_band is not None:
        out.factors = _factors(out.fits, names[0], spectra.channel_range[names[0]], flux_band)
    return out
