"""Readers for OGIP spectral files: PHA type I/II, background, RMF, ARF, RSP and multi-matrix RSP2.

Conventions followed (OGIP/92-007 for PHA, CAL/GEN/92-002 for responses):

* A PHA file is type I (one spectrum, ``COUNTS``/``RATE`` scalar columns) or type II (one
  spectrum per row, vector columns). A row of a type II file is chosen with ``row=`` (1-based,
  as XSPEC's ``file.pha{2}``), or with the ``{n}`` suffix of the file name.
* Per-spectrum quantities (``EXPOSURE``, ``BACKSCAL``, ``AREASCAL``, ``QUALITY``,
  ``GROUPING``, ``STAT_ERR``, ``SYS_ERR``, ``BACKFILE``, ``RESPFILE``, ``ANCRFILE``) are read
  from a column when there is one, else from the header keyword.
* The auxiliary files named in the header are resolved as XSPEC and sherpa do: the name as
  given, else relative to the PHA file's folder, else its base name in that folder.
* In a response matrix the first channel number is ``TLMIN`` of the ``F_CHAN`` column
  (0 or 1; 1 when absent, the OGIP default). Matrix rows hold the non-zero elements of each
  channel group one after the other, in variable-length or fixed-width columns.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.products.ogip import reading_file

__all__ = [
    "AncillaryResponse",
    "PhaSpectrum",
    "Response",
    "combine_responses",
    "read_arf",
    "read_pha",
    "read_response",
    "read_response_set",
    "resolve_auxiliary",
    "select_response",
    "split_row_spec",
]

log = logging.getLogger(__name__)

_NONE_NAMES = {"", "none", "None", "NONE"}
_ROW_SPEC = re.compile(r"^(?P<path>.*?)\{(?P<row>\d+)\}$")


def split_row_spec(name: str | Path) -> tuple[str, int | None]:
    """Split XSPEC's ``file.pha{3}`` row suffix off a file name (row is 1-based)."""
    text = str(name).strip()
    match = _ROW_SPEC.match(text)
    if match:
        return match.group("path"), int(match.group("row"))
    return text, None


def resolve_auxiliary(name: str | None, pha_path: Path) -> tuple[Path, int | None] | None:
    """Resolve a BACKFILE/RESPFILE/ANCRFILE value relative to the PHA file, as XSPEC does.

    Returns ``None`` when the header says there is no such file (``NONE`` or empty); raises
    nothing when the file is missing: the caller decides (see :func:`read_pha`).
    """
    if name is None:
        return None
    text, row = split_row_spec(str(name))
    if text.strip() in _NONE_NAMES:
        return None
    given = Path(text.strip())
    folder = pha_path.parent
    for candidate in (given, folder / given, folder / given.name):
        if candidate.is_file():
            return candidate, row
    return folder / given.name, row


@dataclass
class PhaSpectrum:
    """One PHA spectrum (source or background) in counts, with its per-channel metadata.

    Attributes
    ----------
    counts : counts per channel (a ``RATE`` column is multiplied by ``exposure``).
    stat_err : statistical error in counts, or ``None`` (Poisson errors).
    sys_err : fractional systematic error per channel (zeros when absent).
    quality : per-channel quality flags (0 good).
    grouping : per-channel grouping flags (1 starts a group, -1 continues it).
    backscal, areascal : per-channel arrays (a keyword value is broadcast).
    poisserr : whether Poisson errors apply (``POISSERR``; false when ``STAT_ERR`` is given
        and ``POISSERR`` is absent).
    """

    path: Path
    row: int | None
    channel: np.ndarray
    counts: np.ndarray
    stat_err: np.ndarray | None
    sys_err: np.ndarray
    quality: np.ndarray
    grouping: np.ndarray
    exposure: float
    backscal: np.ndarray
    areascal: np.ndarray
    poisserr: bool
    backfile: str | None = None
    respfile: str | None = None
    ancrfile: str | None = None
    tstart: float | None = None
    tstop: float | None = None
    is_background: bool = False
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(self.counts.size)

    @property
    def label(self) -> str:
        """File name with the row suffix, for messages."""
        return f"{self.path}{{{self.row}}}" if self.row is not None else str(self.path)

    @property
    def integer_counts(self) -> bool:
        """Whether every channel holds a whole number of counts (RATE x EXPOSURE within rounding).

        A spectrum of integer counts is Poisson whatever its ``STAT_ERR``/``POISSERR`` say
        (CIAO and many tools write both); a mask-weighted one is not.
        """
        c = np.asarray(self.counts, dtype=float)
        return bool(np.all(np.abs(c - np.round(c)) <= 1e-6 * np.maximum(1.0, np.abs(c))))

    @property
    def telapse(self) -> float | None:
        """Elapsed time of the accumulation (``tstop - tstart``) when known."""
        if self.tstart is None or self.tstop is None:
            return None
        return float(self.tstop - self.tstart)


