"""Product types of the mxt pipeline (declared once; see docs/products.md)."""

from __future__ import annotations

__all__: list[str] = []
