"""The one table of product types: declared once, found by code.

Each family of products is declared in its own module of this package (``vhf.py``,
``xband.py``, ``mxt.py``, ``gp1.py``, ``masters.py``, ``alerts.py``); the table imports them
all on first use, so a lookup never depends on which flow ran first.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import import_module
from typing import Any

from svomflow.errors import ConfigError
from svomflow.products.catalogue.models import FigureModel, ProductModel
from svomflow.products.catalogue.types import PREVIEW_SUFFIX, Keyword, ProductType

__all__ = ["DECLARATIONS", "all_types", "declare", "is_declared", "product_type"]

#: The modules that declare product types (one per product family).
DECLARATIONS: tuple[str, ...] = (
    "svomflow.products.catalogue.alerts",
    "svomflow.products.catalogue.common",
    "svomflow.products.catalogue.eic_calib",
    "svomflow.products.catalogue.eic_pixels",
    "svomflow.products.catalogue.eic_saa_trig",
    "svomflow.products.catalogue.gp1",
    "svomflow.products.catalogue.masters",
    "svomflow.products.catalogue.monitoring",
    "svomflow.products.catalogue.mxt",
    "svomflow.products.catalogue.vhf",
    "svomflow.products.catalogue.xband",
)

_TYPES: dict[str, ProductType] = {}
_loaded = False
# The first lookups may come from several threads at once (the thread runner publishing
# two bursts): the flag is set only once every declaring module is imported, under a lock
# (re-entrant: a declaring module may itself look a type up while being imported).
_LOAD_LOCK = threading.RLock()


def declare(
    code: str,
    description: str,
    *,
    instruments: Sequence[str],
    model: type[ProductModel],
    keywords: Sequence[Keyword] = (),
    extensions: Sequence[str] = (),
    preview: Callable[[Any], FigureModel] | None = None,
    ext: str | None = None,
) -> ProductType:
    """Declare a product type (once; a second declaration of a code is an error).

    A type with a ``preview`` also declares ``<CODE>-PREVIEW`` (its PNG).
    """
    # the caller's frame only: inspect.stack() reads the source of every frame (about 2 s
    # of a fresh process's first VHF run for the 51 declarations)
    frame = inspect.currentframe()
    caller = frame.f_back.f_globals.get("__name__", "") if frame and frame.f_back else ""
    if code in _TYPES:
        raise ValueError(f"product type {code} declared twice ({_TYPES[code].module}, {caller})")
    t = ProductType(
        code=code,
        description=description,
        instruments=tuple(instruments),
        model=model,
        keywords=tuple(keywords),
        extensions=tuple(extensions),
        preview=preview,
        ext=ext,
        module=caller,
    )
    _TYPES[code] = t
    if preview is not None:
        _TYPES[code + PREVIEW_SUFFIX] = replace(
            t,
            code=code + PREVIEW_SUFFIX,
            description=f"preview (PNG) of {code}",
            model=FigureModel,
            keywords=(),
            extensions=(),
            preview=None,
            ext=None,
        )
    return t


def _load() -> None:
    global _loaded
    if _loaded:
        return
    with _LOAD_LOCK:
        if not _loaded:
            for name in DECLARATIONS:
                import_module(name)
            _loaded = True


def all_types() -> dict[str, ProductType]:
    """Every declared product type, by code."""
    _load()
    return dict(_TYPES)


def is_declared(code: str) -> bool:
    """Whether ``code`` is a catalogue type code."""
    _load()
    return code in _TYPES


def product_type(code: str) -> ProductType:
    """Return the declaration of a type code.

    Raises
    ------
    ConfigError
        For an unknown code (naming the known ones).
    """
    _load()
    if code not in _TYPES:
        raise ConfigError(f"unknown product type {code!r}; known: {', '.join(sorted(_TYPES))}")
    return _TYPES[code]