def _spectrum_hdu(hdul: fits.HDUList, path: Path) -> fits.BinTableHDU:
    for hdu in hdul[1:]:
        if not isinstance(hdu, fits.BinTableHDU):
            continue
        hdr = hdu.header
        if str(hdr.get("HDUCLAS1", "")).strip().upper() == "SPECTRUM":
            return hdu
        if str(hdr.get("EXTNAME", "")).strip().upper() == "SPECTRUM":
            return hdu
    raise InputDataError(f"{path}: no SPECTRUM extension (not an OGIP PHA file)")


def _value(data: Any, header: fits.Header, name: str, row: int, default: Any = None) -> Any:
    """Per-spectrum value: column (row ``row``) when present, else header keyword."""
    if data is not None and name in data.columns.names:
        return data[name][row]
    return header.get(name, default)


def _as_channel_array(value: Any, n: int, dtype: Any, default: float) -> np.ndarray:
    if value is None:
        return np.full(n, default, dtype=dtype)
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        return np.full(n, arr.item(), dtype=dtype)
    if arr.size != n:
        raise ValueError(f"array of length {arr.size}, expected {n}")
    return arr.copy()


def _check_pha_gti(p: Path, hdul: fits.HDUList) -> None:
    """Refuse a spectrum whose GTI extension has a non-finite or reversed interval.

    The fit uses EXPOSURE, not the GTI; but a GTI with START after STOP says the file was
    damaged after it was made, so its exposure and counts cannot be trusted either.
    """
    if "GTI" not in hdul or hdul["GTI"].data is None:
        return
    gti = hdul["GTI"].data
    start = np.asarray(gti["START"], dtype=float)
    stop = np.asarray(gti["STOP"], dtype=float)
    bad = ~(np.isfinite(start) & np.isfinite(stop) & (start <= stop))
    if bad.any():
        raise InputDataError(
            f"{p}: {int(bad.sum())} GTI row(s) with non-finite bounds or START after STOP "
            "(damaged file)"
        )


