"""Product types of the masters pipeline (declared once; see docs/products.md)."""

from __future__ import annotations

__all__: list[str] = []
