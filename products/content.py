"""Turn work files into product content for :meth:`ProductStore.publish`.

Flows often compute into a work directory and then publish: FITS files are re-read into
memory (so the work file can go) without their CHECKSUM/DATASUM cards, which the store
writes anew; other files are copied byte for byte.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astropy.io import fits

__all__ = ["copy_file", "fits_hdus"]


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
