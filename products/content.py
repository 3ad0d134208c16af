"""Point the OGIP file references of a product at the published names of the files it names.

The catalogue publisher (:mod:`svomflow.products.catalogue.publish`) calls
:func:`relink_ogip` on every FITS product before writing it: a spectrum names its background
and response by :func:`~svomflow.products.catalogue.link_name` while it is built, and by
their published file names once they are published.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits

if TYPE_CHECKING:
    from svomflow.products.catalogue.models import FitsModel

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


def relink_ogip(model: FitsModel, names: Mapping[str, str]) -> FitsModel:
    """Return a product whose OGIP file references name the files' published names.

    A spectrum's ``BACKFILE``/``RESPFILE``/``ANCRFILE``/``CORRFILE`` name its companion
    products by link name while it is built; once those are published, the spectrum must
    name the published files or XSPEC, sherpa and :func:`svomflow.tasks.spectral.load` would
    not find them. Header keywords and
    type II columns of those names are rewritten; a row suffix ``{n}`` is kept, values not
    in ``names`` (``none``, files published elsewhere) are left alone.

    Parameters
    ----------
    model : FitsModel
        The product to publish (not modified).
    names
        Link (or file) base name -> published base name.

    Returns
    -------
    FitsModel
        A copy with the references renamed (link columns rebuilt: published names may be
        longer), or ``model`` itself when it names none of ``names``.
    """
    from svomflow.products.catalogue.models import FitsModel, TableBlock

    if not names:
        return model
    changed = False
    out: list[Any] = []
    for b in [model.primary, *model.extensions]:
        cards = list(b.cards)
        for key in LINK_KEYWORDS:
            # the first card of the keyword, as header[key] finds it
            i = next((i for i, c in enumerate(cards) if c[0].upper() == key), None)
            if i is not None and isinstance(cards[i][1], str):
                new = _renamed(cards[i][1], names)
                card = (cards[i][0], new, _fitting_comment(key, new, cards[i][2]))
                changed |= card != cards[i]
                cards[i] = card
        if isinstance(b, TableBlock) and any(c.name in LINK_KEYWORDS for c in b.columns):
            cols = [_relinked_column(c, names) if c.name in LINK_KEYWORDS else c for c in b.columns]
            out.append(dataclasses.replace(b, columns=cols, cards=cards))
            changed = True
        else:
            out.append(dataclasses.replace(b, cards=cards))
    return FitsModel(primary=out[0], extensions=out[1:]) if changed else model


def _relinked_column(column: fits.Column, names: Mapping[str, str]) -> fits.Column:
    """Return a type II link column (``BACKFILE``...) naming the published files."""
    values = [
        v.decode("ascii") if isinstance(v, bytes) else str(v)
        for v in np.asarray(column.array).tolist()
    ]
    renamed = [_renamed(v, names) for v in values]
    return fits.Column(column.name, f"{max(map(len, renamed), default=1)}A", array=renamed)
