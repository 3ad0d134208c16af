"""Product file names: ``<TYPE>_<INSTRUMENT>_<OBSID>_v<NN>.<ext>``, every part checked.

Header values (camera names, filters, trigger ids) become parts of product names and
directories. :func:`header_component` turns a real-world value such as
``INSTRUME = 'Apogee USB/Net'`` into a safe component (``Apogee_USB_Net``); only values
with nothing usable left (empty, ``..``) are refused.
"""

from __future__ import annotations

import re

from svomflow.errors import PathEscapeError
from svomflow.paths import safe_component

__all__ = ["header_component", "product_filename"]

# Runs of characters a path component may not hold (see svomflow.paths.safe_component).
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_.+\-]+")


def header_component(value: object, *, what: str = "header value") -> str:
    """Return a header value as a safe path component, replacing what is not allowed.

    Every run of characters outside letters, digits, ``_ . + -`` (spaces, slashes,
    control characters) becomes one ``_``; leading and trailing ``_ . + -`` and runs of
    dots are removed. A value that is already safe is returned unchanged.

    Raises
    ------
    PathEscapeError
        When the value is a path that climbs (a ``..`` segment) or is absolute, or when
        nothing usable is left (an empty value, only separators or dots).
    """
    text = str(value).strip()
    segments = re.split(r"[/\\]", text)
    if ".." in (seg.strip() for seg in segments) or text.startswith(("/", "\\")):
        raise PathEscapeError(f"{what} {text!r} would leave the output directory")
    cleaned = _UNSAFE_RUN.sub("_", text)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip("_.+-")
    if not cleaned:
        raise PathEscapeError(f"{what} {text!r} leaves no usable name for a path component")
    return safe_component(cleaned, what=what)


def product_filename(type_code: str, instrument: str, obs_id: str, version: int, ext: str) -> str:
    """Return the file name of a product version (parts validated as path components)."""
    if version < 1:
        raise ValueError("product versions start at 1")
    parts = [
        safe_component(type_code, what="product type"),
        safe_component(instrument, what="instrument"),
        safe_component(obs_id, what="observation id"),
    ]
    ext = safe_component(ext.lstrip("."), what="file extension")
    return f"{'_'.join(parts)}_v{version:02d}.{ext}"
