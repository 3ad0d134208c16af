"""Step ``lightcurves``: light curves and peak fluxes in physical units (LC, LC-PREVIEW, PF).

One instrument per call. The net count rate in the counts band of its flux band (the
background from its fitted model over the off-source intervals) becomes a photon flux and an
energy flux through the counts-to-flux factor of the time-resolved fit covering each bin (the
main interval's elsewhere); peak fluxes on several timescales inside the main interval are
converted the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.products.ogip import TimeReference, gti_hdu
from svomflow.tasks.step import step
from svomflow.tasks.timing import PeakFluxConfig, peak_flux, uniform_bins
from svomflow.tasks.xband.config import LightCurveConfig
from svomflow.tasks.xband.intervals import CommonIntervals
from svomflow.tasks.xband.selection import times_in_band
from svomflow.tasks.xband.spectra import detector_background
from svomflow.tasks.xband.spectral_fits import FIT_CALIBRATION, CountsToFlux
from svomflow.tasks.xband.tables import lightcurve_figure, primary, results_table

__all__ = ["PeakFluxes", "lightcurves"]


@dataclass
class PeakFluxes:
    """One instrument's peak fluxes (a JSON-ready row per timescale) and its products."""

    instrument: str
    rows: list[dict[str, Any]]
    products: list[Product] = field(default_factory=list)


@step(name="lightcurves", config=LightCurveConfig, outputs=("LC", "LC-PREVIEW", "PF"))
def lightcurves(
    name: str,
    events: InstrumentEvents,
    intervals: CommonIntervals,
    factors: CountsToFlux,
    t0: float,
    *,
    config: LightCurveConfig,
) -> PeakFluxes:
    """Make one instrument's light curve and peak fluxes in photon and energy flux units."""
    count_band, flux_band = factors.count_band, factors.flux_band
    gti = events.events.gti
    # the OGIP time keywords and GTI extension the VHF light curves carry (timing tools
    # such as stingray and gdt-core place the curve in time from them)
    timeref = TimeReference(mjdref=events.events.mjdref, timesys=events.events.timesys)
    bkg = detector_background(events, None, intervals.off_source, count_band)
    t = times_in_band(events, count_band)
    bins = uniform_bins(t, config.bin_s, gti)
    mu, var = bkg.model.counts(bins)
    net = (bins.counts - mu) / bins.exposure
    err = np.sqrt(np.maximum(bins.counts, 1.0) + var) / bins.exposure
    fac, erg = factors.at(bins.centre)
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
            ("TIMEZERO", t0, "mission time of T0 (s)"),
            ("TIMEPIXR", 0.0, "bin start"),
            *timeref.cards(),
            ("TSTART", float(bins.lo[0]), "[s] start of the first bin, from TIMEZERO"),
            ("TSTOP", float(bins.hi[-1]), "[s] end of the last bin, from TIMEZERO"),
            ("E_MIN", count_band[0], "[keV] counts band"),
            ("E_MAX", count_band[1], "[keV] counts band"),
            ("FLUX_LO", flux_band[0], "[keV] photon-flux band"),
            ("FLUX_HI", flux_band[1], "[keV] photon-flux band"),
            ("CONVERSN", "fit per interval", "counts-to-flux: resolved fit, else main"),
        ],
    )
    code = instrument_code(name)
    curve = [
        (
            f"{name} photon flux {flux_band[0]:g}-{flux_band[1]:g} keV",
            bins.lo,
            bins.hi - bins.lo,
            net * fac,
            err * fac,
        )
    ]
    preview = lightcurve_figure(curve, intervals.all_named(), ylabel="ph/cm2/s", title=f"LC_{code}")
    pfs = peak_flux(
        t,
        gti,
        bkg.model,
        PeakFluxConfig(
            timescales_s=list(config.peak_timescales_s), resolution_s=config.peak_resolution_s
        ),
        window=intervals.main,
    )
    prow = []
    for pf in pfs:
        f, g = factors.at(np.array([pf.start + pf.timescale_s / 2]))
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
            ("TIMEZERO", t0, "mission time of T0 (s)"),
            ("FLUX_LO", flux_band[0], "[keV]"),
            ("FLUX_HI", flux_band[1], "[keV]"),
        ],
    )
    d = events.definition
    gti_ext = gti_hdu(
        np.asarray(gti, float)[:, 0] + t0,
        np.asarray(gti, float)[:, 1] + t0,
        timeref=timeref,
        telescope=d.telescope if d is not None else "SVOM",
        instrument=d.instrument if d is not None else name.upper(),
    )
    # in flux units through the fits: the fits' calibration
    models = (
        ("LC", FitsModel.from_hdus([primary(events.definition), tab, gti_ext])),
        ("LC-PREVIEW", preview),
        ("PF", FitsModel.from_hdus([primary(events.definition), ptab])),
    )
    return PeakFluxes(
        instrument=name,
        rows=prow,
        products=[Product(t, code, m, calibration=FIT_CALIBRATION) for t, m in models],
    )
