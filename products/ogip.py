"""OGIP/HEASARC FITS writers and readers for light curves, GTIs, EBOUNDS and PHA spectra.

Conventions followed: OGIP/93-003 (light curves: ``TIME``/``RATE``/``ERROR``,
``HDUCLASS='OGIP'``, ``HDUCLAS1='LIGHTCURVE'``), OGIP/92-007 (PHA type I and II),
CAL/GEN/92-002 (EBOUNDS) and the time keywords ``MJDREFI``/``MJDREFF``, ``TIMESYS``,
``TIMEUNIT``, ``TSTART``/``TSTOP``, ``TIMEZERO``. Every file is written atomically.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from numpy.typing import ArrayLike
from svomflow import __version__
from svomflow.atomic import atomic_path
from svomflow.errors import InputDataError

__all__ = [
    "MALFORMED_FILE_ERRORS",
    "LightCurve",
    "TimeReference",
    "check_fits_sizes",
    "ebounds_hdu",
    "gti_hdu",
    "lightcurve_hdu",
    "pha_type1_hdu",
    "pha_type2_hdu",
    "primary_hdu",
    "read_gti",
    "read_lightcurve",
    "reading_file",
    "rsp_hdus",
    "write_hdulist",
    "write_rsp",
]


#: What astropy, numpy and gzip raise on a truncated, corrupt or mistyped file.
MALFORMED_FILE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    # a flipped byte in a card astropy must parse (TFORMn, EXTNAME...) raises on access
    VerifyError,
    # an extension astropy could not parse is a bare _ValidHDU/_CorruptedHDU (no .data), and
    # an image HDU where a table belongs has no .columns: the file is damaged, not the code
    AttributeError,
)


_BLOCK = 2880
#: Headers longer than this many blocks are refused (a flipped END card would scan the file).
_MAX_HEADER_BLOCKS = 2000
#: The FITS standard allows at most 999 axes.
_MAX_NAXIS = 999


def _card_int(card: bytes) -> int | None:
    """Return the integer value of a header card, or None when it is not an integer."""
    text = card[10:80].split(b"/", 1)[0].strip()
    try:
        return int(text)
    except ValueError:
        return None


def check_fits_sizes(path: str | Path) -> None:
    """Refuse a plain FITS file whose headers declare negative or impossible sizes.

    astropy trusts NAXISn, PCOUNT and GCOUNT to find the next HDU: a negative NAXIS2 makes it
    step back and read the same header for ever. This walks the headers first (compressed
    files are skipped: their sizes are checked by the decompressor).

    Parameters
    ----------
    path : str or Path
        The file to check.

    Raises
    ------
    InputDataError
        When a size keyword is negative, not an integer, or points past the end of the file.
    """
    p = Path(path)
    size = p.stat().st_size
    with p.open("rb") as fh:
        if fh.read(6) != b"SIMPLE":
            return  # not plain FITS (gzip, text...): the reader's own checks apply
        offset = 0
        while offset < size:
            fh.seek(offset)
            keys: dict[bytes, int | None] = {}
            blocks = 0
            while blocks < _MAX_HEADER_BLOCKS:
                blocks += 1
                chunk = fh.read(_BLOCK)
                if len(chunk) < _BLOCK:
                    return  # truncated header: astropy reports it
                cards = [chunk[i : i + 80] for i in range(0, _BLOCK, 80)]
                for card in cards:
                    name = card[:8].rstrip()
                    if name in (b"BITPIX", b"NAXIS", b"PCOUNT", b"GCOUNT") or (
                        name.startswith(b"NAXIS") and name[5:].isdigit()
                    ):
                        keys.setdefault(name, _card_int(card))
                if any(card[:8] == b"END     " for card in cards):
                    break
            else:  # while without break: no END card
                raise InputDataError(
                    f"{p}: a header has no END card within {_MAX_HEADER_BLOCKS} blocks"
                )
            offset += blocks * _BLOCK + _data_size(p, keys)


def _data_size(p: Path, keys: dict[bytes, int | None]) -> int:
    """Return the padded data size of one HDU from its size keywords (checked)."""
    naxis = keys.get(b"NAXIS", 0)
    if naxis is not None and naxis > _MAX_NAXIS:
        # listing NAXIS1..NAXISn for NAXIS = 999999999999 took all the memory (calib-047)
        raise InputDataError(f"{p}: a header declares NAXIS = {naxis} (the FITS limit is 999)")
    bitpix = keys.get(b"BITPIX", 8)
    values = [keys.get(b"NAXIS%d" % i, 0) for i in range(1, (naxis or 0) + 1)]
    pcount, gcount = keys.get(b"PCOUNT", 0), keys.get(b"GCOUNT", 1)
    if any(v is None or v < 0 for v in (naxis, bitpix and abs(bitpix), pcount, gcount, *values)):
        raise InputDataError(
            f"{p}: a header declares a negative or non-integer size (NAXIS/PCOUNT/GCOUNT)"
        )
    if not values:
        return 0
    pixels = 1
    for v in values:
        pixels *= v or 0  # Python ints: no overflow on absurd sizes
    n = abs(bitpix or 8) // 8 * (gcount or 1) * ((pcount or 0) + pixels)
    return -(-n // _BLOCK) * _BLOCK


@contextmanager
def reading_file(path: str | Path) -> Iterator[None]:
    """Turn the errors of a corrupt or malformed input file into one :class:`InputDataError`.

    Wrap only the code that opens and parses the user's file, so a genuine bug elsewhere
    keeps its traceback.

    Parameters
    ----------
    path : str or Path
        The file being read; the message names it.

    Raises
    ------
    InputDataError
        When reading raised one of :data:`MALFORMED_FILE_ERRORS`.
    """
    try:
        yield
    except MALFORMED_FILE_ERRORS as exc:
        if isinstance(exc, FileNotFoundError) and exc.filename not in (None, str(path)):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputDataError(
            f"{path}: unreadable or malformed file ({type(exc).__name__}: {reason})"
        ) from exc


@dataclass(frozen=True)
class TimeReference:
    """Mission time reference: ``MJDREF`` (split in integer and fraction), system and unit."""

    mjdref: float
    timesys: str = "TT"
    timeunit: str = "s"
    timeref: str = "LOCAL"

    def cards(self) -> list[tuple[str, Any, str]]:
        """Return the OGIP time keywords as (name, value, comment) triples."""
        mjdrefi = int(np.floor(self.mjdref))
        return [
            ("MJDREFI", mjdrefi, "integer part of the reference MJD"),
            ("MJDREFF", float(self.mjdref - mjdrefi), "fractional part of the reference MJD"),
            ("TIMESYS", self.timesys, "time system"),
            ("TIMEUNIT", self.timeunit, "unit of time keywords and columns"),
            ("TIMEREF", self.timeref, "reference frame for the times"),
        ]

    @classmethod
    def from_header(cls, header: fits.Header) -> TimeReference:
        """Read the reference from ``MJDREFI``+``MJDREFF`` or ``MJDREF`` (0 if absent)."""
        if "MJDREFI" in header:
            mjdref = float(header["MJDREFI"]) + float(header.get("MJDREFF", 0.0))
        else:
            mjdref = float(header.get("MJDREF", 0.0))
        return cls(
            mjdref=mjdref,
            timesys=str(header.get("TIMESYS", "TT")),
            timeunit=str(header.get("TIMEUNIT", "s")),
            timeref=str(header.get("TIMEREF", "LOCAL")),
        )


def _apply(header: fits.Header, cards: Sequence[tuple[str, Any, str]] | Mapping[str, Any]) -> None:
    items = cards.items() if isinstance(cards, Mapping) else cards
    for item in items:
        if isinstance(cards, Mapping):
            key, value = item  # type: ignore[misc]
            comment = ""
        else:
            key, value, comment = item  # type: ignore[misc]
        if value is None:
            continue
        header[key] = (value, comment)


def primary_hdu(
    *,
    telescope: str,
    instrument: str,
    extra: Sequence[tuple[str, Any, str]] | Mapping[str, Any] = (),
) -> fits.PrimaryHDU:
    """Return a primary HDU with mission identity, creator and date keywords."""
    hdu = fits.PrimaryHDU()
    _apply(
        hdu.header,
        [
            ("TELESCOP", telescope, "mission or telescope name"),
            ("INSTRUME", instrument, "instrument name"),
            ("CREATOR", f"svomflow {__version__}", "software that made this file"),
            ("ORIGIN", "svomflow", "origin of the file"),
        ],
    )
    _apply(hdu.header, extra)
    return hdu


def _mission_cards(telescope: str, instrument: str) -> list[tuple[str, Any, str]]:
    return [
        ("TELESCOP", telescope, "mission or telescope name"),
        ("INSTRUME", instrument, "instrument name"),
    ]


def gti_hdu(
    start: np.ndarray,
    stop: np.ndarray,
    *,
    timeref: TimeReference,
    telescope: str,
    instrument: str,
    extname: str = "GTI",
) -> fits.BinTableHDU:
    """Return an OGIP GTI extension (``START``/``STOP`` in mission seconds)."""
    start = np.asarray(start, dtype=np.float64)
    stop = np.asarray(stop, dtype=np.float64)
    if start.shape != stop.shape or np.any(stop < start):
        raise ValueError("GTI start and stop must have equal length and stop >= start")
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("START", "D", unit="s", array=start),
            fits.Column("STOP", "D", unit="s", array=stop),
        ],
        name=extname,
    )
    _apply(hdu.header, _mission_cards(telescope, instrument))
    _apply(
        hdu.header,
        [
            ("HDUCLASS", "OGIP", "format conforms to OGIP standard"),
            ("HDUCLAS1", "GTI", "good time intervals"),
            ("HDUCLAS2", "STANDARD", ""),
        ],
    )
    _apply(hdu.header, timeref.cards())
    return hdu


@dataclass
class LightCurve:
    """A binned light curve: bin start ``time``, ``timedel``, ``rate`` and ``error`` (counts/s).

    ``fracexp`` is the fraction of each bin inside the GTIs (1 for a full bin); ``gti`` is an
    (N, 2) array of good intervals. ``band_kev`` is the energy band the counts come from.
    """

    time: np.ndarray
    timedel: np.ndarray
    rate: np.ndarray
    error: np.ndarray
    fracexp: np.ndarray
    gti: np.ndarray
    timeref: TimeReference
    band_kev: tuple[float, float] | None = None
    timezero: float = 0.0
    header: dict[str, Any] | None = None


def lightcurve_hdu(
    lc: LightCurve,
    *,
    telescope: str,
    instrument: str,
    extname: str = "RATE",
    extra: Sequence[tuple[str, Any, str]] | Mapping[str, Any] = (),
) -> fits.BinTableHDU:
    """Return an OGIP RATE extension: TIME (bin start), TIMEDEL, RATE, ERROR, FRACEXP."""
    n = len(lc.time)
    for name in ("timedel", "rate", "error", "fracexp"):
        if len(getattr(lc, name)) != n:
            raise ValueError(
                f"light curve column {name} has {len(getattr(lc, name))} rows, not {n}"
            )
    cols = [
        fits.Column("TIME", "D", unit="s", array=np.asarray(lc.time, dtype=np.float64)),
        fits.Column("TIMEDEL", "D", unit="s", array=np.asarray(lc.timedel, dtype=np.float64)),
        fits.Column("RATE", "E", unit="count/s", array=np.asarray(lc.rate, dtype=np.float32)),
        fits.Column("ERROR", "E", unit="count/s", array=np.asarray(lc.error, dtype=np.float32)),
        fits.Column("FRACEXP", "E", array=np.asarray(lc.fracexp, dtype=np.float32)),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name=extname)
    h = hdu.header
    _apply(h, _mission_cards(telescope, instrument))
    _apply(
        h,
        [
            ("HDUCLASS", "OGIP", "format conforms to OGIP standard"),
            ("HDUCLAS1", "LIGHTCURVE", "light curve dataset"),
            ("HDUCLAS2", "TOTAL", "gross (not background-subtracted)"),
            ("HDUCLAS3", "RATE", "column RATE holds count rates"),
            ("TIMEZERO", float(lc.timezero), "zero-point of the TIME column"),
            ("TIMEPIXR", 0.0, "TIME is the bin start"),
        ],
    )
    _apply(h, lc.timeref.cards())
    if n:
        h["TSTART"] = (float(lc.time[0]), "start of the first bin")
        h["TSTOP"] = (float(lc.time[-1] + lc.timedel[-1]), "end of the last bin")
        dt = np.asarray(lc.timedel, dtype=np.float64)
        if np.allclose(dt, dt[0], rtol=1e-9, atol=0.0):
            # OGIP/93-003 gives the bin size as a keyword when uniform (stingray reads it there)
            h["TIMEDEL"] = (float(dt[0]), "[s] bin size")
    if lc.band_kev is not None:
        h["E_MIN"] = (float(lc.band_kev[0]), "[keV] lower energy of the band")
        h["E_MAX"] = (float(lc.band_kev[1]), "[keV] upper energy of the band")
        h["EUNIT"] = ("keV", "unit of E_MIN, E_MAX")
    _apply(h, lc.header or {})
    _apply(h, extra)
    return hdu


def read_lightcurve(path: str | Path, extname: str | int = 1) -> LightCurve:
    """Read an OGIP light curve (RATE/ERROR or COUNTS, TIMEDEL keyword or column)."""
    try:
        with fits.open(path) as hdul:
            hdu = hdul[extname]
            data = hdu.data
            h = hdu.header
            names = [c.upper() for c in data.columns.names]
            if "TIME" not in names:
                raise InputDataError(f"{path}: extension {extname} has no TIME column")
            time = np.array(data["TIME"], dtype=np.float64)
            n = len(time)
            if "TIMEDEL" in names:
                timedel = np.array(data["TIMEDEL"], dtype=np.float64)
            elif "TIMEDEL" in h:
                timedel = np.full(n, float(h["TIMEDEL"]))
            elif n > 1:
                timedel = np.full(n, float(np.median(np.diff(time))))
            else:
                raise InputDataError(f"{path}: cannot tell the bin width (no TIMEDEL)")
            pixr = float(h.get("TIMEPIXR", 0.0))
            start = time - pixr * timedel
            fracexp = (
                np.array(data["FRACEXP"], dtype=np.float64) if "FRACEXP" in names else np.ones(n)
            )
            if "RATE" in names:
                rate = np.array(data["RATE"], dtype=np.float64)
                if "ERROR" in names:
                    error = np.array(data["ERROR"], dtype=np.float64)
                else:
                    error = np.sqrt(np.maximum(rate, 0) / (timedel * np.maximum(fracexp, 1e-12)))
            elif "COUNTS" in names:
                counts = np.array(data["COUNTS"], dtype=np.float64)
                exposure = timedel * fracexp
                with np.errstate(divide="ignore", invalid="ignore"):
                    rate = np.where(exposure > 0, counts / exposure, 0.0)
                    error = np.where(exposure > 0, np.sqrt(counts) / exposure, 0.0)
            else:
                raise InputDataError(f"{path}: light curve has neither RATE nor COUNTS")
            if "GTI" in [x.name for x in hdul]:
                gti = read_gti(path)
            else:
                gti = np.array([[start[0], start[-1] + timedel[-1]]]) if n else np.zeros((0, 2))
            band = (float(h["E_MIN"]), float(h["E_MAX"])) if "E_MIN" in h and "E_MAX" in h else None
            return LightCurve(
                time=start,
                timedel=timedel,
                rate=rate,
                error=error,
                fracexp=fracexp,
                gti=gti,
                timeref=TimeReference.from_header(h),
                band_kev=band,
                timezero=float(h.get("TIMEZERO", 0.0)),
            )
    except (OSError, TypeError, KeyError) as exc:
        raise InputDataError(f"{path}: cannot read light curve: {exc}") from None


def read_gti(path: str | Path, extname: str = "GTI") -> np.ndarray:
    """Return the (N, 2) array of START/STOP from a GTI extension."""
    with fits.open(path) as hdul:
        data = hdul[extname].data
        return np.column_stack([np.asarray(data["START"], float), np.asarray(data["STOP"], float)])


def ebounds_hdu(
    e_min: np.ndarray,
    e_max: np.ndarray,
    *,
    telescope: str,
    instrument: str,
    first_channel: int = 0,
    detchans: int | None = None,
) -> fits.BinTableHDU:
    """Return an OGIP EBOUNDS extension (CHANNEL, E_MIN, E_MAX in keV)."""
    e_min = np.asarray(e_min, dtype=np.float32)
    e_max = np.asarray(e_max, dtype=np.float32)
    channel = np.arange(first_channel, first_channel + len(e_min), dtype=np.int32)
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("CHANNEL", "J", array=channel),
            fits.Column("E_MIN", "E", unit="keV", array=e_min),
            fits.Column("E_MAX", "E", unit="keV", array=e_max),
        ],
        name="EBOUNDS",
    )
    h = hdu.header
    _apply(h, _mission_cards(telescope, instrument))
    _apply(
        h,
        [
            ("HDUCLASS", "OGIP", ""),
            ("HDUCLAS1", "RESPONSE", ""),
            ("HDUCLAS2", "EBOUNDS", ""),
            ("HDUVERS", "1.2.0", ""),
            ("CHANTYPE", "PI", "channel type"),
            ("DETCHANS", int(detchans or len(e_min)), "number of channels"),
            ("TLMIN1", int(first_channel), "first channel number"),
            ("TLMAX1", int(first_channel + len(e_min) - 1), "last channel number"),
        ],
    )
    return hdu


def _pha_cards(
    *,
    exposure: float,
    backscal: float,
    areascal: float,
    poisserr: bool,
    chantype: str,
    detchans: int,
    first_channel: int,
    respfile: str | None,
    backfile: str | None,
    ancrfile: str | None,
) -> list[tuple[str, Any, str]]:
    return [
        ("HDUCLASS", "OGIP", "format conforms to OGIP standard"),
        ("HDUCLAS1", "SPECTRUM", "PHA dataset"),
        ("HDUVERS", "1.2.1", "version of the format"),
        ("CHANTYPE", chantype, "channel type"),
        ("DETCHANS", int(detchans), "total number of detector channels"),
        ("TLMIN1", int(first_channel), "first channel number"),
        ("TLMAX1", int(first_channel + detchans - 1), "last channel number"),
        ("EXPOSURE", float(exposure), "[s] exposure (dead time corrected)"),
        ("BACKSCAL", float(backscal), "background scaling factor"),
        ("AREASCAL", float(areascal), "area scaling factor"),
        ("CORRSCAL", 0.0, "correction scaling factor"),
        ("POISSERR", bool(poisserr), "Poisson errors apply"),
        ("SYS_ERR", 0.0, "no systematic error"),
        ("GROUPING", 0, "no grouping"),
        ("QUALITY", 0, "all channels good"),
        ("RESPFILE", respfile or "none", "response file"),
        ("BACKFILE", backfile or "none", "background file"),
        ("ANCRFILE", ancrfile or "none", "ancillary response file"),
        ("CORRFILE", "none", "correction file"),
    ]


def pha_type1_hdu(
    counts: np.ndarray,
    *,
    exposure: float,
    telescope: str,
    instrument: str,
    first_channel: int = 0,
    backscal: float = 1.0,
    areascal: float = 1.0,
    stat_err: np.ndarray | None = None,
    chantype: str = "PI",
    respfile: str | None = None,
    backfile: str | None = None,
    ancrfile: str | None = None,
    timeref: TimeReference | None = None,
    tstart: float | None = None,
    tstop: float | None = None,
) -> fits.BinTableHDU:
    """Return a PHA type I SPECTRUM extension (COUNTS; STAT_ERR if not Poisson)."""
    counts = np.asarray(counts)
    channel = np.arange(first_channel, first_channel + counts.size, dtype=np.int32)
    poisson = stat_err is None
    cols = [fits.Column("CHANNEL", "J", array=channel)]
    if poisson:
        cols.append(
            fits.Column("COUNTS", "J", unit="count", array=np.rint(counts).astype(np.int32))
        )
    else:
        cols.append(fits.Column("COUNTS", "D", unit="count", array=counts.astype(np.float64)))
        cols.append(fits.Column("STAT_ERR", "D", unit="count", array=np.asarray(stat_err, float)))
    hdu = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    h = hdu.header
    _apply(h, _mission_cards(telescope, instrument))
    _apply(
        h,
        _pha_cards(
            exposure=exposure,
            backscal=backscal,
            areascal=areascal,
            poisserr=poisson,
            chantype=chantype,
            detchans=counts.size,
            first_channel=first_channel,
            respfile=respfile,
            backfile=backfile,
            ancrfile=ancrfile,
        ),
    )
    h["HDUCLAS2"] = ("TOTAL", "gross spectrum")
    h["HDUCLAS3"] = ("COUNT", "PHA data stored as counts")
    if timeref is not None:
        _apply(h, timeref.cards())
    if tstart is not None:
        h["TSTART"] = (float(tstart), "start of the accumulation")
    if tstop is not None:
        h["TSTOP"] = (float(tstop), "end of the accumulation")
    return hdu


def pha_type2_hdu(
    counts: np.ndarray,
    *,
    exposure: np.ndarray,
    tstart: np.ndarray,
    tstop: np.ndarray,
    telescope: str,
    instrument: str,
    timeref: TimeReference,
    first_channel: int = 0,
    backscal: float = 1.0,
    chantype: str = "PI",
    respfile: str | None = None,
    stat_err: np.ndarray | None = None,
) -> fits.BinTableHDU:
    """Return a PHA type II SPECTRUM extension: one row per time interval (as GBM CSPEC).

    With ``stat_err`` (same shape as ``counts``) the counts are stored as floats with a
    ``STAT_ERR`` column and ``POISSERR = F`` (e.g. a background-subtracted spectrum).
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError("PHA type II counts must be (n_spectra, n_channels)")
    nspec, nchan = counts.shape
    poisson = stat_err is None
    channel = np.tile(np.arange(first_channel, first_channel + nchan, dtype=np.int32), (nspec, 1))
    cols = [
        fits.Column("SPEC_NUM", "J", array=np.arange(1, nspec + 1, dtype=np.int32)),
        fits.Column("TSTART", "D", unit="s", array=np.asarray(tstart, float)),
        fits.Column("TSTOP", "D", unit="s", array=np.asarray(tstop, float)),
        fits.Column("CHANNEL", f"{nchan}J", array=channel),
        fits.Column("COUNTS", f"{nchan}J", unit="count", array=np.rint(counts).astype(np.int32))
        if poisson
        else fits.Column("COUNTS", f"{nchan}D", unit="count", array=counts.astype(np.float64)),
        fits.Column("EXPOSURE", "D", unit="s", array=np.asarray(exposure, float)),
    ]
    if not poisson:
        err = np.asarray(stat_err, dtype=np.float64)
        if err.shape != counts.shape:
            raise ValueError("PHA type II stat_err must have the shape of counts")
        cols.append(fits.Column("STAT_ERR", f"{nchan}D", unit="count", array=err))
    hdu = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    h = hdu.header
    _apply(h, _mission_cards(telescope, instrument))
    _apply(
        h,
        _pha_cards(
            exposure=float(np.sum(exposure)),
            backscal=backscal,
            areascal=1.0,
            poisserr=poisson,
            chantype=chantype,
            detchans=nchan,
            first_channel=first_channel,
            respfile=respfile,
            backfile=None,
            ancrfile=None,
        ),
    )
    h["HDUCLAS2"] = ("TOTAL", "gross spectra")
    h["HDUCLAS3"] = ("COUNT", "PHA data stored as counts")
    h["HDUCLAS4"] = ("TYPEII", "one spectrum per row")
    del h["EXPOSURE"]  # per-row column instead
    # TLMIN/TLMAX of the CHANNEL column (column 4 here)
    del h["TLMIN1"]
    del h["TLMAX1"]
    h["TLMIN4"] = (int(first_channel), "first channel number")
    h["TLMAX4"] = (int(first_channel + nchan - 1), "last channel number")
    _apply(h, timeref.cards())
    h["TSTART"] = (float(np.min(tstart)), "start of the first spectrum")
    h["TSTOP"] = (float(np.max(tstop)), "end of the last spectrum")
    return hdu


