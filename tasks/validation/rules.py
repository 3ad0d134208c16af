"""The science database's validation rules per product type (a configuration model).

The rules are data: ``config/pipelines/science_validation.yaml`` holds them, loaded through
the layered configuration (``--config``/``--set`` override them like any step's).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from svomflow.config.base import StepConfig

__all__ = ["Consistency", "ScienceValidationConfig", "TypeRules"]


class Consistency(StepConfig):
    """A check of one product against others of the same burst or observation."""

    check: Literal["inside_error_region"] = Field(
        description="the product's position lies inside a reference product's error circle"
    )
    reference_types: list[str] = Field(
        description="type codes of the references; the smallest error circle found is used"
    )
    action: Literal["flag", "refuse"] = Field(
        default="flag", description="what a failed check does: deliver flagged, or refuse"
    )
    margin: float = Field(
        default=1.0, gt=0, description="multiplier of the reference radius (1: the circle itself)"
    )


class TypeRules(StepConfig):
    """What a product of one type must satisfy to be delivered."""

    required_keywords: list[str] = Field(
        default_factory=list, description="header keywords the file must carry (any HDU)"
    )
    required_values: list[str] = Field(
        default_factory=list,
        description="announced key values that must be present ('position' for positions)",
    )
    ranges: dict[str, tuple[float | None, float | None]] = Field(
        default_factory=dict,
        description="value name -> [low, high] (null: no bound); 'error_radius_deg' is in degrees",
    )
    consistency: list[Consistency] = Field(default_factory=list)


class ScienceValidationConfig(StepConfig):
    """Rules per product type; types not listed are not delivered to the science database."""

    types: dict[str, TypeRules] = Field(default_factory=dict, description="type code -> rules")
    burst_keywords: list[str] = Field(
        default_factory=lambda: ["TRIGID"],
        description="header keywords naming the burst of a product whose obs id is another's"
        " (a GP1 sequence): consistency checks use that burst's positions too",
    )
