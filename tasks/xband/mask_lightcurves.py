"""Step ``mask-lightcurves``: mask-weighted ECLAIRs light curves per band (MWLC).

As Swift/BAT's ``batmaskwtevt`` + ``batbinevt``: every event gets the balanced mask weight
of its pixel for the burst position the imaging found
(:func:`~svomflow.tasks.coded_mask.mask_weighting.mask_weights`, cancelling a flat and a
CXB-shaped background), and the weights are summed per time bin
(:func:`~svomflow.tasks.coded_mask.mask_weighting.weighted_lightcurve`). The rates are
background-subtracted by construction (they may be negative) with Gaussian errors
``sqrt(sum w^2) / exposure``.

File: one OGIP RATE table per band (``TIME``, ``TIMEDEL``, ``RATE``, ``ERROR``, ``FRACEXP``;
``TIME`` in s from ``TIMEZERO``), the widest band first so that tools reading the first
light-curve table (``svomflow vhf --events MWLC.fits``) measure T90 in the full band, and a
GTI extension; the OGIP time keywords (``MJDREF``, ``TIMESYS``, ``TIMEUNIT``, ``TSTART``,
``TSTOP``) as in the LC products.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.instruments.coded_mask import MaskGeometry, mask_pattern
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.products.ogip import TimeReference, gti_hdu
from svomflow.tasks.coded_mask.mask_weighting import (
    MaskWeights,
    default_templates,
    event_weights,
    mask_weights,
    weighted_lightcurve,
)
from svomflow.tasks.step import step
from svomflow.tasks.timing import uniform_bins
from svomflow.tasks.xband.config import LightCurveConfig
from svomflow.tasks.xband.localise import Positions
from svomflow.tasks.xband.responses import usable_pixels
from svomflow.tasks.xband.selection import band_mask, default_band, per_instrument
from svomflow.tasks.xband.tables import primary, results_table

__all__ = ["MaskLightCurves", "mask_lightcurves"]

Band = tuple[float, float]


@dataclass
class MaskLightCurves:
    """The mask-weighted light curves of one imaging instrument: bands and the product."""

    instrument: str
    bands: list[Band]
    products: list[Product] = field(default_factory=list)


def _bands(name: str, ev: InstrumentEvents, config: LightCurveConfig) -> list[Band]:
    """Return the instrument's light-curve bands, the widest first (the one tools read first)."""
    given = per_instrument(config, "bands_kev", name)
    if given is None:
        assert ev.definition is not None
        given = ev.definition.get("bands_kev.light_curve")
    bands = [default_band(ev, b, "light_curve") for b in given]
    widest = max(bands, key=lambda b: b[1] - b[0])
    return [widest, *(b for b in bands if b != widest)]


def _weights(ev: InstrumentEvents, ra: float, dec: float, usable: np.ndarray) -> MaskWeights:
    """Balanced mask weights toward (ra, dec), cancelling a flat and a CXB-shaped background."""
    assert ev.attitude is not None and ev.definition is not None
    ty, tz = ev.attitude.to_projected(ra, dec)
    geom = MaskGeometry.from_instrument(ev.definition)
    pattern = mask_pattern(geom)
    return mask_weights(
        geom,
        pattern,
        float(ty),
        float(tz),
        usable=usable,
        templates=default_templates(geom, pattern),
    )


