"""Product types of the gp1 pipeline (declared once; see docs/products.md)."""

from __future__ import annotations

__all__: list[str] = []
