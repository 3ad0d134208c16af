"""Configuration of the VHF quick-analysis flow, composed of the configurations of its steps.

Per-instrument numbers (bands for T90, hardness, light curves and triggers; the imaging band;
the localisation error model) come from the instrument files (``config/instruments``); the
fields here either override them for every instrument or hold the defaults used for an
instrument that has no definition file (e.g. Fermi GBM data run through the GRM-like path).
"""

from __future__ import annotations

from pydantic import Field
from svomflow.config import StepConfig
from svomflow.tasks.classification import ClassificationConfig
from svomflow.tasks.coded_mask.position import LocalisationConfig
from svomflow.tasks.localisation.grm_ratio import GRMLocalisationConfig
from svomflow.tasks.spectral.quick_spectrum import QuickSpectrumConfig
from svomflow.tasks.timing import (
    AdaptiveBinningConfig,
    BackgroundConfig,
    DurationConfig,
    PeakFluxConfig,
    TriggerConfig,
)

__all__ = ["DefaultBands", "JointHardnessConfig", "VHFConfig"]

Band = tuple[float, float]


class DefaultBands(StepConfig):
    """Bands (keV) of an instrument without a definition file (GBM-like defaults)."""

    t90: Band = Field((50.0, 300.0), description="T90 / peak-flux band (keV)")
    hardness: list[Band] = Field(
        [(50.0, 100.0), (100.0, 300.0)], description="soft then hard band of the ratio (keV)"
    )
    light_curve: list[Band] = Field(
        [(8.0, 50.0), (50.0, 300.0), (300.0, 1000.0)], description="quick light-curve bands (keV)"
    )
    trigger: list[Band] = Field(
        [(15.0, 150.0), (50.0, 300.0)], description="rate-trigger bands (keV)"
    )


class JointHardnessConfig(StepConfig):
    """Cross-instrument hardness ratio (QHR_ECLGRM): soft band of one, hard band of another."""

    soft_instrument: str = Field("ECLAIRS", description="INSTRUME of the soft band (none)")
    soft_band_kev: Band = Field((15.0, 50.0), description="soft band (keV)")
    hard_instrument: str = Field("GRM", description="INSTRUME of the hard band (none)")
    hard_band_kev: Band = Field((50.0, 300.0), description="hard band (keV)")


class VHFConfig(StepConfig):
    """Everything the ``vhf_quick_analysis`` flow can be told, step by step."""

    band_kev: Band | None = Field(
        None,
        description="T90 / peak-flux band for every instrument (keV); default: each "
        "instrument file's bands_kev.t90, clipped to the instrument's range",
    )
    lc_dt_s: float = Field(
        0.064,
        gt=0,
        description="largest bin width of the quick light curves QLC in the light-curve "
        "bands (s); a burst whose T90 clock is finer uses that (the T90 band's own curve "
        "is on the T90 clock, see binning)",
    )
    oblc_dt_s: float = Field(
        1.0, gt=0, description="bin width of the on-board-like count light curve OBLC (s)"
    )
    default_bands: DefaultBands = Field(default_factory=DefaultBands)
    binning: AdaptiveBinningConfig = Field(
        default_factory=AdaptiveBinningConfig,
        description="how the T90 light curve's bin width is chosen from the burst's extent",
    )
    background: BackgroundConfig = Field(default_factory=BackgroundConfig)
    durations: DurationConfig = Field(default_factory=DurationConfig)
    peak_flux: PeakFluxConfig = Field(default_factory=PeakFluxConfig)
    trigger: TriggerConfig = Field(
        default_factory=TriggerConfig,
        description="rate trigger; bands_kev defaults to the instrument file's trigger bands",
    )
    position_band_kev: Band | None = Field(
        None, description="imaging band (keV); default: the instrument's image-trigger band"
    )
    localisation: LocalisationConfig | None = Field(
        None, description="coded-mask position settings; default: the instrument file's"
    )
    grm_localisation: GRMLocalisationConfig = Field(default_factory=GRMLocalisationConfig)
    spectrum: QuickSpectrumConfig = Field(default_factory=QuickSpectrumConfig)
    spectrum_interval: str = Field(
        "t90", description="interval of the quick spectrum: 't90' or 'source' (none)"
    )
    classification: ClassificationConfig = Field(default_factory=ClassificationConfig)
    classification_catalogs: dict[str, str] = Field(
        {"GRM": "fermi_gbm", "GBM": "fermi_gbm", "ECLAIRS": "swift_bat"},
        description="T90 mixture used per instrument (its band matches the catalog's); the "
        "first instrument of this mapping with a T90 is classified (none)",
    )
    joint_hardness: JointHardnessConfig = Field(default_factory=JointHardnessConfig)
    previews: bool = Field(True, description="write PNG previews")
