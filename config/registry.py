"""Which configuration model belongs to which flow, found by name without importing flows."""

from __future__ import annotations

from importlib import import_module

from pydantic import BaseModel
from svomflow.errors import ConfigError

__all__ = ["FLOW_CONFIGS", "canonical_flow_name", "config_model_for"]

# flow name -> "module:ClassName" of its configuration model. A flow adds its line when the
# flow exists; `svomflow config show` lists exactly these.
FLOW_CONFIGS: dict[str, str] = {
    "mxt_analysis": "svomflow.tasks.xray.pipeline:MXTAnalysisConfig",
    "gp1_reduction": "svomflow.tasks.gp1.config:GP1Config",
    "nightly_master_calibration": "svomflow.tasks.masters.config:NightlyCalibrationConfig",
    "vhf_quick_analysis": "svomflow.tasks.vhf.config:VHFConfig",
    "xband_analysis": "svomflow.tasks.xband.config:XbandAnalysisConfig",
}


def config_model_for(flow: str) -> type[BaseModel]:
    """Return the configuration model class of ``flow`` (accepts short aliases like ``vhf``)."""
    name = canonical_flow_name(flow)
    module_name, cls_name = FLOW_CONFIGS[name].split(":")
    model = getattr(import_module(module_name), cls_name)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{FLOW_CONFIGS[name]} is not a pydantic model")
    return model


def canonical_flow_name(flow: str) -> str:
    """Return the registered name for ``flow`` or a short alias of it."""
    if flow in FLOW_CONFIGS:
        return flow
    aliases = {name.split("_")[0]: name for name in FLOW_CONFIGS}
    if flow in aliases:
        return aliases[flow]
    known = ", ".join(sorted(FLOW_CONFIGS)) or "none yet"
    raise ConfigError(f"unknown flow {flow!r}; known flows: {known}")
