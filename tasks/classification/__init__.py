"""Crude burst classification: short/long probability from T90 and flags for non-GRB triggers."""

from svomflow.tasks.classification.crude import (
    ClassificationConfig,
    CrudeClass,
    KnownSource,
    classify,
    p_short,
    packaged_known_sources,
)
from svomflow.tasks.classification.mixture import (
    LognormalMixture,
    fit_lognormal_mixture,
    load_catalog_t90,
    packaged_mixture,
)

__all__ = [
    "ClassificationConfig",
    "CrudeClass",
    "KnownSource",
    "LognormalMixture",
    "classify",
    "fit_lognormal_mixture",
    "load_catalog_t90",
    "p_short",
    "packaged_known_sources",
    "packaged_mixture",
]
