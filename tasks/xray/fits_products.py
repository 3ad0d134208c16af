"""FITS content of the MXT products, built in memory as catalogue models (no file is written).

Each function returns a :class:`~svomflow.products.catalogue.FitsModel` holding the same
HDUs the MXT products have always had: calibrated events (``EVENTS`` + ``GTI`` + ``GAPS``),
the source list (``SRCLIST``), the RMF (``MATRIX`` + ``EBOUNDS``), and per source an ARF
(``SPECRESP``), a PHA type I spectrum (``SPECTRUM``) and a light curve (``RATE`` + ``GTI``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.config.instrument import InstrumentDefinition
from svomflow.products.catalogue import FitsModel
from svomflow.products.ogip import TimeReference, gti_hdu, lightcurve_hdu, primary_hdu
from svomflow.tasks.xray.calibrate import CalibratedEvents
from svomflow.tasks.xray.detect import SourceRecord
from svomflow.tasks.xray.events import MergedEvents
from svomflow.tasks.xray.lightcurve import SourceLightCurve, arf_hdu, rmf_hdu, source_spectrum

__all__ = [
    "arf_model",
    "events_model",
    "lightcurve_model",
    "rmf_model",
    "spectrum_model",
    "srclist_model",
    "time_reference",
]

Card = tuple[str, Any, str]


def time_reference(instrument: InstrumentDefinition) -> TimeReference:
    """Return the mission time reference of the instrument (``MJDREF``, TT seconds)."""
    return TimeReference(float(instrument.get("time_reference.mjdref")))


def _primary(instrument: InstrumentDefinition) -> fits.PrimaryHDU:
    return primary_hdu(telescope=instrument.telescope, instrument=instrument.instrument)


def _columns_hdu(cols: Mapping[str, tuple[str, Any, str | None]], name: str) -> fits.BinTableHDU:
    return fits.BinTableHDU.from_columns(
        [fits.Column(k, fmt, unit=unit, array=arr) for k, (fmt, arr, unit) in cols.items()],
        name=name,
    )


def _gti(gti: NDArray[np.float64], instrument: InstrumentDefinition) -> fits.BinTableHDU:
    return gti_hdu(gti[:, 0], gti[:, 1], timeref=time_reference(instrument),
                   telescope=instrument.telescope, instrument=instrument.instrument)  # fmt: skip


def events_model(
    events: CalibratedEvents,
    merged: MergedEvents,
    instrument: InstrumentDefinition,
    calibration_files: Sequence[tuple[str, str]],
) -> FitsModel:
    """Return the calibrated event file: ``EVENTS``, ``GTI`` and ``GAPS`` (cause of each gap).

    ``EVENTS`` records every removed-row count of the merge, the pointing, the invalid
    patterns dropped and the calibration files used (``calibration_files``: ``(code, file
    name)`` pairs, written as ``CALFILnn``).
    """
    ce = events
    h = _columns_hdu(
        {
            "TIME": ("D", ce.time, "s"), "FRAME": ("K", ce.frame, None),
            "RAWX": ("I", ce.rawx.astype(np.int16), "pixel"), "RAWY": ("I", ce.rawy.astype(np.int16), "pixel"),
            "ENERGY": ("E", ce.energy_kev.astype(np.float32), "keV"), "PI": ("J", ce.pi.astype(np.int32), None),
            "PATTERN": ("I", ce.pattern.astype(np.int16), None), "MULTI": ("I", ce.multiplicity.astype(np.int16), None),
        },
        "EVENTS",
    )  # fmt: skip
    cards: list[Card] = [
        ("TELESCOP", instrument.telescope, "mission or telescope name"),
        ("INSTRUME", instrument.instrument, "instrument name"),
        ("HDUCLASS", "OGIP", "format conforms to OGIP standard"),
        ("HDUCLAS1", "EVENTS", "event list"),
        *time_reference(instrument).cards(),
        *merged.header_cards(),
        ("NINVPAT", ce.counts["n_invalid_pattern"], "events dropped: invalid pattern"),
        ("NEVENTS", ce.counts["n_calibrated"], "calibrated X-ray events"),
    ]
    for i, (code, name) in enumerate(calibration_files, start=1):
        cards.append((f"CALFIL{i:02d}", name[:60], f"{code.lower()} calibration file"))
    for k, v, c in cards:
        h.header[k] = (v, c)
    gaps = merged.gaps
    gap_h = _columns_hdu(
        {
            "START": ("D", np.array([g[0] for g in gaps], dtype=float), "s"),
            "STOP": ("D", np.array([g[1] for g in gaps], dtype=float), "s"),
            "CAUSE": ("12A", np.array([g[2] for g in gaps], dtype="U12"), None),
        },
        "GAPS",
    )
    return FitsModel.from_hdus([_primary(instrument), h, _gti(merged.gti, instrument), gap_h])


def srclist_model(
    sources: Sequence[SourceRecord],
    instrument: InstrumentDefinition,
    *,
    bands_kev: Sequence[tuple[float, float]],
    exposure_s: float,
    n_candidates: int,
    ml_threshold: float,
    prior: bool,
    cards: Sequence[Card],
) -> FitsModel:
    """Return the source list: one row per source (sky and detector position, r90, counts).

    ``cards`` are copied into ``SRCLIST`` (pointing and removed-row counts of the events).
    """
    srcs = list(sources)
    nb = len(bands_kev)
    cols = {
        "RA": ("D", np.array([s.ra_deg for s in srcs]), "deg"),
        "DEC": ("D", np.array([s.dec_deg for s in srcs]), "deg"),
        "RADEC_ERR90": ("E", np.array([s.r90_arcsec for s in srcs]), "arcsec"),
        "X": ("E", np.array([s.x for s in srcs]), "pixel"),
        "Y": ("E", np.array([s.y for s in srcs]), "pixel"),
        "COUNTS": ("E", np.array([s.counts for s in srcs]), "count"),
        "COUNTS_ERR": ("E", np.array([s.counts_err for s in srcs]), "count"),
        "RATE": ("E", np.array([s.rate for s in srcs]), "count/s"),
        "RATE_ERR": ("E", np.array([s.rate_err for s in srcs]), "count/s"),
        "DET_ML": ("E", np.array([s.ml for s in srcs]), None),
        "BAND_COUNTS": (f"{nb}E", np.array([s.band_counts for s in srcs]).reshape(-1, nb), "count"),
        "BAND_COUNTS_ERR": (
            f"{nb}E",
            np.array([s.band_counts_err for s in srcs]).reshape(-1, nb),
            "count",
        ),
        "GROUP": ("J", np.array([s.group for s in srcs], dtype=np.int32), None),
        # 1-based row of the brighter source whose cross arm explains this one (0: none)
        "ARM_OF": ("J", np.array([s.arm_of for s in srcs], dtype=np.int32), None),
    }
    hdu = _columns_hdu(cols, "SRCLIST")
    hdu.header["EXPOSURE"] = (exposure_s, "[s] GTI exposure")
    hdu.header["NCAND"] = (n_candidates, "stage-1 candidates")
    hdu.header["MLTHRESH"] = (ml_threshold, "detection likelihood threshold")
    for i, (lo, hi) in enumerate(bands_kev, start=1):
        hdu.header[f"BAND{i}"] = (f"{lo}-{hi}", "[keV] band of BAND_COUNTS")
    hdu.header["PRIOR"] = (prior, "burst mode: ECLAIRs prior used")
    for k, v, c in cards:
        hdu.header[k] = (v, c)
    return FitsModel.from_hdus([_primary(instrument), hdu])


def rmf_model(
    e_lo: NDArray[np.float64],
    e_hi: NDArray[np.float64],
    sigma_kev: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    instrument: InstrumentDefinition,
) -> FitsModel:
    """Return the RMF: Gaussian redistribution of ``sigma_kev(E)`` onto the PI channels."""
    hdus = rmf_hdu(
        e_lo, e_hi, int(instrument.get("channels.n_channels")),
        float(instrument.get("channels.channel_width_kev")), sigma_kev,
        telescope=instrument.telescope, instrument=instrument.instrument,
    )  # fmt: skip
    return FitsModel.from_hdus([_primary(instrument), *hdus])


def arf_model(
    e_lo: NDArray[np.float64],
    e_hi: NDArray[np.float64],
    area_cm2: NDArray[np.float64],
    psf_fraction: float,
    instrument: InstrumentDefinition,
) -> FitsModel:
    """Return an ARF: effective area times the PSF fraction inside the extraction circle."""
    hdu = arf_hdu(e_lo, e_hi, area_cm2, telescope=instrument.telescope,
                  instrument=instrument.instrument, psf_fraction=psf_fraction)  # fmt: skip
    return FitsModel.from_hdus([_primary(instrument), hdu])


def spectrum_model(
    pi: NDArray[np.int64],
    in_region: NDArray[np.bool_],
    exposure_s: float,
    gti: NDArray[np.float64],
    instrument: InstrumentDefinition,
    *,
    respfile: str,
    ancrfile: str,
) -> FitsModel:
    """Return the PHA type I spectrum of the events in a source's extraction region."""
    hdu = source_spectrum(
        pi, in_region, int(instrument.get("channels.n_channels")), exposure_s,
        telescope=instrument.telescope, instrument=instrument.instrument, respfile=respfile,
        ancrfile=ancrfile, timeref=time_reference(instrument), tstart=float(gti[0, 0]),
        tstop=float(gti[-1, 1]),
    )  # fmt: skip
    return FitsModel.from_hdus([_primary(instrument), hdu])


def lightcurve_model(
    lc: SourceLightCurve,
    gti: NDArray[np.float64],
    instrument: InstrumentDefinition,
    *,
    ra_deg: float,
    dec_deg: float,
) -> FitsModel:
    """Return a source light curve: OGIP ``RATE`` (with the source position) and ``GTI``."""
    rate = lightcurve_hdu(
        lc.binned, telescope=instrument.telescope, instrument=instrument.instrument,
        extra=[("RA_OBJ", ra_deg, "[deg]"), ("DEC_OBJ", dec_deg, "[deg]")],
    )  # fmt: skip
    return FitsModel.from_hdus([_primary(instrument), rate, _gti(gti, instrument)])