def read_pha(path: str | Path, row: int | None = None) -> PhaSpectrum:  # noqa: C901 - one pass over every OGIP keyword/column alternative
    """Read a PHA type I or II spectrum (source or background) into counts per channel.

    Parameters
    ----------
    path : file name; a ``{n}`` suffix selects row ``n`` (1-based) of a type II file.
    row : 1-based row of a type II file (overrides the suffix). Required when the file
        holds more than one spectrum.

    Raises
    ------
    InputDataError
        Missing/unreadable file, no SPECTRUM extension, a type II file without a row, a row
        out of range, inconsistent column lengths or an empty spectrum.
    """
    text, suffix_row = split_row_spec(path)
    p = Path(text)
    row = row if row is not None else suffix_row
    if not p.is_file():
        raise InputDataError(f"spectrum file not found: {p}")
    try:
        hdul = fits.open(p, memmap=False)
    except OSError as exc:
        raise InputDataError(f"{p}: cannot read as FITS ({exc})") from exc
    with reading_file(p), hdul:
        hdu = _spectrum_hdu(hdul, p)
        hdr = hdu.header
        data = hdu.data
        if data is None or len(data) == 0:
            raise InputDataError(f"{p}: the SPECTRUM extension has no rows (empty spectrum)")
        names = data.columns.names
        if "COUNTS" in names:
            col = "COUNTS"
        elif "RATE" in names:
            col = "RATE"
        else:
            raise InputDataError(f"{p}: SPECTRUM has neither COUNTS nor RATE column")
        type2 = np.ndim(data[col][0]) > 0
        if type2:
            nrows = len(data)
            if row is None:
                if nrows > 1:
                    raise InputDataError(
                        f"{p}: PHA type II file with {nrows} spectra; choose one with row= "
                        f"(or the {{n}} suffix, 1..{nrows})"
                    )
                row = 1
            if not 1 <= row <= nrows:
                raise InputDataError(f"{p}: row {row} out of range 1..{nrows}")
            idx = row - 1
            values = np.asarray(data[col][idx], dtype=float)
            src: Any = data
        else:
            if row not in (None, 1):
                raise InputDataError(f"{p}: PHA type I file has a single spectrum (row {row})")
            row = None
            idx = 0
            values = np.asarray(data[col], dtype=float)
            src = None  # per-channel columns are read whole below
        n = values.size
        if not np.all(np.isfinite(values)):
            bad = int(np.count_nonzero(~np.isfinite(values)))
            raise InputDataError(f"{p}: {col} holds {bad} NaN or infinite value(s)")
        if n == 0:
            raise InputDataError(f"{p}: empty spectrum (no channels)")

        def per_channel(name: str, dtype: Any, default: float) -> np.ndarray:
            if name in names:
                raw = data[name][idx] if type2 else data[name]
            else:
                raw = hdr.get(name, None)
            try:
                return _as_channel_array(raw, n, dtype, default)
            except ValueError as exc:
                raise InputDataError(f"{p}: column {name}: {exc}") from exc

        exposure = float(
            _value(src, hdr, "EXPOSURE", idx, 0.0) if type2 else hdr.get("EXPOSURE", 0)
        )
        if "EXPOSURE" in names and not type2:
            exposure = float(np.asarray(data["EXPOSURE"]).ravel()[0])
        if not np.isfinite(exposure) or exposure <= 0:
            raise InputDataError(f"{p}: EXPOSURE must be positive (got {exposure})")
        if col == "RATE":
            counts = values * exposure
        else:
            counts = values
        if "CHANNEL" in names:
            channel = np.asarray(data["CHANNEL"][idx] if type2 else data["CHANNEL"], dtype=np.int64)
            channel = np.broadcast_to(channel, (n,)).copy() if channel.ndim == 0 else channel
            # OGIP numbers channels in increasing order from TLMIN; a channel out of order
            # (a damaged CHANNEL cell) would pair counts with the wrong response row
            steps = np.flatnonzero(np.diff(channel) <= 0)
            if steps.size:
                i = int(steps[0]) + 1
                raise InputDataError(
                    f"{p}: CHANNEL is not increasing: row {i + 1} holds channel "
                    f"{int(channel[i])} after {int(channel[i - 1])}"
                )
        else:
            first = int(hdr.get("TLMIN1", 1)) if type2 else 1
            channel = np.arange(first, first + n, dtype=np.int64)
        stat_err = None
        has_stat_col = "STAT_ERR" in names
        poisserr = bool(hdr.get("POISSERR", not has_stat_col))
        if has_stat_col and not poisserr:
            stat_err = per_channel("STAT_ERR", float, 0.0)
            if col == "RATE":
                stat_err = stat_err * exposure
        elif not poisserr and "STAT_ERR" in hdr and float(hdr["STAT_ERR"]) > 0:
            stat_err = np.full(n, float(hdr["STAT_ERR"]))
        sys_err = per_channel("SYS_ERR", float, 0.0)
        quality = per_channel("QUALITY", np.int64, 0)
        grouping = per_channel("GROUPING", np.int64, 1)
        backscal = per_channel("BACKSCAL", float, 1.0)
        areascal = per_channel("AREASCAL", float, 1.0)

        def aux(name: str) -> str | None:
            v = _value(src, hdr, name, idx, None) if type2 else hdr.get(name)
            if v is None:
                return None
            v = str(v).strip()
            return None if v in _NONE_NAMES else v

        tstart = tstop = None
        if type2 and "TSTART" in names:
            tstart = float(data["TSTART"][idx])
            if "TELAPSE" in names:
                tstop = tstart + float(data["TELAPSE"][idx])
            elif "TSTOP" in names:
                tstop = float(data["TSTOP"][idx])
        elif type2 and "TIME" in names:
            tstart = float(data["TIME"][idx])
            if "ENDTIME" in names:
                tstop = float(data["ENDTIME"][idx])
        elif "TSTART" in hdr and "TSTOP" in hdr:
            tstart, tstop = float(hdr["TSTART"]), float(hdr["TSTOP"])
        if tstart is not None and tstop is not None and not tstart <= tstop:
            raise InputDataError(f"{p}: TSTART {tstart!r} is after TSTOP {tstop!r}")
        _check_pha_gti(p, hdul)
        hduclas2 = str(hdr.get("HDUCLAS2", "")).strip().upper()
        keep = {k: hdr.get(k) for k in ("TELESCOP", "INSTRUME", "DETNAM", "OBJECT", "TRIGTIME")}
    return PhaSpectrum(
        path=p,
        row=row,
        channel=channel,
        counts=counts,
        stat_err=stat_err,
        sys_err=sys_err,
        quality=quality,
        grouping=grouping,
        exposure=exposure,
        backscal=backscal,
        areascal=areascal,
        poisserr=poisserr,
        backfile=aux("BACKFILE"),
        respfile=aux("RESPFILE"),
        ancrfile=aux("ANCRFILE"),
        tstart=tstart,
        tstop=tstop,
        is_background=hduclas2 in {"BKG", "BACKGROUND"},
        header=keep,
    )


