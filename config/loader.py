"""Layered configuration loading with full dotted-key error messages.

Layers, later wins (ARCHITECTURE.md §4):

1. code defaults (the pydantic model's field defaults);
2. packaged pipeline defaults (``svomflow/config/pipelines/<flow>.yaml``);
3. instrument overrides (the ``pipeline_overrides.<flow>`` section of an instrument file);
4. user files, in the order given (``--config a.yaml --config b.yaml``);
5. ``--set dotted.key=value`` overrides (values parsed as YAML scalars/lists).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from svomflow.config.instrument import load_instrument, safe_yaml
from svomflow.errors import ConfigError

__all__ = [
    "deep_merge",
    "format_validation_error",
    "load_config",
    "parse_set_overrides",
    "read_yaml_mapping",
]

M = TypeVar("M", bound=BaseModel)


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``update`` (mappings merge, other values replace)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping (an empty file is an empty mapping)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"configuration file {p} does not exist")
    try:
        data = safe_yaml(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {p} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {p} must hold a mapping, not {type(data).__name__}")
    return data


def parse_set_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["steps.t90.bin_s=0.064", ...]`` into a nested mapping.

    The value is parsed as YAML, so ``=3`` is an int, ``=[50, 300]`` a list and ``=on`` a bool;
    quote it (``='on'``) to keep a string.
    """
    nested: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects dotted.key=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set has an empty key in {item!r}")
        try:
            value = safe_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {exc}") from None
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is set both as a value and a section")
        node[parts[-1]] = value
    return nested


def format_validation_error(exc: ValidationError, *, source: str = "configuration") -> str:
    """Render a pydantic error as one line per problem, each with its full dotted key."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            lines.append(f"{loc}: {err['msg']}{shown}")
    return f"invalid {source}: " + "; ".join(lines)


def packaged_pipeline_defaults(flow: str) -> dict[str, Any]:
    """Return the packaged defaults for ``flow`` (empty when the flow ships none)."""
    path = resources.files("svomflow.config") / "pipelines" / f"{flow}.yaml"
    if not path.is_file():
        return {}
    data = safe_yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"packaged defaults for {flow} must hold a mapping")
    return data


def load_config(
    model: type[M],
    *,
    flow: str | None = None,
    instruments: Sequence[str] = (),
    files: Sequence[str | Path] = (),
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> M:
    """Build a validated configuration from the five layers.

    Parameters
    ----------
    model
        The flow's (or step's) pydantic model; it must forbid extra keys.
    flow
        Name of the packaged pipeline defaults file to apply (``vhf_quick_analysis``).
    instruments
        Instrument names whose ``pipeline_overrides.<flow>`` section is applied.
    files
        User configuration files, applied in order.
    overrides
        ``--set`` strings (``"a.b=1"``) or an already nested mapping (flow parameters).

    Raises
    ------
    ConfigError
        With every offending key's full dotted path.
    """
    merged: dict[str, Any] = {}
    if flow:
        merged = deep_merge(merged, packaged_pipeline_defaults(flow))
        for name in instruments:
            inst = load_instrument(name)
            section = inst.get(f"pipeline_overrides.{flow}", {})
            merged = deep_merge(merged, section)
    for f in files:
        merged = deep_merge(merged, read_yaml_mapping(f))
    if isinstance(overrides, Mapping):
        merged = deep_merge(merged, overrides)
    else:
        merged = deep_merge(merged, parse_set_overrides(overrides))
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
