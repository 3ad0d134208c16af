"""Product types of the xband pipeline (declared once; see docs/products.md)."""

from __future__ import annotations

__all__: list[str] = []