@dataclass
class Response:
    """A response matrix: ``matrix[i, c]`` maps photons in energy bin ``i`` to channel ``c``.

    For an RMF the matrix is the redistribution probability; with an ARF folded in (or for an
    RSP, which includes the effective area) it is in cm2 counts per photon.
    """

    energ_lo: np.ndarray
    energ_hi: np.ndarray
    matrix: np.ndarray
    e_min: np.ndarray
    e_max: np.ndarray
    first_channel: int
    path: Path
    has_area: bool
    tstart: float | None = None
    tstop: float | None = None
    arf_path: Path | None = None

    @property
    def n_channels(self) -> int:
        """Number of detector channels."""
        return int(self.matrix.shape[1])

    @property
    def n_energies(self) -> int:
        """Number of photon energy bins."""
        return int(self.matrix.shape[0])

    @property
    def label(self) -> str:
        """File name(s) for messages."""
        return f"{self.path}" + (f" + {self.arf_path}" if self.arf_path else "")

    def with_arf(self, arf: AncillaryResponse) -> Response:
        """Return this response with the ARF's effective area folded in (RMF x ARF)."""
        if arf.specresp.size != self.n_energies or not np.allclose(
            arf.energ_lo, self.energ_lo, rtol=1e-5, atol=1e-8
        ):
            raise InputDataError(
                f"ARF {arf.path} has {arf.specresp.size} energy bins that do not match the "
                f"{self.n_energies} of the response {self.path}"
            )
        return replace(
            self,
            matrix=self.matrix * arf.specresp[:, None],
            has_area=True,
            arf_path=arf.path,
        )


@dataclass
class AncillaryResponse:
    """An ARF: effective area (cm2) per photon energy bin."""

    energ_lo: np.ndarray
    energ_hi: np.ndarray
    specresp: np.ndarray
    path: Path


def _matrix_hdus(hdul: fits.HDUList) -> list[fits.BinTableHDU]:
    out = []
    for hdu in hdul[1:]:
        if not isinstance(hdu, fits.BinTableHDU):
            continue
        name = str(hdu.header.get("EXTNAME", "")).strip().upper()
        clas2 = str(hdu.header.get("HDUCLAS2", "")).strip().upper()
        if name in {"MATRIX", "SPECRESP MATRIX"} or clas2 == "RSP_MATRIX":
            out.append(hdu)
    return out


