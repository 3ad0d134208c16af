"""Configuration of the X-band analysis: one pydantic section per step, composed for the flow.

Energy bands left to ``None`` are read from the instrument files (``bands_kev.*``): bands are
instrument data, the analysis only chooses which to use.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from svomflow.config import StepConfig
from svomflow.config.base import CalibrationOverride
from svomflow.tasks.classification.crude import KnownSource, packaged_known_sources
from svomflow.tasks.localisation.grm_ratio import GRMLocalisationConfig
from svomflow.tasks.timing import AdaptiveBinningConfig, BackgroundConfig, DurationConfig

__all__ = [
    "FluenceConfig",
    "IntervalsConfig",
    "LightCurveConfig",
    "LocaliseConfig",
    "SpectralConfig",
    "TemporalConfig",
    "XbandAnalysisConfig",
]

Band = tuple[float, float]


class IntervalsConfig(StepConfig):
    """Light curves, background, T90 and the common time intervals."""

    binning: AdaptiveBinningConfig = Field(
        default_factory=AdaptiveBinningConfig,
        description="bin width of the timing light curves, chosen from the burst's extent; "
        "the time-resolved intervals are cut on the finest instrument's clock",
    )
    eclairs_band_kev: Band | None = Field(
        None, description="ECLAIRs T90 band (keV); default bands_kev.t90"
    )
    grm_band_kev: Band | None = Field(None, description="GRM T90 band (keV); default bands_kev.t90")
    background: BackgroundConfig = Field(default_factory=BackgroundConfig)
    duration: DurationConfig = Field(default_factory=lambda: DurationConfig(n_sims=200))
    peak_timescale_s: float = Field(1.024, gt=0, description="length of the peak interval (s)")
    resolved_method: Literal["blocks", "snr"] = Field(
        "blocks", description="time-resolved intervals: Bayesian blocks or constant S/N"
    )
    ncp_prior: float = Field(8.0, gt=0, description="Bayesian-blocks prior (dimensionless)")
    min_snr: float = Field(
        20.0, gt=0, description="minimum net S/N of a time-resolved interval (sigma)"
    )
    max_resolved: int = Field(16, ge=1, description="largest number of time-resolved intervals")


class SpectralConfig(StepConfig):
    """Spectral extraction and fits."""

    model: Literal["band", "cpl", "pl", "sbpl"] = Field(
        "band", description="model of the main and peak intervals"
    )
    resolved_model: Literal["band", "cpl", "pl", "sbpl"] = Field(
        "cpl", description="model of the time-resolved spectra"
    )
    fallback_model: Literal["cpl", "pl"] = Field(
        "cpl", description="model used when the main model does not converge"
    )
    stat: Literal["wstat", "cstat", "pgstat", "chi2", "chi2-gehrels"] = Field(
        "wstat", description="fit statistic (background counts are Poisson: wstat)"
    )
    eclairs_method: Literal["time_background", "mask_weighted"] = Field(
        "mask_weighted",
        description="ECLAIRs spectra: whole-plane counts with a background from off-source "
        "intervals (fitted with `stat`), or mask-weighted counts for the burst position "
        "(flat and CXB background and the shadows of the `known_sources` in the field "
        "cancelled by the weights, no off-source interval; fitted with chi2)",
    )
    eclairs_min_snr: float = Field(
        3.0,
        gt=0,
        description="mask-weighted ECLAIRs spectra: group channels until each group reaches "
        "this signal-to-noise ratio (sigma)",
    )
    eclairs_variance_smoothing: float | None = Field(
        0.1,
        gt=0,
        description="mask-weighted ECLAIRs spectra: the variance of each channel is averaged "
        "over +- this fraction of its energy (dimensionless; null: no smoothing)",
    )
    eclairs_energy_kev: Band = Field((4.0, 150.0), description="ECLAIRs fit range (keV)")
    grm_energy_kev: Band = Field((15.0, 2000.0), description="GRM fit range (keV)")
    min_counts: int = Field(
        10, ge=1, description="group channels until each group holds this many counts"
    )
    min_bkg_counts: int = Field(
        1,
        ge=0,
        description="spectra with a time background (GRM; ECLAIRs with time_background): "
        "each group also holds this many background (off-source) counts (W-stat is biased "
        "with empty background groups: XSPEC manual, appendix B)",
    )
    eclairs_min_channels: int = Field(
        6, ge=1, description="ECLAIRs channels per group at least (resolution-limited)"
    )
    errors: bool = Field(True, description="profile (delta-stat = 1) errors of the parameters")
    flux_samples: int = Field(500, ge=0, description="parameter draws for flux errors (count)")
    flux_errors: Literal["sample", "profile"] = Field(
        "profile",
        description="flux and fluence errors: the likelihood profile of the flux (XSPEC "
        "cflux; the fluxes of a fit that falls back because Band's beta ran to its bound "
        "come from the Band fit), or quantiles of `flux_samples` draws from the parameter "
        "covariance (too wide upwards with a loosely constrained beta)",
    )
    cross_norm: bool = Field(True, description="free GRM/ECLAIRs cross-normalisation")
    override_ebounds: CalibrationOverride = Field(
        None, description="EBOUNDS file (channel energies) instead of the CALDB's"
    )
    override_deadtime: CalibrationOverride = Field(
        None, description="DEADTIME file (live time of the spectra) instead of the CALDB's"
    )
    override_badpix: CalibrationOverride = Field(
        None, description="BADPIX file (pixels left out of ECLAIRs spectra) instead of the CALDB's"
    )
    override_rsppar: CalibrationOverride = Field(
        None, description="RSPPAR file (response model of the RSP products) instead of the CALDB's"
    )

    @property
    def eclairs_weighting(self) -> Literal["none", "mask"]:
        """The ECLAIRs response weighting that matches ``eclairs_method``."""
        return "mask" if self.eclairs_method == "mask_weighted" else "none"


class FluenceConfig(StepConfig):
    """Fluence bands (keV) per product."""

    eclairs_band_kev: Band = Field((4.0, 150.0), description="FLUENCE_ECL band (keV)")
    grm_band_kev: Band = Field((10.0, 1000.0), description="FLUENCE_GRM band (keV)")
    joint_bands_kev: list[Band] = Field(
        default_factory=lambda: [(10.0, 1000.0), (4.0, 150.0), (15.0, 150.0)],
        description="FLUENCE_ECLGRM bands (keV)",
    )


class LightCurveConfig(StepConfig):
    """Light curves and peak fluxes in physical units."""

    bin_s: float = Field(0.256, gt=0, description="bin width of the LC products (s)")
    eclairs_bands_kev: list[Band] | None = Field(None, description="default bands_kev.light_curve")
    grm_bands_kev: list[Band] | None = Field(None, description="default bands_kev.light_curve")
    eclairs_flux_band_kev: Band = Field((4.0, 150.0), description="photon-flux band of LC/PF_ECL")
    grm_flux_band_kev: Band = Field((10.0, 1000.0), description="photon-flux band of LC/PF_GRM")
    peak_timescales_s: list[float] = Field(
        default_factory=lambda: [0.064, 0.256, 1.024], description="peak-flux windows (s)"
    )
    peak_resolution_s: float = Field(0.016, gt=0, description="peak-flux window step (s)")
    override_badpix: CalibrationOverride = Field(
        None,
        description="BADPIX file (pixels left out of the MWLC mask weights) instead of the CALDB's",
    )


class TemporalConfig(StepConfig):
    """Hardness ratios and lags (bands in keV: soft first, hard second)."""

    eclairs_bands_kev: tuple[Band, Band] | None = Field(
        None, description="default bands_kev.hardness"
    )
    grm_bands_kev: tuple[Band, Band] | None = Field(None, description="default bands_kev.hardness")
    joint_bands_kev: tuple[Band, Band] = Field(
        ((4.0, 50.0), (50.0, 300.0)), description="HR/LAG_ECLGRM: ECLAIRs soft, GRM hard (keV)"
    )
    lag_bin_s: float = Field(0.064, gt=0, description="bin width of the lag light curves (s)")
    max_lag_s: float = Field(2.0, gt=0, description="largest lag searched (s)")
    lag_sims: int = Field(200, ge=0, description="resamplings for the lag error (count)")


class LocaliseConfig(StepConfig):
    """Refined positions: ECLAIRs imaging and GRM count ratios."""

    eclairs_band_kev: Band | None = Field(
        None, description="ECLAIRs imaging band (keV); default bands_kev.image_trigger"
    )
    grm: GRMLocalisationConfig = Field(
        default_factory=GRMLocalisationConfig, description="GRM count-ratio localisation"
    )
    override_badpix: CalibrationOverride = Field(
        None, description="BADPIX file (pixels left out of the image) instead of the CALDB's"
    )
    override_rsppar: CalibrationOverride = Field(
        None, description="RSPPAR file (GRM response model) instead of the CALDB's"
    )


# keys of the flow configuration before the localisation had its own section
_LEGACY_LOCALISE_KEYS = {"eclairs_position_band_kev": "eclairs_band_kev", "grm_localisation": "grm"}


class XbandAnalysisConfig(StepConfig):
    """Configuration of the ``xband_analysis`` flow."""

    intervals: IntervalsConfig = Field(default_factory=IntervalsConfig)
    localise: LocaliseConfig = Field(default_factory=LocaliseConfig)
    spectral: SpectralConfig = Field(default_factory=SpectralConfig)
    fluence: FluenceConfig = Field(default_factory=FluenceConfig)
    lightcurve: LightCurveConfig = Field(default_factory=LightCurveConfig)
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    known_sources: list[KnownSource] = Field(
        default_factory=packaged_known_sources,
        description="known bright X-ray sources: those in the ECLAIRs field are removed from "
        "the PO_ECL image and cancelled by the mask weights; one within its radius_deg of "
        "the burst is left in (it would be the burst) (default: the packaged catalog "
        "config/catalogs/known_sources.yaml, shared with the VHF flow)",
    )
    seed: int = Field(0, description="seed of every simulation-based error")

    @model_validator(mode="before")
    @classmethod
    def _legacy_localise_keys(cls, data: Any) -> Any:
        """Read configurations written before ``localise`` was a section (reprocessing)."""
        if not isinstance(data, dict) or not any(k in data for k in _LEGACY_LOCALISE_KEYS):
            return data
        data = dict(data)
        section = dict(data.get("localise") or {})
        for old, new in _LEGACY_LOCALISE_KEYS.items():
            if old in data:
                section.setdefault(new, data.pop(old))
        data["localise"] = section
        return data
