"""Typed configuration parameters of flows: what a caller set, to merge over file layers.

Flows take their configuration as a pydantic model, so the Prefect UI renders a form and
Prefect validates a plain mapping (CLI, ``svomflow reprocess``, deployment runs) into the
model before the run starts. Where a flow layers that configuration over a configuration
file, a model instance must not be merged whole: it carries every default and would clobber
the file's values. :func:`explicit_values` returns only what the caller set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["config_overrides", "explicit_values"]


def explicit_values(model: BaseModel) -> dict[str, Any]:
    """Return the values set on ``model`` (given or assigned), as a nested JSON mapping.

    Like ``model_dump(mode="json", exclude_unset=True)``, except that a nested model left at
    its default by its parent is still searched: ``cfg.steps.astrometry.x = 1`` on a fresh
    model is kept here, where ``exclude_unset`` drops it (``steps`` itself was never set).
    Lists and mappings of models are leaves (taken whole when set). In-place mutation of a
    mutable value (``cfg.route["K"] = "v"``) is not a "set" and is not seen.
    """
    dumped = model.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            sub = explicit_values(value)
            if sub or name in model.model_fields_set:
                out[name] = sub
        elif name in model.model_fields_set:
            out[name] = dumped[name]
    return out


def config_overrides(config: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the caller's configuration values as a nested mapping to merge over the files.

    A model gives :func:`explicit_values`; a mapping (a flow function called directly,
    bypassing Prefect's parameter validation) is taken as is; ``None`` gives ``{}``.
    """
    if config is None:
        return {}
    if isinstance(config, BaseModel):
        return explicit_values(config)
    return dict(config)
