"""Timing analysis steps: Bayesian blocks, binning, background, durations, peak flux, hardness, lags, triggers.

Each step is a pure typed function with a pydantic config (``svomflow.config.StepConfig``)
and a result dataclass; the numba kernels live in :mod:`svomflow.tasks.timing._kernels`.
"""

from svomflow.tasks.timing.adaptive import (
    AdaptiveBinningConfig,
    AdaptiveCurve,
    DurationAnalysis,
    adaptive_curve,
    choose_bin_width,
    durations_from_events,
)
from svomflow.tasks.timing.background import BackgroundConfig, BackgroundModel, fit_background
from svomflow.tasks.timing.binning import (
    BinnedCounts,
    BinningConfig,
    constant_sn_bins,
    from_lightcurve,
    gti_overlap,
    uniform_bins,
)
from svomflow.tasks.timing.blocks import (
    BayesianBlocksConfig,
    Blocks,
    bayesian_blocks,
    bayesian_blocks_binned,
    bayesian_blocks_fast,
    blocks_from_events,
    calibrate_ncp_prior,
)
from svomflow.tasks.timing.duration import DurationConfig, Durations, durations
from svomflow.tasks.timing.hardness import HardnessRatio, NetCounts, hardness_ratio, net_counts
from svomflow.tasks.timing.lag import LagConfig, TimeLag, time_lag
from svomflow.tasks.timing.peak import PeakFlux, PeakFluxConfig, peak_flux
from svomflow.tasks.timing.trigger import TriggerConfig, TriggerResult, TriggerRow, rate_trigger

__all__ = [
    "AdaptiveBinningConfig",
    "AdaptiveCurve",
    "BackgroundConfig",
    "BackgroundModel",
    "BayesianBlocksConfig",
    "BinnedCounts",
    "BinningConfig",
    "Blocks",
    "DurationAnalysis",
    "DurationConfig",
    "Durations",
    "HardnessRatio",
    "LagConfig",
    "NetCounts",
    "PeakFlux",
    "PeakFluxConfig",
    "TimeLag",
    "TriggerConfig",
    "TriggerResult",
    "TriggerRow",
    "adaptive_curve",
    "bayesian_blocks",
    "bayesian_blocks_binned",
    "bayesian_blocks_fast",
    "blocks_from_events",
    "calibrate_ncp_prior",
    "choose_bin_width",
    "constant_sn_bins",
    "durations",
    "durations_from_events",
    "fit_background",
    "from_lightcurve",
    "gti_overlap",
    "hardness_ratio",
    "net_counts",
    "peak_flux",
    "rate_trigger",
    "time_lag",
    "uniform_bins",
]