def _ebounds(hdul: fits.HDUList, path: Path) -> tuple[np.ndarray, np.ndarray]:
    for hdu in hdul[1:]:
        name = str(hdu.header.get("EXTNAME", "")).strip().upper()
        if name == "EBOUNDS" or str(hdu.header.get("HDUCLAS2", "")).strip().upper() == "EBOUNDS":
            return (
                np.asarray(hdu.data["E_MIN"], dtype=float),
                np.asarray(hdu.data["E_MAX"], dtype=float),
            )
    raise InputDataError(f"{path}: no EBOUNDS extension")


def _fill_matrix(hdu: fits.BinTableHDU, n_chan: int, path: Path) -> tuple[np.ndarray, int]:
    data = hdu.data
    cols = data.columns.names
    fidx = cols.index("F_CHAN") + 1
    tlmin = hdu.header.get(f"TLMIN{fidx}")
    first = int(tlmin) if tlmin is not None else 1
    n_e = len(data)
    out = np.zeros((n_e, n_chan), dtype=np.float64)
    n_grp = np.asarray(data["N_GRP"]).astype(np.int64).ravel()
    f_chan = data["F_CHAN"]
    n_chan_col = data["N_CHAN"]
    mat = data["MATRIX"]
    for i in range(n_e):
        ng = int(n_grp[i])
        if ng == 0:
            continue
        fc = np.atleast_1d(np.asarray(f_chan[i], dtype=np.int64))[:ng]
        nc = np.atleast_1d(np.asarray(n_chan_col[i], dtype=np.int64))[:ng]
        row = np.asarray(mat[i], dtype=np.float64).ravel()
        pos = 0
        for g in range(ng):
            start = int(fc[g]) - first
            width = int(nc[g])
            if start < 0 or start + width > n_chan or pos + width > row.size:
                raise InputDataError(
                    f"{path}: matrix row {i + 1} group {g + 1} (F_CHAN={fc[g]}, N_CHAN={width}) "
                    f"falls outside the {n_chan} channels starting at {first} (TLMIN of F_CHAN)"
                )
            out[i, start : start + width] = row[pos : pos + width]
            pos += width
    return out, first


def _read_matrix(hdul: fits.HDUList, hdu: fits.BinTableHDU, path: Path) -> Response:
    e_min, e_max = _ebounds(hdul, path)
    n_chan = int(hdu.header.get("DETCHANS", e_min.size))
    if n_chan != e_min.size:
        raise InputDataError(f"{path}: DETCHANS={n_chan} but EBOUNDS has {e_min.size} channels")
    matrix, first = _fill_matrix(hdu, n_chan, path)
    energies = np.concatenate(
        [
            e_min,
            e_max,
            np.asarray(hdu.data["ENERG_LO"], float),
            np.asarray(hdu.data["ENERG_HI"], float),
        ]
    )
    if not (np.all(np.isfinite(matrix)) and np.all(np.isfinite(energies))):
        raise InputDataError(
            f"{path}: the response matrix or its energy grid holds NaN or infinite values"
        )
    if matrix.size == 0 or np.any(matrix < 0):
        raise InputDataError(f"{path}: the response matrix is empty or has negative entries")
    name = str(hdu.header.get("EXTNAME", "")).strip().upper()
    clas3 = str(hdu.header.get("HDUCLAS3", "")).strip().upper()
    has_area = name == "SPECRESP MATRIX" or clas3 == "FULL"
    tstart = hdu.header.get("TSTART")
    tstop = hdu.header.get("TSTOP")
    return Response(
        energ_lo=np.asarray(hdu.data["ENERG_LO"], dtype=float),
        energ_hi=np.asarray(hdu.data["ENERG_HI"], dtype=float),
        matrix=matrix,
        e_min=e_min,
        e_max=e_max,
        first_channel=first,
        path=path,
        has_area=has_area,
        tstart=float(tstart) if tstart is not None else None,
        tstop=float(tstop) if tstop is not None else None,
    )


