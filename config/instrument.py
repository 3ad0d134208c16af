"""Instrument definitions: the numbers that describe an instrument, read from data files.

Algorithms receive these numbers, never an instrument name to branch on (ARCHITECTURE.md
§4). Each file lists, under ``assumptions``, the dotted keys of every value that is not a
public figure, with the reason it was chosen.

Definitions of other missions' instruments (Fermi GBM, Swift BAT), whose files the spectral
tools read, live in ``instruments/foreign/``: they are not mission instruments (the flows
never list them) and carry only what reading their files needs, such as the default
channel selection of a spectral fit. :func:`match_instrument` finds the definition that
describes a file from its ``TELESCOP``/``INSTRUME``/``DETNAM`` keywords.
"""

from __future__ import annotations

import fnmatch
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from svomflow.errors import ConfigError

__all__ = [
    "InstrumentDefinition",
    "available_instruments",
    "foreign_instruments",
    "load_instrument",
    "match_instrument",
    "safe_yaml",
]


# libyaml's safe loader when PyYAML has it: the same documents, parsed about ten times
# faster than the pure-Python one (instrument files are read in every fresh process)
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_yaml(text: str) -> Any:
    """Parse YAML text with the safe loader (plain data only), libyaml's when available."""
    return yaml.load(text, Loader=_SafeLoader)


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
    return InstrumentDefinition.model_validate(safe_yaml(path.read_text()))


def load_instrument(name_or_path: str | Path) -> InstrumentDefinition:
    """Load an instrument definition by packaged name (``"eclairs"``) or from a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            raise ConfigError(f"instrument file {candidate} does not exist")
        return InstrumentDefinition.model_validate(safe_yaml(candidate.read_text()))
    return _load_packaged(str(name_or_path).lower())


def _foreign_folder() -> Any:
    return resources.files("svomflow.config") / "instruments" / "foreign"


@cache
def foreign_instruments() -> tuple[InstrumentDefinition, ...]:
    """Return the definitions of other missions' instruments (``instruments/foreign``)."""
    folder = _foreign_folder()
    if not folder.is_dir():
        return ()
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)
    return tuple(InstrumentDefinition.model_validate(safe_yaml(p.read_text())) for p in files)


def _matches(patterns: Any, value: str | None) -> bool:
    """Whether ``value`` fits one of the glob ``patterns`` (case-insensitive); no patterns: yes."""
    if patterns is None:
        return True
    if value is None:
        return False
    text = value.strip().upper()
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    return any(fnmatch.fnmatchcase(text, str(p).strip().upper()) for p in items)


def match_instrument(
    telescope: str | None, instrument: str | None, detector: str | None = None
) -> InstrumentDefinition | None:
    """Return the definition describing a file's ``TELESCOP``/``INSTRUME``/``DETNAM``.

    A definition's ``match`` section lists glob patterns per keyword (``telescope``,
    ``instrument``, ``detnam``); without one, its own ``telescope`` and ``instrument``
    values must equal the keywords. Mission definitions are tried first, then the foreign
    ones. ``None`` when no definition, or more than one, fits (no guess).
    """
    found = []
    for defn in [*(_load_packaged(n) for n in available_instruments()), *foreign_instruments()]:
        rules = defn.get("match", None)
        if rules is None:
            rules = {"telescope": [defn.telescope], "instrument": [defn.instrument]}
        if (
            _matches(rules.get("telescope"), telescope)
            and _matches(rules.get("instrument"), instrument)
            and _matches(rules.get("detnam"), detector)
        ):
            found.append(defn)
    return found[0] if len(found) == 1 else None
