"""Base class of every step and flow configuration model, and the calibration override type."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["CalibrationOverride", "StepConfig"]

#: An ``override_<code>`` value: a calibration file for every instrument that needs the
#: code, or ``{instrument name: file}``; ``None`` selects from the CALDB.
CalibrationOverride = str | dict[str, str] | None


class StepConfig(BaseModel):
    """A configuration section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
