"""Configuration: pydantic models, the layered loader and packaged instrument definitions."""

from svomflow.config.base import StepConfig
from svomflow.config.instrument import InstrumentDefinition, available_instruments, load_instrument
from svomflow.config.loader import deep_merge, load_config, parse_set_overrides

__all__ = [
    "InstrumentDefinition",
    "StepConfig",
    "available_instruments",
    "deep_merge",
    "load_config",
    "load_instrument",
    "parse_set_overrides",
]
