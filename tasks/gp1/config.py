"""GP1 configuration: one StepConfig per module, composed into a pipeline and a watcher config.

Three levels share these models (ARCHITECTURE.md §4): the watcher file (``gp1 watch``)
holds several pipeline instances with their routing rules; a pipeline file (``gp1 run``)
holds one :class:`GP1Config`; a module file (``gp1 module NAME``) holds one module's section.
Paths given on the command line override the files' paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from svomflow.config import StepConfig, load_config
from svomflow.config.base import CalibrationOverride
from svomflow.errors import ConfigError
from svomflow.tasks.astrometry.solve import AstrometryConfig
from svomflow.tasks.gp1.alert_position import AlertPosition, AssociationConfig
from svomflow.tasks.photometry.extract import ExtractConfig
from svomflow.tasks.photometry.measure import PhotometryConfig
from svomflow.tasks.photometry.stack import StackConfig
from svomflow.tasks.photometry.zeropoint import ZeroPointConfig
from svomflow.tasks.subtraction.alard_lupton import SubtractionConfig
from svomflow.tasks.subtraction.candidates import CandidateConfig

__all__ = [
    "MODULES",
    "AstrometryModule",
    "FindStarsModule",
    "GP1Config",
    "GP1Steps",
    "GP1WatchConfig",
    "PhotometryModule",
    "ReductionModule",
    "StackingModule",
    "SubtractionModule",
    "SummaryModule",
    "load_gp1_config",
    "load_watch_config",
]

MODULES = (
    "reduction",
    "findstars",
    "astrometry",
    "stacking",
    "photometry",
    "subtraction",
    "summary",
)


class ReductionModule(StepConfig):
    """CCD reduction (the CCD steps of svomflow.tasks.ccd) with masters from the CALDB.

    The CALDB itself is a parameter of the run (``gp1 run --caldb``, the flow's
    ``caldb_root``); a master file given here is used instead of its selection.
    """

    enabled: bool = Field(True, description="Run this module.")
    override_bias: CalibrationOverride = Field(
        None, description="Master bias file used for every image instead of the CALDB's."
    )
    override_dark: CalibrationOverride = Field(
        None, description="Master dark file used for every image instead of the CALDB's."
    )
    override_flat: CalibrationOverride = Field(
        None, description="Master flat file used for every image instead of the CALDB's."
    )
    require_masters: bool = Field(
        False,
        description="Fail when no master is valid for the date (else overscan-only, flagged).",
    )
    cosmic_rays: bool = Field(True, description="Flag cosmic rays (L.A.Cosmic).")
    cosmic_ray_iterations: int = Field(
        1,
        ge=1,
        le=4,
        description="L.A.Cosmic iterations: one finds the cosmic rays that matter for alerts "
        "(residual ones are vetted as 'sharp' candidates) at a third of the cost of three.",
    )


class FindStarsModule(StepConfig):
    """Source extraction (sep), with SExtractor's defaults and its configuration file."""

    enabled: bool = True
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    sextractor_config: str | None = Field(
        "default.sex",
        description="SExtractor configuration applied over `extract`: a file name looked up "
        "next to each image (as SExtractor reads default.sex from where it runs), or a path; "
        "null to ignore any.",
    )
    defect_sigma: float | None = Field(
        30.0,
        gt=0,
        description="Mask the pixels this many local rms below the background as defects "
        "(dead, cold or damaged pixels) before extraction, and warn; null keeps them, as "
        "SExtractor does.",
    )


class AstrometryModule(StepConfig):
    """Astrometric solution against a local reference catalog, or alignment to an image."""

    enabled: bool = True
    reference_catalog: str | None = Field(
        None,
        description="Reference catalog file, or a directory holding <OBJECT>.fits per field.",
    )
    reference_image: str | None = Field(
        None, description="Align to this solved image instead of a catalog."
    )
    astrometry: AstrometryConfig = Field(default_factory=AstrometryConfig)


