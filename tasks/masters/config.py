"""Configuration of the nightly master calibration (defaults from the camera definition)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from svomflow.config import StepConfig
from svomflow.config.base import CalibrationOverride
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.tasks.ccd.combine import CombineConfig
from svomflow.tasks.ccd.overscan import OverscanConfig
from svomflow.tasks.masters.qc import ValidationConfig

__all__ = ["NightlyCalibrationConfig"]


class NightlyCalibrationConfig(StepConfig):
    """Configuration of the nightly master-calibration build (defaults from the camera)."""

    types: list[str] = Field(
        default_factory=lambda: ["bias", "dark", "flat"], description="Calibration types built"
    )
    night_start_utc_hour: float = Field(
        12.0, ge=0, lt=24, description="A night runs from this UTC hour to the same hour next day"
    )
    min_frames: int | None = Field(
        None, ge=1, description="Minimum frames per group (camera's calibration.min_frames)"
    )
    dark_temperature_tolerance_c: float | None = Field(
        None, gt=0, description="[deg C] darks within this of each other group together"
    )
    group_darks_by_exposure: bool = Field(True, description="One dark master per exposure time")
    temperature_scaling: bool | None = Field(
        None, description="Scale darks with the doubling law (camera default)"
    )
    overscan: OverscanConfig = Field(default_factory=OverscanConfig)
    combine: CombineConfig = Field(default_factory=CombineConfig)
    validation: ValidationConfig | None = Field(
        None, description="Validation thresholds (camera's calibration.validation by default)"
    )
    override_bias: CalibrationOverride = Field(
        None, description="BIAS file used instead of the CALDB's (building and comparison)"
    )
    override_dark: CalibrationOverride = Field(
        None, description="DARK file used instead of the CALDB's (building and comparison)"
    )
    override_flat: CalibrationOverride = Field(
        None, description="FLAT file compared with instead of the CALDB's current flat"
    )

    def resolved(self, camera: CameraModel) -> NightlyCalibrationConfig:
        """Return a copy with every camera-dependent default filled in."""
        cal = camera.calibration
        upd: dict[str, Any] = {}
        if self.min_frames is None:
            upd["min_frames"] = int(cal.get("min_frames", 5))
        if self.dark_temperature_tolerance_c is None:
            upd["dark_temperature_tolerance_c"] = float(
                cal.get("dark_temperature_tolerance_c", 1.0)
            )
        if self.temperature_scaling is None:
            upd["temperature_scaling"] = bool(cal.get("dark_temperature_scaling", True))
        if self.validation is None:
            upd["validation"] = ValidationConfig.from_camera(camera)
        out = self.model_copy(update=upd)
        assert out.validation is not None and out.min_frames is not None
        # The group minimum and the sanity minimum are the same number.
        out.validation.sanity.min_frames = out.min_frames
        if "combine_sigma" in cal and "combine" not in self.model_fields_set:
            out.combine = CombineConfig(
                sigma_low=float(cal["combine_sigma"]),
                sigma_high=float(cal["combine_sigma"]),
                chunk_rows=int(cal.get("combine_chunk_rows", 256)),
            )
        if "overscan_fit_order" in cal and "overscan" not in self.model_fields_set:
            out.overscan = OverscanConfig(fit_order=cal["overscan_fit_order"])
        return out
