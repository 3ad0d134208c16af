"""Configuration of the VHF quick analysis: one model per step, and the flow's model of them all.

Each step declares the model of what it reads (:class:`LightCurvesConfig` for the light
curves, :class:`QuickPositionConfig` for the coded-mask position...). The flow's model
:class:`VHFConfig` is their union by inheritance rather than by nesting: a setting read by
several steps (the background fit, the known sources) is one key, and the keys users and
deployments already set (``lc_dt_s``, ``durations.n_sims``, ``classification.known_sources``,
``svomflow reprocess --set lc_dt_s=0.032``) keep their place. ``config_sections`` finds a
step's section by type, so the flow's configuration is the section of every step.

Per-instrument numbers (bands for T90, hardness, light curves and triggers; the imaging band;
the localisation error model) come from the instrument files (``config/instruments``); the
fields here either override them for every instrument or hold the defaults used for an
instrument that has no definition file (e.g. Fermi GBM data run through the counts path).
Each CALDB code a step declares has its ``override_<code>`` field: a file for every
instrument, or ``{instrument: file}`` (``override_badpix: {eclairs: my_badpix.fits}``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from svomflow.config.base import CalibrationOverride, StepConfig
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

__all__ = [
    "ClassificationStepConfig",
    "CountRatioConfig",
    "DefaultBands",
    "ImageTriggerConfig",
    "JointHardnessConfig",
    "JointHardnessStepConfig",
    "LightCurvesConfig",
    "QuickPositionConfig",
    "QuickSpectrumStepConfig",
    "TimingConfig",
    "TriggerReportConfig",
    "VHFConfig",
]

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


# Settings read by several steps: declared once here, listed by each step that reads them.
DefaultBandsField = Annotated[
    DefaultBands,
    Field(default_factory=DefaultBands, description="bands of instruments without a definition"),
]
BackgroundField = Annotated[
    BackgroundConfig,
    Field(
        default_factory=BackgroundConfig,
        description="background fit of the T90 band; other bands and detectors are fitted "
        "on its off-source intervals",
    ),
]
TriggerField = Annotated[
    TriggerConfig,
    Field(
        default_factory=TriggerConfig,
        description="rate trigger (its bands also bin OBLC); bands_kev defaults to the "
        "instrument file's trigger bands",
    ),
]
PositionBandField = Annotated[
    Band | None,
    Field(None, description="imaging band (keV); default: the instrument's image-trigger band"),
]
ClassificationField = Annotated[
    ClassificationConfig,
    Field(
        default_factory=ClassificationConfig,
        description="crude class; its known_sources are also modelled in the sky images",
    ),
]
PreviewsField = Annotated[bool, Field(True, description="make the PNG previews (none)")]
EboundsOverride = Annotated[
    CalibrationOverride, Field(None, description="EBOUNDS file(s) instead of the CALDB's")
]
BadpixOverride = Annotated[
    CalibrationOverride, Field(None, description="BADPIX file(s) instead of the CALDB's")
]
DeadtimeOverride = Annotated[
    CalibrationOverride, Field(None, description="DEADTIME file(s) instead of the CALDB's")
]
RspparOverride = Annotated[
    CalibrationOverride, Field(None, description="RSPPAR file(s) instead of the CALDB's")
]


class LightCurvesConfig(StepConfig):
    """Step ``lightcurves``: the T90 band's clock, background and T90; QLC and OBLC bins."""

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
    default_bands: DefaultBandsField
    binning: AdaptiveBinningConfig = Field(
        default_factory=AdaptiveBinningConfig,
        description="how the T90 light curve's bin width is chosen from the burst's extent",
    )
    background: BackgroundField
    durations: DurationConfig = Field(
        default_factory=DurationConfig, description="T90/T50 and their simulated errors"
    )
    trigger: TriggerField
    override_ebounds: EboundsOverride


class TimingConfig(StepConfig):
    """Step ``timing``: peak flux, rate trigger, hardness; the timing products and QLCPLOT."""

    default_bands: DefaultBandsField
    background: BackgroundField
    peak_flux: PeakFluxConfig = Field(
        default_factory=PeakFluxConfig, description="peak net count rate per timescale"
    )
    trigger: TriggerField
    previews: PreviewsField
    override_ebounds: EboundsOverride


class ImageTriggerConfig(StepConfig):
    """Step ``image-trigger``: sky images over the instrument's image-trigger exposures."""

    position_band_kev: PositionBandField
    classification: ClassificationField
    override_badpix: BadpixOverride
    override_ebounds: EboundsOverride


class QuickPositionConfig(StepConfig):
    """Step ``quick-position``: the coded-mask position over the burst interval (QPO, QPOPLOT)."""

    position_band_kev: PositionBandField
    localisation: LocalisationConfig | None = Field(
        None, description="coded-mask position settings; default: the instrument file's"
    )
    classification: ClassificationField
    previews: PreviewsField
    override_badpix: BadpixOverride
    override_ebounds: EboundsOverride


class CountRatioConfig(StepConfig):
    """Step ``count-ratio-position``: the position from the detectors' count ratios (QPO)."""

    grm_localisation: GRMLocalisationConfig = Field(
        default_factory=GRMLocalisationConfig,
        description="count-ratio position: band, assumed spectrum, sky grid",
    )
    background: BackgroundField
    override_rsppar: RspparOverride
    override_ebounds: EboundsOverride


class TriggerReportConfig(StepConfig):
    """Step ``trigger-report``: TT and QCL from the other steps' numbers (nothing to choose)."""


class QuickSpectrumStepConfig(StepConfig):
    """Step ``quick-spectrum``: responses for the burst direction (RSP) and the fit (QSP)."""

    spectrum: QuickSpectrumConfig = Field(
        default_factory=QuickSpectrumConfig, description="quick spectral fit: model, statistic"
    )
    spectrum_interval: str = Field(
        "t90", description="interval of the quick spectrum: 't90' or 'source' (none)"
    )
    background: BackgroundField
    override_rsppar: RspparOverride
    override_ebounds: EboundsOverride
    override_deadtime: DeadtimeOverride


class JointHardnessStepConfig(StepConfig):
    """Step ``joint-hardness``: the cross-instrument hardness ratio (QHR with the joint code)."""

    joint_hardness: JointHardnessConfig = Field(
        default_factory=JointHardnessConfig, description="instruments and bands of QHR_ECLGRM"
    )
    background: BackgroundField
    override_ebounds: EboundsOverride


class ClassificationStepConfig(StepConfig):
    """Step ``classification``: the crude class from the primary instrument's T90 (CRCLASS)."""

    classification: ClassificationField
    classification_catalogs: dict[str, str] = Field(
        {"GRM": "fermi_gbm", "GBM": "fermi_gbm", "ECLAIRS": "swift_bat"},
        description="T90 mixture used per instrument (its band matches the catalog's); the "
        "first instrument of this mapping with a T90 is classified (none)",
    )


# the last step first: pydantic lists the fields of the last base first, so that the merged
# configuration (``svomflow config show vhf``) reads in the order the steps run
class VHFConfig(
    ClassificationStepConfig,
    JointHardnessStepConfig,
    QuickSpectrumStepConfig,
    TriggerReportConfig,
    CountRatioConfig,
    QuickPositionConfig,
    ImageTriggerConfig,
    TimingConfig,
    LightCurvesConfig,
):
    """Everything the ``vhf_quick_analysis`` flow can be told: the settings of all its steps."""
