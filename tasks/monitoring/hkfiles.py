"""Read housekeeping files (FITS or JSON) into per-parameter time series.

The reading side of ingestion (the watcher and ``svomflow hk ingest`` call it before storing
the samples); every problem is an :class:`~svomflow.errors.InputDataError` naming the file.

Accepted forms
--------------
FITS, first binary table with a ``TIME`` column (seconds from ``MJDREFI``+``MJDREFF`` or
``MJDREF``, ``TIMESYS`` ``UTC`` or ``TT``; the OGIP time keywords) and ``INSTRUME`` in its
header or the primary header; then either

* *wide*: one numeric column per parameter (the column name is the parameter), or
* *long*: columns ``PARAMETER`` (name) and ``VALUE``, one sample per row.

JSON, an object with ``instrument`` and either

* ``samples``: a list of records ``{"time": ISO 8601 UTC or unix s, "<PARAM>": value, ...}``, or
* ``time`` (list) and ``parameters`` (``{"<PARAM>": [values]}``).

``null`` / NaN values are missing samples.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError

__all__ = ["HkColumn", "HkFileData", "read_hk_file"]

UNIX_MJD = 40587.0
TT_MINUS_UTC_S = 69.184  # TAI-UTC = 37 s since 2017 + TT-TAI = 32.184 s


@dataclass(frozen=True)
class HkColumn:
    """One parameter's samples in a file (unix seconds UTC, values; NaN = missing)."""

    name: str
    times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class HkFileData:
    """The housekeeping read from one file."""

    instrument: str
    columns: tuple[HkColumn, ...]
    source: str

    @property
    def n_samples(self) -> int:
        """Return the number of (finite) samples over all parameters."""
        return sum(int(np.isfinite(c.values).sum()) for c in self.columns)


def read_hk_file(path: str | Path, known_instruments: tuple[str, ...] = ()) -> HkFileData:
    """Read a housekeeping file (``.fits``/``.fit``/``.fits.gz`` or ``.json``).

    ``known_instruments`` (upper case), when given, refuses files of other instruments.
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".json"):
        data = _read_json(p)
    elif name.endswith((".fits", ".fit", ".fits.gz", ".fts")):
        data = _read_fits(p)
    else:
        raise InputDataError(f"{p}: not a housekeeping file (expected .fits or .json)")
    if known_instruments and data.instrument not in known_instruments:
        raise InputDataError(
            f"{p}: instrument {data.instrument!r} has no housekeeping definitions "
            f"(known: {', '.join(known_instruments)})"
        )
    if not data.columns:
        raise InputDataError(f"{p}: no housekeeping parameter in the file")
    return data


def _unix_from_iso(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise InputDataError(f"{where}: time {value!r} is neither ISO 8601 nor unix seconds")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputDataError(f"{where}: time {value!r} is not ISO 8601") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _number(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputDataError(f"{where}: value {value!r} is not a number")
    return float(value)


def _read_json(p: Path) -> HkFileData:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputDataError(f"{p}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("instrument"), str):
        raise InputDataError(f"{p}: JSON housekeeping needs an object with an 'instrument'")
    instrument = doc["instrument"].strip().upper()
    series: dict[str, tuple[list[float], list[float]]] = {}
    if isinstance(doc.get("samples"), list):
        for i, rec in enumerate(doc["samples"]):
            where = f"{p} samples[{i}]"
            if not isinstance(rec, dict) or "time" not in rec:
                raise InputDataError(f"{where}: a sample needs a 'time'")
            t = _unix_from_iso(rec["time"], where)
            for key, value in rec.items():
                if key == "time":
                    continue
                ts, vs = series.setdefault(str(key), ([], []))
                ts.append(t)
                vs.append(_number(value, f"{where}.{key}"))
    elif isinstance(doc.get("time"), list) and isinstance(doc.get("parameters"), dict):
        times = [_unix_from_iso(x, f"{p} time[{i}]") for i, x in enumerate(doc["time"])]
        for key, values in doc["parameters"].items():
            if not isinstance(values, list) or len(values) != len(times):
                raise InputDataError(f"{p}: parameter {key} does not have one value per time")
            series[str(key)] = (
                times,
                [_number(v, f"{p} {key}[{i}]") for i, v in enumerate(values)],
            )
    else:
        raise InputDataError(f"{p}: JSON housekeeping needs 'samples' or 'time' + 'parameters'")
    columns = tuple(
        HkColumn(name, np.asarray(ts, dtype=np.float64), np.asarray(vs, dtype=np.float64))
        for name, (ts, vs) in series.items()
    )
    return HkFileData(instrument, columns, str(p))


def _time_offset(header: fits.Header, p: Path) -> float:
    """Unix seconds of TIME = 0 from the OGIP time keywords."""
    if "MJDREFI" in header:
        mjdref = float(header["MJDREFI"]) + float(header.get("MJDREFF", 0.0))
    elif "MJDREF" in header:
        mjdref = float(header["MJDREF"])
    else:
        raise InputDataError(f"{p}: no MJDREFI/MJDREF keyword: the TIME column has no reference")
    unit = str(header.get("TIMEUNIT", "s")).strip().lower()
    if unit != "s":
        raise InputDataError(f"{p}: TIMEUNIT {unit!r} is not supported (seconds only)")
    offset = (mjdref - UNIX_MJD) * 86400.0 + float(header.get("TIMEZERO", 0.0))
    timesys = str(header.get("TIMESYS", "TT")).strip().upper()
    if timesys == "TT":
        offset -= TT_MINUS_UTC_S
    elif timesys != "UTC":
        raise InputDataError(f"{p}: TIMESYS {timesys!r} is not supported (UTC or TT)")
    return offset


def _read_fits(p: Path) -> HkFileData:
    try:
        with warnings.catch_warnings():
            # astropy warns (and reads on) about truncated or padded files: refuse them
            warnings.simplefilter("error")
            return _read_fits_table(p)
    except InputDataError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, Warning) as exc:
        raise InputDataError(f"{p}: not a readable FITS housekeeping file ({exc})") from None


def _read_fits_table(p: Path) -> HkFileData:
    """Read the first binary table (wide or long form) of a FITS file."""
    with fits.open(p, memmap=False) as hdul:
        table = next((h for h in hdul if isinstance(h, fits.BinTableHDU)), None)
        if table is None:
            raise InputDataError(f"{p}: no binary table in the FITS file")
        header = table.header
        instrument = str(header.get("INSTRUME") or hdul[0].header.get("INSTRUME") or "")
        if not instrument.strip():
            raise InputDataError(f"{p}: no INSTRUME keyword")
        data = table.data
        names = [n.upper() for n in (data.columns.names if data is not None else [])]
        if "TIME" not in names:
            raise InputDataError(f"{p}: the table has no TIME column")
        t = np.asarray(data["TIME"], dtype=np.float64) + _time_offset(header, p)
        columns: list[HkColumn] = []
        if "PARAMETER" in names and "VALUE" in names:
            params = np.char.strip(np.asarray(data["PARAMETER"]).astype(str))
            values = np.asarray(data["VALUE"], dtype=np.float64)
            for name in dict.fromkeys(params.tolist()):
                sel = params == name
                columns.append(HkColumn(str(name), t[sel], values[sel]))
        else:
            for col in data.columns:
                if col.name.upper() == "TIME":
                    continue
                arr = np.asarray(data[col.name])
                if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.number):
                    raise InputDataError(f"{p}: column {col.name} is not one number per row")
                columns.append(HkColumn(col.name, t, arr.astype(np.float64)))
        # read every column before the file closes
        return HkFileData(instrument.strip().upper(), tuple(columns), str(p))
