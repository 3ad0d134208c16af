"""Product types of the alert intake: the archived alert notice."""

from __future__ import annotations

from svomflow.products.catalogue.models import TextModel
from svomflow.products.catalogue.registry import declare

__all__: list[str] = []

declare(
    "ALERT",
    "An incoming alert notice exactly as received (VOEvent 2.0 XML or JSON)",
    instruments=("*",),
    model=TextModel,
)
