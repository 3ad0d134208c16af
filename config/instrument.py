"""Instrument definitions: the numbers that describe an instrument, read from data files.

Algorithms receive these numbers, never an instrument name to branch on (ARCHITECTURE.md
§4). Each file lists, under ``assumptions``, the dotted keys of every value that is not a
public figure, with the reason it was chosen.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from svomflow.errors import ConfigError

__all__ = ["InstrumentDefinition", "available_instruments", "load_instrument"]

_MISSING = object()


class InstrumentDefinition(BaseModel):
    """An instrument's description: common identity fields plus free-form sections.

    The sections (``mask``, ``detector_plane``, ``detectors``, ``optics``, ``ccd``, ...) are
    kept as plain mappings, reachable with :meth:`get` by dotted key.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(description="Short lower-case name used in file names and configs")
    telescope: str = Field(description="TELESCOP keyword value")
    instrument: str = Field(description="INSTRUME keyword value")
    kind: str = Field(description="Family of instrument (coded_mask, ccd_camera, ...)")
    description: str = ""
    header_keywords: dict[str, str] = Field(default_factory=dict)
    assumptions: dict[str, str] = Field(
        default_factory=dict, description="dotted key -> why the value was assumed"
    )

    @model_validator(mode="after")
    def _assumptions_name_real_keys(self) -> InstrumentDefinition:
        for key in self.assumptions:
            if self.get(key, _MISSING) is _MISSING:
                raise ValueError(f"assumption names {key!r}, which is not a key of {self.name}")
        return self

    def get(self, dotted: str, default: Any = _MISSING) -> Any:
        """Return the value at a dotted key (``"mask.height_mm"``).

        Raises
        ------
        ConfigError
            If the key does not exist and no default was given.
        """
        node: Any = self.model_dump()
        for part in dotted.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                if default is not _MISSING:
                    return default
                raise ConfigError(f"instrument {self.name}: no key {dotted!r}")
        return node

    def is_assumption(self, dotted: str) -> bool:
        """Return whether the value at ``dotted`` (or a parent key) is labelled an assumption."""
        parts = dotted.split(".")
        return any(".".join(parts[:i]) in self.assumptions for i in range(1, len(parts) + 1))


def available_instruments() -> list[str]:
    """Return the names of the packaged instrument definitions."""
    folder = resources.files("svomflow.config") / "instruments"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


@cache
def _load_packaged(name: str) -> InstrumentDefinition:
    folder = resources.files("svomflow.config") / "instruments"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown instrument {name!r}; known: {', '.join(available_instruments())}"
        )
    return InstrumentDefinition.model_validate(yaml.safe_load(path.read_text()))


def load_instrument(name_or_path: str | Path) -> InstrumentDefinition:
    """Load an instrument definition by packaged name (``"eclairs"``) or from a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            raise ConfigError(f"instrument file {candidate} does not exist")
        return InstrumentDefinition.model_validate(yaml.safe_load(candidate.read_text()))
    return _load_packaged(str(name_or_path).lower())
