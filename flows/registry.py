"""The catalogue of svomflow flows: entrypoints, deployment names, default parameters, schedules.

Everything operational (``svomflow serve``/``deploy``/``reprocess``/``listen``) reads this one
table instead of importing flow modules directly. Flows are imported lazily, so a flow whose
module is missing or broken is reported by :func:`load_flows` instead of stopping the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from svomflow.errors import SvomflowError

__all__ = [
    "REGISTRY",
    "FlowSpec",
    "FlowUnavailableError",
    "get_spec",
    "load_flows",
]


class FlowUnavailableError(SvomflowError):
    """A registered flow cannot be imported (module missing or failing at import)."""


@dataclass(frozen=True)
class FlowSpec:
    """One registered flow and how it is deployed.

    Attributes
    ----------
    name
        The Prefect flow name (``@flow(name=...)``).
    alias
        Short name used on the command line and as the deployment name (``vhf``).
    entrypoint
        ``module:function`` of the flow object.
    description
        One line shown in ``svomflow serve --list`` and on the deployment.
    key_parameter
        Flow parameter that names what the run processes (burst/observation id, night);
        processing status and reprocessing are keyed on it.
    parameters
        Default parameters given to the deployment (merged under the run's own).
    tags
        Prefect tags of the deployment (filters in the UI, tag concurrency limits).
    scheduled
        True for the flow that ``svomflow serve`` puts on the nightly cron schedule.
    config_parameter
        Parameter taking a nested configuration mapping (reprocessing merges ``--set`` and
        ``--config`` values into it).
    overrides_parameter
        Parameter taking ``dotted.key=value`` strings (used when there is no mapping one).
    inputs_parameter
        Parameter listing the input files: with ``key_parameter`` it is enough to re-run
        the flow from a product's provenance when the original run's parameters are gone.
    pipeline
        ``module:NAME`` of the flow's :class:`~svomflow.tasks.step.Pipeline` (its steps).
    cron
        A cron schedule (UTC) on which ``svomflow serve``/``deploy`` run the flow, in
        addition to the nightly one of ``scheduled`` (``"*/5 * * * *"``: every 5 minutes).
    """

    name: str
    alias: str
    entrypoint: str
    description: str
    key_parameter: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    scheduled: bool = False
    config_parameter: str | None = None
    overrides_parameter: str | None = None
    inputs_parameter: str | None = None
    pipeline: str | None = None
    cron: str | None = None

    @property
    def module(self) -> str:
        """Module holding the flow."""
        return self.entrypoint.split(":", 1)[0]

    @property
    def deployment_name(self) -> str:
        """Full Prefect deployment name, ``<flow name>/<alias>``."""
        return f"{self.name}/{self.alias}"

    def load(self) -> Any:
        """Import and return the flow object, or raise :class:`FlowUnavailableError`."""
        module_name, attr = self.entrypoint.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # only "this module does not exist yet" is an unavailable flow; a missing
            # dependency deeper down is a broken flow and says so
            if exc.name == module_name:
                raise FlowUnavailableError(
                    f"flow {self.name}: module {module_name} is not installed"
                ) from None
            raise FlowUnavailableError(f"flow {self.name}: import failed: {exc}") from exc
        except Exception as exc:
            raise FlowUnavailableError(
                f"flow {self.name}: import of {module_name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        flow = getattr(module, attr, None)
        if flow is None:
            raise FlowUnavailableError(f"flow {self.name}: {module_name} has no {attr}")
        return flow

    def load_pipeline(self) -> Any:
        """Import and return the flow's pipeline definition (``None`` when it has none)."""
        if self.pipeline is None:
            return None
        module_name, attr = self.pipeline.split(":", 1)
        return getattr(importlib.import_module(module_name), attr)


_SPECS = (
    FlowSpec(
        name="vhf_quick_analysis",
        alias="vhf",
        entrypoint="svomflow.flows.vhf:vhf_quick_analysis",
        description="Quick look at a burst from the VHF alert data (ECLAIRs + GRM)",
        key_parameter="obs_id",
        tags=("burst", "vhf"),
        config_parameter="config",
        inputs_parameter="event_files",
        pipeline="svomflow.tasks.vhf.pipeline:VHF_PIPELINE",
    ),
    FlowSpec(
        name="xband_analysis",
        alias="xband",
        entrypoint="svomflow.flows.xband:xband_analysis",
        description="Full burst analysis from the X-band event data (ECLAIRs + GRM)",
        key_parameter="obs_id",
        tags=("burst", "xband"),
        config_parameter="config",
        inputs_parameter="events",
        pipeline="svomflow.tasks.xband.pipeline:XBAND_PIPELINE",
    ),
    FlowSpec(
        name="mxt_analysis",
        alias="mxt",
        entrypoint="svomflow.flows.mxt:mxt_analysis",
        description="MXT passes to calibrated events, source list, light curves and spectra",
        key_parameter="obs_id",
        tags=("burst", "mxt"),
        config_parameter="config",
        pipeline="svomflow.tasks.xray.pipeline:MXT_PIPELINE",
    ),
    FlowSpec(
        name="gp1_reduction",
        alias="gp1",
        entrypoint="svomflow.flows.gp1:gp1_reduction",
        description="Robotic-telescope image reduction and alert photometry",
        key_parameter=None,
        tags=("ground", "gp1"),
        config_parameter="config",
        inputs_parameter="images",
        pipeline="svomflow.tasks.gp1.pipeline:GP1_PIPELINE",
    ),
    FlowSpec(
        name="nightly_master_calibration",
        alias="nightly",
        entrypoint="svomflow.flows.nightly_calibration:nightly_master_calibration",
        description="Build, validate and promote the night's master bias/dark/flat",
        key_parameter="night",
        parameters={"night": "last"},
        tags=("calibration", "nightly"),
        scheduled=True,
        config_parameter="config",
        pipeline="svomflow.tasks.masters.pipeline:NIGHTLY_PIPELINE",
    ),
    FlowSpec(
        name="alert_ingest",
        alias="alert",
        entrypoint="svomflow.flows.alert_ingest:alert_ingest",
        description="Archive an incoming alert (VOEvent/JSON) and record its burst as received",
        key_parameter="burst_id",
        tags=("alert",),
        pipeline="svomflow.tasks.alerts.pipeline:ALERT_PIPELINE",
    ),
    FlowSpec(
        name="eic_calibration",
        alias="eic-calib",
        entrypoint="svomflow.flows.eic_calibration:eic_calibration",
        description="ECLAIRs per-pixel gain, on-board band table and SBN thresholds, via the gate",
        parameters={"spectra": "latest"},
        tags=("eic", "calibration"),
        config_parameter="config",
        pipeline="svomflow.flows.eic_calibration:EIC_CALIBRATION_PIPELINE",
        cron="0 5 * * 1",
    ),
    FlowSpec(
        name="eic_saa",
        alias="eic-saa",
        entrypoint="svomflow.flows.eic_saa:eic_saa",
        description="SAA contour from the ECLAIRs rates along the orbit, promoted via the gate",
        tags=("eic", "calibration"),
        config_parameter="config",
        inputs_parameter="rate_files",
        pipeline="svomflow.tasks.eic.saa_pipeline:SAA_PIPELINE",
        cron="0 3 * * 1",
    ),
    FlowSpec(
        name="eic_triggers",
        alias="eic-triggers",
        entrypoint="svomflow.flows.eic_triggers:eic_triggers",
        description="On-board rate triggers vs a ground re-analysis: missed and spurious ones",
        tags=("eic", "monitoring"),
        config_parameter="config",
        pipeline="svomflow.tasks.eic.trigger_pipeline:TRIGGER_PIPELINE",
        cron="30 2 * * *",
    ),
    FlowSpec(
        name="eic_pixel_calibration",
        alias="eic-pixels",
        entrypoint="svomflow.flows.eic_pixels:eic_pixel_calibration",
        description="ECLAIRs bad pixels, uniformity map and dead time of a period, via the gate",
        key_parameter="obs_id",
        parameters={"last_days": 7.0},
        tags=("eic", "calibration"),
        config_parameter="config",
        pipeline="svomflow.tasks.eic.pixels_pipeline:PIXELS_PIPELINE",
        cron="0 4 * * 1",
    ),
    FlowSpec(
        name="hk_ingest",
        alias="hk-ingest",
        entrypoint="svomflow.flows.eic_monitoring:hk_ingest",
        description="Ingest housekeeping files (FITS/JSON) and check their limits",
        key_parameter="key",
        tags=("monitoring", "housekeeping"),
        config_parameter="config",
        inputs_parameter="files",
        pipeline="svomflow.tasks.monitoring.pipeline:INGEST_PIPELINE",
    ),
    FlowSpec(
        name="hk_check",
        alias="hk-check",
        entrypoint="svomflow.flows.eic_monitoring:hk_check",
        description="Housekeeping limit checks (soft/hard/stuck): record raised and cleared alarms",
        tags=("monitoring", "housekeeping"),
        config_parameter="config",
        pipeline="svomflow.tasks.monitoring.pipeline:CHECK_PIPELINE",
        cron="*/5 * * * *",
    ),
    FlowSpec(
        name="hk_daily_report",
        alias="hk-daily",
        entrypoint="svomflow.flows.eic_monitoring:hk_daily_report",
        description="Daily housekeeping status report per instrument (HTML with plots)",
        key_parameter="day",
        parameters={"day": "yesterday"},
        tags=("monitoring", "housekeeping"),
        config_parameter="config",
        pipeline="svomflow.tasks.monitoring.pipeline:DAILY_PIPELINE",
        cron="15 0 * * *",
    ),
    FlowSpec(
        name="hk_trends",
        alias="hk-trends",
        entrypoint="svomflow.flows.eic_monitoring:hk_trends",
        description="Housekeeping trends over the last day, week, month and quarter",
        tags=("monitoring", "housekeeping"),
        config_parameter="config",
        pipeline="svomflow.tasks.monitoring.pipeline:TRENDS_PIPELINE",
        cron="30 0 * * *",
    ),
    FlowSpec(
        name="science_delivery",
        alias="science",
        entrypoint="svomflow.flows.science_delivery:science_delivery",
        description="Validated products delivered to the science database (refusals with reasons)",
        key_parameter="obs_id",
        tags=("science",),
        config_parameter="config",
        pipeline="svomflow.tasks.validation.pipeline:SCIENCE_PIPELINE",
        cron="*/5 * * * *",
    ),
)

REGISTRY: dict[str, FlowSpec] = {s.name: s for s in _SPECS}


def get_spec(name: str) -> FlowSpec:
    """Return the spec of a flow by flow name or alias (``vhf``, ``vhf_quick_analysis``)."""
    if name in REGISTRY:
        return REGISTRY[name]
    for spec in REGISTRY.values():
        if spec.alias == name:
            return spec
    known = ", ".join(f"{s.alias} ({s.name})" for s in REGISTRY.values())
    raise SvomflowError(f"unknown flow {name!r}; registered flows: {known}")


def load_flows(names: list[str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Import the registered flows (all, or those named).

    Returns
    -------
    (loaded, unavailable)
        ``{flow name: flow object}`` and ``{flow name: reason}`` for those that could not
        be imported.
    """
    specs = [get_spec(n) for n in names] if names else list(REGISTRY.values())
    loaded: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for spec in specs:
        try:
            loaded[spec.name] = spec.load()
        except FlowUnavailableError as exc:
            missing[spec.name] = str(exc)
    return loaded, missing
