"""Packaged source catalogs shared by several flows (``svomflow/config/catalogs/<name>.yaml``).

A catalog is a YAML mapping with a ``sources`` list; the flows' configuration models take it
as the code default of a field (layer 1), so every later layer (packaged pipeline defaults,
instrument overrides, user files, ``--set``) can replace it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from svomflow.errors import ConfigError

__all__ = ["packaged_catalog"]


def packaged_catalog(name: str) -> list[dict[str, Any]]:
    """Return the ``sources`` of the packaged catalog ``name`` as plain mappings.

    Raises
    ------
    ConfigError
        When no such catalog is packaged or it does not hold a list of mappings.
    """
    path = resources.files("svomflow.config") / "catalogs" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no packaged catalog {name!r}")
    data = yaml.safe_load(path.read_text()) or {}
    sources = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        raise ConfigError(f"packaged catalog {name!r} must hold a `sources` list of mappings")
    return [dict(s) for s in sources]