class StackingModule(StepConfig):
    """Stacking of the alert sequence."""

    enabled: bool = True
    stack: StackConfig = Field(default_factory=StackConfig)


class PhotometryModule(StepConfig):
    """PSF model, aperture and PSF photometry, zero point, limiting magnitude."""

    enabled: bool = True
    psf_half_size: int = Field(10, ge=4, description="PSF star cutout half width (pixel).")
    psf_max_stars: int = Field(25, ge=1, description="Stars used for the PSF fit.")
    psf_wings: bool = Field(True, description="Fit Moffat wings (else a Gaussian core only).")
    photometry: PhotometryConfig = Field(default_factory=PhotometryConfig)
    zeropoint: ZeroPointConfig = Field(default_factory=ZeroPointConfig)
    limit_nsigma: float = Field(5.0, gt=0, description="Limiting magnitude significance.")


class SubtractionModule(StepConfig):
    """Image subtraction and transient candidates."""

    enabled: bool = True
    reference_image: str | None = Field(
        None,
        description="Reference image (solved, same band). None: a model reference rendered "
        "from the reference catalog with the image's PSF and zero point.",
    )
    subtraction: SubtractionConfig = Field(default_factory=SubtractionConfig)
    candidates: CandidateConfig = Field(default_factory=CandidateConfig)
    match_radius_arcsec: float = Field(
        1.5, gt=0, description="Candidates this close across images are one transient."
    )


class SummaryModule(StepConfig):
    """Products and the HTML summary."""

    enabled: bool = True
    finding_chart_arcmin: float = Field(2.0, gt=0, description="Finding chart width.")
    association: AssociationConfig = Field(
        default_factory=AssociationConfig,
        description="Priors of the afterglow choice given the alert position.",
    )


class GP1Steps(StepConfig):
    """The modules of a GP1 pipeline, each with an ``enabled`` switch."""

    reduction: ReductionModule = Field(default_factory=ReductionModule)
    findstars: FindStarsModule = Field(default_factory=FindStarsModule)
    astrometry: AstrometryModule = Field(default_factory=AstrometryModule)
    stacking: StackingModule = Field(default_factory=StackingModule)
    photometry: PhotometryModule = Field(default_factory=PhotometryModule)
    subtraction: SubtractionModule = Field(default_factory=SubtractionModule)
    summary: SummaryModule = Field(default_factory=SummaryModule)


class GP1Config(StepConfig):
    """One GP1 pipeline instance."""

    name: str = Field("default", description="Instance name (logs, ledger).")
    instrument: str = Field("colibri_ddrago_b", description="Camera definition name.")
    input_dir: str | None = Field(None, description="Input images directory (offline run).")
    output_dir: str = Field("gp1_output", description="Output root directory.")
    route: dict[str, str] = Field(
        default_factory=lambda: {"EXPTYPE": "object", "OBSERVER": "svom"},
        description="Header rules (keyword: value, case-insensitive) an image must match.",
    )
    alert_keyword: str = Field(
        "TRIGID", description="Images with this keyword set are alert images (full analysis)."
    )
    analyse_all: bool = Field(
        False,
        description="Analyse every image (sources, astrometry...), not only alert images "
        "(``gp1 module`` sets it: a module is asked for on the images given).",
    )
    trigger_time: str | None = Field(
        None, description="Trigger time (ISO UTC) for T-T0 in the light curves."
    )
    alert_position: AlertPosition | None = Field(
        None,
        description="Best announced position of the burst (svomflow.operations.position_feed): "
        "the afterglow is chosen among the candidates by its probability given it.",
    )
    steps: GP1Steps = Field(default_factory=GP1Steps)

    @field_validator("route")
    @classmethod
    def _upper_keys(cls, v: dict[str, str]) -> dict[str, str]:
        return {k.strip().upper(): str(val) for k, val in v.items()}