def _band_table(
    ev: InstrumentEvents,
    mw: MaskWeights,
    band: Band,
    config: LightCurveConfig,
    t0: float,
    header: list[tuple[str, object, str]],
) -> fits.BinTableHDU:
    """One band's mask-weighted RATE table."""
    data = ev.events
    assert data.pixel_y is not None and data.pixel_z is not None
    sel = band_mask(ev, band)
    t = np.asarray(data.time[sel], dtype=np.float64)
    order = np.argsort(t, kind="stable")
    w = event_weights(mw, data.pixel_y[sel][order], data.pixel_z[sel][order])
    t = t[order]
    bins = uniform_bins(t, config.bin_s, data.gti)
    counts, var = weighted_lightcurve(t, w, bins.lo, bins.hi)
    # an empty bin has no variance of its own: give it that of one event of mean weight,
    # so that no bin claims an infinitely precise zero
    floor = float(np.mean(w * w)) if w.size else 1.0
    err = np.sqrt(np.maximum(var, floor)) / bins.exposure
    rows = [
        {"time": lo, "timedel": hi - lo, "rate": c / x, "error": e, "fracexp": x / (hi - lo)}
        for lo, hi, c, x, e in zip(bins.lo, bins.hi, counts, bins.exposure, err, strict=True)
    ]
    return results_table(
        rows,
        extname=f"RATE_{band[0]:g}_{band[1]:g}",
        units={"time": "s", "timedel": "s", "rate": "count/s", "error": "count/s"},
        header=[
            *header,
            ("TSTART", float(bins.lo[0]), "[s] start of the first bin, from TIMEZERO"),
            ("TSTOP", float(bins.hi[-1]), "[s] end of the last bin, from TIMEZERO"),
            ("E_MIN", band[0], "[keV] band"),
            ("E_MAX", band[1], "[keV] band"),
        ],
    )


@step(
    name="mask-lightcurves",
    config=LightCurveConfig,
    calibration=("BADPIX",),
    outputs=("MWLC",),
)
def mask_lightcurves(
    name: str,
    events: InstrumentEvents,
    positions: Positions,
    t0: float,
    *,
    config: LightCurveConfig,
    calibration: CalibrationSet,
) -> MaskLightCurves:
    """Make one imaging instrument's mask-weighted light curves toward its refined position.

    Raises
    ------
    InputDataError
        The instrument is not imaging or the imaging found no position.
    """
    qp = positions.imaging.get(name)
    if not events.imaging or qp is None or events.attitude is None:
        raise InputDataError(f"mask-weighted light curves of {name}: no imaging position")
    ra, dec = float(qp.position.ra_deg), float(qp.position.dec_deg)
    usable = usable_pixels(calibration.get(name, "BADPIX"), positions.excluded_pixels.get(name))
    mw = _weights(events, ra, dec, usable)
    data = events.events
    timeref = TimeReference(mjdref=data.mjdref, timesys=data.timesys)
    header: list[tuple[str, object, str]] = [
        ("HDUCLASS", "OGIP", ""),
        ("HDUCLAS1", "LIGHTCURVE", ""),
        ("HDUCLAS2", "NET", "background subtracted (mask-weighted)"),
        ("HDUCLAS3", "RATE", ""),
        ("TIMEZERO", t0, "mission time of T0 (s)"),
        ("TRIGTIME", t0, "mission time of T0 (s)"),
        ("TIMEPIXR", 0.0, "bin start"),
        *timeref.cards(),
        ("MASKWT", True, "mask-weighted counts (sum of event weights)"),
        ("RA_OBJ", ra, "[deg] position the weights point to"),
        ("DEC_OBJ", dec, "[deg] position the weights point to"),
        ("WTNORM", mw.norm, "normalisation of the weights"),
        ("CODFRAC", mw.coding_fraction, "coding fraction of the position"),
    ]
    bands = _bands(name, events, config)
    tables = [_band_table(events, mw, b, config, t0, header) for b in bands]
    d = events.definition
    gti = np.asarray(data.gti, float)
    gti_ext = gti_hdu(
        gti[:, 0] + t0,
        gti[:, 1] + t0,
        timeref=timeref,
        telescope=d.telescope if d is not None else "SVOM",
        instrument=d.instrument if d is not None else name.upper(),
    )
    model = FitsModel.from_hdus([primary(d), *tables, gti_ext])
    product = Product("MWLC", instrument_code(name), model, calibration=("BADPIX",))
    return MaskLightCurves(instrument=name, bands=bands, products=[product])
