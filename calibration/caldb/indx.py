"""Write and read HEASARC calibration index files (``caldb.indx``, FITS ``CIF`` extension).

Column layout from OGIP memo CAL/GEN/92-008 (CIF format version 1992a), as in the indices
HEASARC distributes: ``TELESCOP`` 10A, ``INSTRUME`` 10A, ``DETNAM`` 20A, ``FILTER`` 10A,
``CAL_DEV`` 20A, ``CAL_DIR`` 70A, ``CAL_FILE`` 40A, ``CAL_CLAS`` 3A, ``CAL_DTYP`` 4A,
``CAL_CNAM`` 20A, ``CAL_CBD`` 9x70A, ``CAL_XNO`` I, ``CAL_VSD`` 10A (``YYYY-MM-DD``),
``CAL_VST`` 8A (``hh:mm:ss``), ``REF_TIME`` D (MJD of the validity start), ``CAL_QUAL`` I,
``CAL_DATE`` 8A (``dd/mm/yy``, date entered), ``CAL_DESC`` 70A. A value longer than its
standard width widens that column (CFITSIO readers follow ``TFORM``) rather than being cut.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
from svomflow.calibration.caldb.boundaries import MAX_BOUNDARIES, normalize_boundaries
from svomflow.calibration.caldb.entry import CaldbEntry, mjd_utc, to_utc

__all__ = ["CIF_COLUMNS", "read_indx", "write_indx"]

#: (name, standard width) of the string columns, in index order; None marks numeric ones.
CIF_COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("TELESCOP", 10),
    ("INSTRUME", 10),
    ("DETNAM", 20),
    ("FILTER", 10),
    ("CAL_DEV", 20),
    ("CAL_DIR", 70),
    ("CAL_FILE", 40),
    ("CAL_CLAS", 3),
    ("CAL_DTYP", 4),
    ("CAL_CNAM", 20),
    ("CAL_CBD", 70),
    ("CAL_XNO", None),
    ("CAL_VSD", 10),
    ("CAL_VST", 8),
    ("REF_TIME", None),
    ("CAL_QUAL", None),
    ("CAL_DATE", 8),
    ("CAL_DESC", 70),
)


def _rows(entries: Sequence[CaldbEntry]) -> dict[str, list[object]]:
    cols: dict[str, list[object]] = {name: [] for name, _ in CIF_COLUMNS}
    for e in entries:
        rel = PurePosixPath(e.relpath) if e.relpath else PurePosixPath(e.path.name)
        start = to_utc(e.valid_from)
        entered = e.registered_at or _dt.datetime.now(_dt.UTC)
        cbd = [b.to_string() for b in e.boundaries]
        cbd += ["NONE"] * (MAX_BOUNDARIES - len(cbd))
        cols["TELESCOP"].append(e.telescope)
        cols["INSTRUME"].append(e.instrument)
        cols["DETNAM"].append(e.detector)
        cols["FILTER"].append(e.filter)
        cols["CAL_DEV"].append("ONLINE")
        cols["CAL_DIR"].append(str(rel.parent) if str(rel.parent) != "." else "")
        cols["CAL_FILE"].append(rel.name)
        cols["CAL_CLAS"].append(e.cal_class)
        cols["CAL_DTYP"].append("DATA")
        cols["CAL_CNAM"].append(e.codename)
        cols["CAL_CBD"].append(cbd)
        cols["CAL_XNO"].append(e.extension)
        cols["CAL_VSD"].append(start.strftime("%Y-%m-%d"))
        cols["CAL_VST"].append(start.strftime("%H:%M:%S"))
        cols["REF_TIME"].append(mjd_utc(start))
        cols["CAL_QUAL"].append(e.quality)
        cols["CAL_DATE"].append(entered.strftime("%d/%m/%y"))
        cols["CAL_DESC"].append(e.description)
    return cols


def write_indx(
    path: str | os.PathLike[str], entries: Sequence[CaldbEntry], *, index_version: int | None = None
) -> Path:
    """Write ``entries`` as a HEASARC ``caldb.indx`` FITS file, atomically; return its path."""
    from astropy.io import fits
    from svomflow.atomic import atomic_write_with

    data = _rows(entries)
    columns = []
    for name, width in CIF_COLUMNS:
        values = data[name]
        if name == "CAL_CBD":
            assert width is not None  # CAL_CBD is a string column
            arr = np.array(values, dtype=f"U{width}").reshape(len(values), MAX_BOUNDARIES)
            columns.append(
                fits.Column(
                    name=name,
                    format=f"{width * MAX_BOUNDARIES}A",
                    dim=f"({width},{MAX_BOUNDARIES})",
                    array=arr,
                )
            )
        elif name in ("CAL_XNO", "CAL_QUAL"):
            columns.append(fits.Column(name=name, format="I", array=np.array(values, np.int16)))
        elif name == "REF_TIME":
            columns.append(fits.Column(name=name, format="D", array=np.array(values, np.float64)))
        else:
            assert width is not None
            w = max([width, *(len(str(v)) for v in values)])
            columns.append(fits.Column(name=name, format=f"{w}A", array=np.array(values, f"U{w}")))
    table = fits.BinTableHDU.from_columns(columns, name="CIF")
    hdr = table.header
    hdr["CIFVERSN"] = ("1992a", "Version of CIF format")
    hdr["HDUCLASS"] = ("OGIP", "format conforms to OGIP standard")
    hdr["HDUCLAS1"] = ("CALDB", "calibration database index")
    if index_version is not None:
        hdr["IDXVERS"] = (int(index_version), "svomflow CALDB index version")
    primary = fits.PrimaryHDU()
    primary.header["ORIGIN"] = ("svomflow", "written by svomflow.calibration.caldb")
    hdul = fits.HDUList([primary, table])
    return atomic_write_with(path, lambda tmp: hdul.writeto(tmp, checksum=True))


def read_indx(
    path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> list[CaldbEntry]:
    """Read a HEASARC ``caldb.indx`` into entries (``sha256`` unknown, ``id`` = row number).

    ``root`` is the CALDB root that ``CAL_DIR`` is relative to (default: the directory
    three levels above a ``data/<tel>/<instr>/caldb.indx``, else the index's own directory).
    """
    from astropy.io import fits

    path = Path(path)
    with fits.open(path, memmap=False) as hdul:
        table = hdul["CIF"].data
        rows = [{name: table[name][i] for name in table.columns.names} for i in range(len(table))]
        version = hdul["CIF"].header.get("IDXVERS")
    if root is None:
        parts = path.resolve().parts
        root = Path(*parts[:-4]) if len(parts) > 4 and parts[-4] == "data" else path.parent
    base = Path(root)
    out = []
    for i, r in enumerate(rows, start=1):
        cal_dir = str(r["CAL_DIR"]).strip()
        cal_file = str(r["CAL_FILE"]).strip()
        rel = f"{cal_dir}/{cal_file}" if cal_dir else cal_file
        vsd, vst = str(r["CAL_VSD"]).strip(), str(r["CAL_VST"]).strip() or "00:00:00"
        out.append(
            CaldbEntry(
                id=i,
                telescope=str(r["TELESCOP"]).strip(),
                instrument=str(r["INSTRUME"]).strip(),
                detector=str(r["DETNAM"]).strip() or "NONE",
                filter=str(r["FILTER"]).strip() or "NONE",
                codename=str(r["CAL_CNAM"]).strip().upper(),
                boundaries=normalize_boundaries([str(b) for b in np.atleast_1d(r["CAL_CBD"])]),
                valid_from=to_utc(f"{vsd}T{vst}"),
                quality=int(r["CAL_QUAL"]),
                path=base / rel,
                sha256=None,
                index_version=None if version is None else int(version),
                relpath=rel,
                extension=int(r["CAL_XNO"]),
                cal_class=str(r["CAL_CLAS"]).strip(),
                description=str(r["CAL_DESC"]).strip(),
            )
        )
    return out
