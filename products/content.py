"""Turn work files into product content for :meth:`ProductStore.publish`.

Flows often compute into a work directory and then publish: FITS files are re-read into
memory (so the work file can go) without their CHECKSUM/DATASUM cards, which the store
writes anew; other files are copied byte for byte.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from astropy.io import fits

__all__ = ["LINK_KEYWORDS", "copy_file", "fits_hdus", "relink_ogip"]

# OGIP keywords (and type II columns of the same name) that name another file
LINK_KEYWORDS = ("BACKFILE", "RESPFILE", "ANCRFILE", "CORRFILE")

# "file.pha{3}": a row of a type II file (XSPEC's syntax)
_ROW_SUFFIX = re.compile(r"^(?P<name>.*?)(?P<row>\{\d+\})?$")


def fits_hdus(path: str | Path) -> list[Any]:
    """Return every HDU of a FITS file, in memory, without CHECKSUM/DATASUM keywords."""
    with fits.open(path, memmap=False) as hdul:
        hdus = [h.copy() for h in hdul]
    for h in hdus:
        for key in ("CHECKSUM", "DATASUM"):
            h.header.remove(key, ignore_missing=True)
    return hdus


def copy_file(src: str | Path) -> Callable[[Path], None]:
    """Return a writer that copies ``src`` to the path it is given (PNG, JSON, HTML)."""

    def write(dest: Path) -> None:
        shutil.copyfile(src, dest)

    return write


def _renamed(value: str, names: Mapping[str, str]) -> str:
    m = _ROW_SUFFIX.match(value.strip())
    assert m is not None  # the pattern matches every string
    name, row = m.group("name"), m.group("row") or ""
    new = names.get(Path(name).name)
    return value if new is None else f"{new}{row}"


def relink_ogip(hdus: list[Any], names: Mapping[str, str]) -> list[Any]:
    """Point the OGIP file references of HDUs at the files' published names.

    A spectrum is computed next to its background and response in a work directory, where
    ``BACKFILE``/``RESPFILE``/``ANCRFILE``/``CORRFILE`` name the work files; once those are
    published under product names, the spectrum must name the published files or XSPEC,
    sherpa and :func:`svomflow.tasks.spectral.load` would not find them. Header keywords and
    type II columns of those names are rewritten; a row suffix ``{n}`` is kept, values not
    in ``names`` (``none``, files published elsewhere) are left alone.

    Parameters
    ----------
    hdus
        The HDUs to publish (headers are modified in place).
    names
        Work-file base name -> published base name.

    Returns
    -------
    list
        The HDUs, tables with link columns rebuilt.
    """
    if not names:
        return list(hdus)
    out = []
    for h in hdus:
        for key in LINK_KEYWORDS:
            value = h.header.get(key)
            if isinstance(value, str):
                h.header[key] = _renamed(value, names)
        if isinstance(h, fits.BinTableHDU) and h.data is not None:
            if any(k in h.columns.names for k in LINK_KEYWORDS):
                # rebuilt with new string columns: published names may be longer
                cols = []
                for c in h.columns:
                    if c.name in LINK_KEYWORDS:
                        vals = [_renamed(str(v), names) for v in h.data[c.name]]
                        c = fits.Column(c.name, f"{max(map(len, vals), default=1)}A", array=vals)
                    cols.append(c)
                h = fits.BinTableHDU.from_columns(cols, header=h.header)
        out.append(h)
    return out
