"""Product file names: ``<TYPE>_<INSTRUMENT>_<OBSID>_v<NN>.<ext>``, every part checked."""

from __future__ import annotations

from svomflow.paths import safe_component

__all__ = ["product_filename"]


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