def read_response_set(path: str | Path) -> list[Response]:
    """Read every matrix of an RMF/RSP/RSP2 file (one per ``SPECRESP MATRIX`` extension)."""
    text, _ = split_row_spec(path)
    p = Path(text)
    if not p.is_file():
        raise InputDataError(f"response file not found: {p}")
    try:
        hdul = fits.open(p, memmap=False)
    except OSError as exc:
        raise InputDataError(f"{p}: cannot read as FITS ({exc})") from exc
    with reading_file(p), hdul:
        hdus = _matrix_hdus(hdul)
        if not hdus:
            raise InputDataError(f"{p}: no MATRIX or SPECRESP MATRIX extension")
        return [_read_matrix(hdul, h, p) for h in hdus]


def read_response(path: str | Path, extension: int | None = None) -> Response:
    """Read one response matrix (RMF or RSP). ``{n}`` or ``extension`` picks the n-th matrix.

    A multi-matrix RSP2 without a choice raises: use :func:`read_response_set` and
    :func:`select_response` to pick or weight the matrix covering a time interval.
    """
    text, suffix = split_row_spec(path)
    which = extension if extension is not None else suffix
    responses = read_response_set(text)
    if which is None:
        if len(responses) > 1:
            raise InputDataError(
                f"{text}: {len(responses)} response matrices (RSP2); choose one with "
                f"{{n}} or select by time interval"
            )
        return responses[0]
    if not 1 <= which <= len(responses):
        raise InputDataError(f"{text}: matrix {which} out of range 1..{len(responses)}")
    return responses[which - 1]


def _check_arf(arf: AncillaryResponse) -> None:
    """Refuse an ARF that is empty, not finite, negative or without increasing energies."""
    p = arf.path
    if arf.specresp.size == 0:
        raise InputDataError(f"{p}: the SPECRESP extension has no rows (empty ARF)")
    values = np.concatenate([arf.energ_lo, arf.energ_hi, arf.specresp])
    if not np.all(np.isfinite(values)):
        raise InputDataError(f"{p}: the ARF holds NaN or infinite values")
    if (
        np.any(arf.specresp < 0)
        or np.any(arf.energ_hi <= arf.energ_lo)
        or np.any(np.diff(arf.energ_lo) <= 0)
    ):
        raise InputDataError(f"{p}: the ARF has negative areas or energy bins that do not increase")


def read_arf(path: str | Path) -> AncillaryResponse:
    """Read an ARF (``SPECRESP`` extension: ENERG_LO, ENERG_HI, SPECRESP in cm2)."""
    p = Path(split_row_spec(path)[0])
    if not p.is_file():
        raise InputDataError(f"ARF file not found: {p}")
    with reading_file(p), fits.open(p, memmap=False) as hdul:
        for hdu in hdul[1:]:
            name = str(hdu.header.get("EXTNAME", "")).strip().upper()
            if name == "SPECRESP" or (
                str(hdu.header.get("HDUCLAS2", "")).strip().upper() == "SPECRESP"
                and "SPECRESP" in hdu.columns.names
            ):
                d = hdu.data
                arf = AncillaryResponse(
                    energ_lo=np.asarray(d["ENERG_LO"], dtype=float),
                    energ_hi=np.asarray(d["ENERG_HI"], dtype=float),
                    specresp=np.asarray(d["SPECRESP"], dtype=float),
                    path=p,
                )
                _check_arf(arf)
                return arf
    raise InputDataError(f"{p}: no SPECRESP extension (not an ARF)")


