"""Base class of every step and flow configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StepConfig"]


class StepConfig(BaseModel):
    """A configuration section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
