"""Housekeeping parameter definitions as data (``config/housekeeping/<instrument>.yaml``).

Each file names an instrument and lists its parameters with unit, description, soft and
hard limits (``[low, high]``, ``null`` for no limit), persistence, hysteresis and the
stuck-value rule. :func:`load_definitions` validates them (a soft limit outside its hard
limit, a negative hysteresis... are refused with the file and parameter named).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from svomflow.config.loader import format_validation_error
from svomflow.errors import ConfigError
from svomflow.products.housekeeping import ParameterDef

__all__ = [
    "InstrumentHousekeeping",
    "ParameterSpec",
    "definition_files",
    "load_definitions",
    "to_rows",
]

Limits = tuple[float | None, float | None]


class ParameterSpec(BaseModel):
    """One parameter: unit, limits, persistence, hysteresis and stuck-value rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    unit: str = ""
    category: str = ""
    description: str = ""
    soft: Limits = (None, None)
    hard: Limits = (None, None)
    persistence: int = Field(default=1, ge=1)
    hysteresis: float = Field(default=0.0, ge=0.0)
    stuck_after: int | None = Field(default=None, ge=2)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for which, (lo, hi) in (("soft", self.soft), ("hard", self.hard)):
            if lo is not None and hi is not None and not lo < hi:
                raise ValueError(f"{which} limits [{lo}, {hi}]: low is not below high")
        (slo, shi), (hlo, hhi) = self.soft, self.hard
        # a soft limit is a warning before the hard one: it must be inside it
        if slo is not None and hlo is not None and slo < hlo:
            raise ValueError(f"soft low {slo} is below hard low {hlo}")
        if shi is not None and hhi is not None and shi > hhi:
            raise ValueError(f"soft high {shi} is above hard high {hhi}")
        return self


class InstrumentHousekeeping(BaseModel):
    """The housekeeping definitions of one instrument."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instrument: str
    description: str = ""
    cadence_s: float = Field(gt=0, description="nominal sampling interval")
    parameters: tuple[ParameterSpec, ...]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [p.name for p in self.parameters]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"parameters defined twice: {', '.join(dup)}")
        return self

    def parameter(self, name: str) -> ParameterSpec:
        """Return one parameter's definition (``KeyError`` naming the known ones)."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(f"{self.instrument} has no parameter {name!r}")


def definition_files() -> list[Path]:
    """Return the packaged definition files (one per instrument)."""
    root = resources.files("svomflow.config") / "housekeeping"
    return sorted(
        Path(str(p))
        for p in root.iterdir()
        if p.name.endswith(".yaml") and not p.name.startswith("_")
    )


def _read(path: Path) -> InstrumentHousekeeping:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"housekeeping definitions {path}: {exc}") from None
    try:
        return InstrumentHousekeeping.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"housekeeping definitions {path}: {format_validation_error(exc)}"
        ) from None


def load_definitions(
    paths: list[Path] | None = None,
) -> dict[str, InstrumentHousekeeping]:
    """Return ``{INSTRUMENT: definitions}`` from the given files (default: the packaged ones)."""
    out: dict[str, InstrumentHousekeeping] = {}
    for path in paths or definition_files():
        defs = _read(Path(path))
        key = defs.instrument.upper()
        if key in out:
            raise ConfigError(f"housekeeping definitions of {key} given twice ({path})")
        out[key] = defs
    return out


def to_rows(defs: InstrumentHousekeeping) -> list[ParameterDef]:
    """Return the store rows (:class:`ParameterDef`) of an instrument's definitions."""
    return [
        ParameterDef(
            instrument=defs.instrument.upper(),
            name=p.name,
            unit=p.unit,
            description=p.description,
            category=p.category,
            soft_low=p.soft[0],
            soft_high=p.soft[1],
            hard_low=p.hard[0],
            hard_high=p.hard[1],
            persistence=p.persistence,
            hysteresis=p.hysteresis,
            stuck_after=p.stuck_after,
        )
        for p in defs.parameters
    ]