def combine_responses(responses: Sequence[Response], weights: Sequence[float]) -> Response:
    """Weighted mean of matrices sharing the same energy and channel grids."""
    w = np.asarray(weights, dtype=float)
    if w.size != len(responses) or np.any(w < 0) or w.sum() <= 0:
        raise InputDataError("response weights must be non-negative with a positive sum")
    w = w / w.sum()
    first = responses[0]
    matrix = np.zeros_like(first.matrix)
    for r, wi in zip(responses, w, strict=True):
        if r.matrix.shape != first.matrix.shape:
            raise InputDataError(f"{r.path}: matrices of different shapes cannot be combined")
        matrix += wi * r.matrix
    starts = [r.tstart for r in responses if r.tstart is not None]
    stops = [r.tstop for r in responses if r.tstop is not None]
    return replace(
        first,
        matrix=matrix,
        tstart=min(starts) if starts else None,
        tstop=max(stops) if stops else None,
    )


def _validity(responses: Sequence[Response]) -> list[tuple[float, float]]:
    """Return the validity of each matrix: from its TSTART to the next matrix's TSTART (GBM RSP2)."""
    starts = [r.tstart for r in responses]
    if any(s is None for s in starts):
        raise InputDataError(
            f"{responses[0].path}: matrices without TSTART cannot be selected by time"
        )
    out = []
    for k, r in enumerate(responses):
        lo = float(r.tstart)  # type: ignore[arg-type]
        if k + 1 < len(responses):
            hi = float(responses[k + 1].tstart)  # type: ignore[arg-type]
        else:
            hi = float(r.tstop) if r.tstop is not None else lo
        out.append((lo, max(hi, lo)))
    return out


def select_response(
    responses: Sequence[Response],
    tstart: float,
    tstop: float,
    method: str = "midpoint",
    rate_curve: tuple[np.ndarray, np.ndarray] | None = None,
) -> Response:
    """Choose or weight the matrices of an RSP2 file for the interval ``[tstart, tstop]``.

    Parameters
    ----------
    responses : matrices in time order (from :func:`read_response_set`).
    method : ``"midpoint"`` picks the matrix valid at the interval's midpoint; ``"time"``
        weights matrices by their overlap with the interval; ``"counts"`` weights them by the
        counts of ``rate_curve`` falling in each overlap (as GBM's rmfit does for bright
        bursts whose direction changes during the interval).
    rate_curve : ``(edges, counts)`` of a light curve, needed by ``"counts"``.

    Raises
    ------
    InputDataError
        When the matrices do not cover the interval (the message names the file).
    """
    if tstop <= tstart:
        raise InputDataError(f"empty time interval [{tstart}, {tstop}]")
    if len(responses) == 1 and responses[0].tstart is None:
        return responses[0]
    valid = _validity(responses)
    lo_all = valid[0][0]
    hi_all = max(v[1] for v in valid)
    # The last GBM matrix has TSTART == TSTOP: it stays valid after its start.
    open_end = valid[-1][1] <= valid[-1][0]
    if tstart < lo_all or (not open_end and tstop > hi_all):
        raise InputDataError(
            f"{responses[0].path}: the response matrices cover [{lo_all}, {hi_all}] which does "
            f"not contain the interval [{tstart}, {tstop}]"
        )
    bounds = [
        (lo, hi if (k + 1 < len(valid) or not open_end) else np.inf)
        for k, (lo, hi) in enumerate(valid)
    ]
    if method == "midpoint":
        mid = 0.5 * (tstart + tstop)
        for r, (lo, hi) in zip(responses, bounds, strict=True):
            if lo <= mid < hi:
                return r
        return responses[-1]
    if method == "time":
        weights = [max(0.0, min(hi, tstop) - max(lo, tstart)) for lo, hi in bounds]
    elif method == "counts":
        if rate_curve is None:
            raise InputDataError("method='counts' needs rate_curve=(edges, counts)")
        edges, counts = (np.asarray(a, dtype=float) for a in rate_curve)
        centres = 0.5 * (edges[:-1] + edges[1:])
        weights = []
        for lo, hi in bounds:
            sel = (centres >= max(lo, tstart)) & (centres < min(hi, tstop))
            weights.append(float(counts[sel].sum()))
        if sum(weights) <= 0:
            raise InputDataError("no counts of rate_curve fall in the interval")
    else:
        raise InputDataError(f"unknown response selection method {method!r}")
    return combine_responses(responses, weights)
