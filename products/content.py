"""Point the OGIP file references of a product at the published names of the files it names.

The catalogue publisher (:mod:`svomflow.products.catalogue.publish`) calls
:func:`relink_ogip` on every FITS product before writing it: a spectrum names its background
and response by :func:`~svomflow.products.catalogue.link_name` while it is built, and by
their published file names once they are published.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from astropy.io import fits

__all__ = ["LINK_KEYWORDS", "relink_ogip"]

# OGIP keywords (and type II columns of the same name) that name another file
LINK_KEYWORDS = ("BACKFILE", "RESPFILE", "ANCRFILE", "CORRFILE")

# "file.pha{3}": a row of a type II file (XSPEC's syntax)
_ROW_SUFFIX = re.compile(r"^(?P<name>.*?)(?P<row>\{\d+\})?$")


def _renamed(value: str, names: Mapping[str, str]) -> str:
    m = _ROW_SUFFIX.match(value.strip())
    assert m is not None  # the pattern matches every string
    name, row = m.group("name"), m.group("row") or ""
    new = names.get(Path(name).name)
    return value if new is None else f"{new}{row}"


def _fitting_comment(key: str, value: str, comment: str) -> str:
    """Return ``comment`` shortened so that the card still fits in 80 characters.

    A published name (with the burst id in it) is longer than the link name: astropy would
    warn and truncate the comment itself.
    """
    used = len(fits.Card(key, value).image.rstrip())
    room = 80 - used - 3  # " / "
    return comment[: max(room, 0)]


def relink_ogip(hdus: list[Any], names: Mapping[str, str]) -> list[Any]:
    """Point the OGIP file references of HDUs at the files' published names.

    A spectrum's ``BACKFILE``/``RESPFILE``/``ANCRFILE``/``CORRFILE`` name its companion
    products by link name while it is built; once those are published, the spectrum must
    name the published files or XSPEC, sherpa and :func:`svomflow.tasks.spectral.load` would
    not find them. Header keywords and
    type II columns of those names are rewritten; a row suffix ``{n}`` is kept, values not
    in ``names`` (``none``, files published elsewhere) are left alone.

    Parameters
    ----------
    hdus
        The HDUs to publish (headers are modified in place).
    names
        Link (or file) base name -> published base name.

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
                new = _renamed(value, names)
                h.header[key] = (new, _fitting_comment(key, new, h.header.comments[key]))
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