class GP1WatchConfig(StepConfig):
    """The online watcher: input directory, ledger and the pipeline instances it routes to."""

    input_dir: str = Field("gp1_input", description="Directory watched for new images.")
    output_dir: str | None = Field(
        None, description="Output root for every instance (overrides the instances')."
    )
    ledger: str | None = Field(
        None, description="Ledger file (default: <output_dir>/gp1_ledger.sqlite)."
    )
    caldb: str | None = Field(
        None, description="CALDB the masters are selected from (default: $SVOMFLOW_CALDB)."
    )
    settle_seconds: float = Field(
        1.0, ge=0, description="A file must keep its size this long before it is read."
    )
    poll_seconds: float = Field(0.5, gt=0, description="Polling period of the fallback.")
    use_polling: bool = Field(False, description="Force the polling observer.")
    patterns: list[str] = Field(
        default_factory=lambda: ["*.fits", "*.fit", "*.fts", "*.fits.fz", "*.fits.gz"],
        description="File name patterns considered.",
    )
    pipelines: list[GP1Config] = Field(
        default_factory=lambda: [
            GP1Config(name="alerts", route={"EXPTYPE": "object", "OBSERVER": "svom"}),
            GP1Config(
                name="others",
                route={"EXPTYPE": "object"},
                steps=GP1Steps(
                    stacking=StackingModule(enabled=False),
                    subtraction=SubtractionModule(enabled=False),
                    summary=SummaryModule(enabled=False),
                ),
            ),
        ],
        description="Pipeline instances; an image goes to the first whose rules match.",
    )

    @model_validator(mode="after")
    def _shared_output(self) -> GP1WatchConfig:
        # One output root for the watcher means every instance writes under it.
        if self.output_dir is not None:
            for p in self.pipelines:
                if p.output_dir != self.output_dir:
                    p.output_dir = self.output_dir
        names = [p.name for p in self.pipelines]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline instance names must be unique, got {names}")
        if not self.pipelines:
            raise ValueError("at least one pipeline instance is needed")
        return self


def _with_paths(data: dict[str, Any], paths: dict[str, str | None]) -> dict[str, Any]:
    for key, val in paths.items():
        if val is not None:
            data[key] = str(val)
    return data


def load_gp1_config(
    path: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    input_dir: str | None = None,
    output_dir: str | None = None,
) -> GP1Config:
    """Load a pipeline configuration file (a directory means ``<dir>/gp1.yaml``).

    Command-line paths (``input_dir``, ``output_dir``) override the file's.
    """
    files: list[Path] = []
    if path is not None:
        p = Path(path)
        if p.is_dir():
            cands = [p / "gp1.yaml", p / "gp1.yml"]
            found = [c for c in cands if c.is_file()]
            if not found:
                raise ConfigError(f"configuration directory {p} has no gp1.yaml")
            p = found[0]
            if input_dir is None and not _file_sets(p, "input_dir"):
                input_dir = str(Path(path))
        files.append(p)
    sets = list(overrides or [])
    cfg = load_config(GP1Config, flow="gp1_reduction", files=files, overrides=sets)
    upd = _with_paths({}, {"input_dir": input_dir, "output_dir": output_dir})
    return cfg.model_copy(update=upd) if upd else cfg


def _file_sets(path: Path, key: str) -> bool:
    from svomflow.config.loader import read_yaml_mapping

    return key in read_yaml_mapping(path)


def load_watch_config(
    path: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    input_dir: str | None = None,
    output_dir: str | None = None,
    ledger: str | None = None,
    caldb: str | None = None,
) -> GP1WatchConfig:
    """Load the watcher configuration; command-line paths override the file's."""
    files = [Path(path)] if path is not None else []
    cfg = load_config(GP1WatchConfig, files=files, overrides=list(overrides or []))
    upd = _with_paths(
        {},
        {"input_dir": input_dir, "output_dir": output_dir, "ledger": ledger, "caldb": caldb},
    )
    if upd:
        from pydantic import ValidationError
        from svomflow.config.loader import format_validation_error

        try:
            cfg = GP1WatchConfig.model_validate({**cfg.model_dump(), **upd})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc)) from None
    return cfg