def write_hdulist(
    hdus: Sequence[fits.hdu.base.ExtensionHDU | fits.PrimaryHDU],
    path: str | Path,
    *,
    checksum: bool = True,
) -> Path:
    """Write HDUs to ``path`` atomically (with FITS CHECKSUM/DATASUM keywords by default)."""
    hdul = fits.HDUList(list(hdus))
    if not isinstance(hdul[0], fits.PrimaryHDU):
        raise ValueError("the first HDU must be a PrimaryHDU")
    with atomic_path(path) as tmp:
        hdul.writeto(tmp, checksum=checksum)
    return Path(path)


def rsp_hdus(
    e_lo: ArrayLike,
    e_hi: ArrayLike,
    matrix: ArrayLike,
    ebounds: ArrayLike,
    *,
    telescope: str,
    instrument: str,
    detector: str,
    direction_radec: tuple[float, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Build the OGIP RSP of one detector (``SPECRESP MATRIX`` + ``EBOUNDS``, CAL/GEN/92-002).

    Channels are numbered from 0 (``TLMIN`` of ``F_CHAN``, as in the EBOUNDS and the event
    PI column); each row stores one group covering every channel.
    """
    e_lo = np.asarray(e_lo, dtype=np.float32)
    e_hi = np.asarray(e_hi, dtype=np.float32)
    m = np.asarray(matrix, dtype=np.float32)
    eb = np.asarray(ebounds, dtype=np.float64)
    n_e, n_chan = m.shape
    if e_lo.size != n_e or eb.shape != (n_chan, 2):
        raise ValueError("matrix shape does not match the energy bins or the EBOUNDS")
    cols = [
        fits.Column("ENERG_LO", "E", unit="keV", array=e_lo),
        fits.Column("ENERG_HI", "E", unit="keV", array=e_hi),
        fits.Column("N_GRP", "I", array=np.ones(n_e, dtype=np.int16)),
        fits.Column("F_CHAN", "1J", array=np.zeros(n_e, dtype=np.int32)),
        fits.Column("N_CHAN", "1J", array=np.full(n_e, n_chan, dtype=np.int32)),
        fits.Column("MATRIX", f"{n_chan}E", unit="cm**2", array=m),
    ]
    mat = fits.BinTableHDU.from_columns(cols, name="SPECRESP MATRIX")
    h = mat.header
    cards = [
        ("TELESCOP", telescope, "mission"),
        ("INSTRUME", instrument, "instrument"),
        ("DETNAM", detector, "detector"),
        ("FILTER", "NONE", ""),
        ("CHANTYPE", "PI", "channel type"),
        ("DETCHANS", n_chan, "number of channels"),
        ("LO_THRES", 0.0, "lower threshold of stored matrix values"),
        ("HDUCLASS", "OGIP", ""),
        ("HDUCLAS1", "RESPONSE", ""),
        ("HDUCLAS2", "RSP_MATRIX", ""),
        ("HDUCLAS3", "FULL", "matrix includes the effective area"),
        ("HDUVERS", "1.3.0", ""),
        ("TLMIN4", 0, "first channel number"),
        ("TLMAX4", n_chan - 1, "last channel number"),
    ]
    if direction_radec is not None:
        cards += [
            ("SRC_RA", float(direction_radec[0]), "source RA of the response (deg)"),
            ("SRC_DEC", float(direction_radec[1]), "source Dec of the response (deg)"),
        ]
    for key, value, comment in cards + [(k, v, "") for k, v in (extra or {}).items()]:
        h[key] = (value, comment)
    ebh = ebounds_hdu(eb[:, 0], eb[:, 1], telescope=telescope, instrument=instrument)
    ebh.header["DETNAM"] = detector
    prim = primary_hdu(telescope=telescope, instrument=instrument)
    return [prim, mat, ebh]


def write_rsp(
    path: str | Path,
    e_lo: ArrayLike,
    e_hi: ArrayLike,
    matrix: ArrayLike,
    ebounds: ArrayLike,
    *,
    telescope: str,
    instrument: str,
    detector: str,
    direction_radec: tuple[float, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write an OGIP RSP file of one detector (see :func:`rsp_hdus`)."""
    hdus = rsp_hdus(
        e_lo,
        e_hi,
        matrix,
        ebounds,
        telescope=telescope,
        instrument=instrument,
        detector=detector,
        direction_radec=direction_radec,
        extra=extra,
    )
    return write_hdulist(hdus, path)
