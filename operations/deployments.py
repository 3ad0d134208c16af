"""Deployments of the registered flows: ``svomflow serve`` and ``svomflow deploy``.

``serve`` registers one deployment per importable flow (readable name ``<flow>/<alias>``,
default parameters, tags) with the nightly calibration on a cron schedule (and any flow
whose registry entry has a ``cron`` on that schedule, in UTC), and executes their runs
(``prefect.serve``), each in its own process forked from one that preloaded the flows and
their kernels (:mod:`svomflow.operations.warm_runner`). ``deploy`` registers the same
deployments on a Prefect *process* work pool, so ``prefect worker start --pool NAME`` on
any machine with svomflow installed runs them, and writes the equivalent ``prefect.yaml``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from svomflow.errors import ConfigError
from svomflow.flows.registry import REGISTRY, FlowSpec, get_spec, load_flows

__all__ = [
    "DeploymentSettings",
    "apply_deployments",
    "build_deployments",
    "ensure_process_pool",
    "nightly_cron",
    "prefect_yaml",
    "preload_modules",
    "serve_deployments",
]

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def nightly_cron(at: str) -> str:
    """Return the daily cron expression for a ``HH:MM`` time (``"03:30"`` -> ``30 3 * * *``)."""
    m = _TIME.match(at.strip())
    if not m:
        raise ConfigError(f"nightly time {at!r} is not HH:MM (24 h)")
    return f"{int(m.group(2))} {int(m.group(1))} * * *"


class DeploymentSettings(BaseModel):
    """What ``svomflow serve``/``deploy`` register."""

    model_config = ConfigDict(extra="forbid")

    flows: list[str] | None = Field(default=None, description="flow names/aliases (all if None)")
    nightly_at: str = Field(default="03:00", description="local time of the nightly run, HH:MM")
    timezone: str = Field(default="UTC", description="IANA time zone of nightly_at")
    nightly_cron: str | None = Field(
        default=None, description="cron expression overriding nightly_at"
    )
    raw_dir: str | None = Field(
        default_factory=lambda: os.environ.get("SVOMFLOW_RAW_DIR"),
        description="raw frames directory of the nightly calibration ($SVOMFLOW_RAW_DIR)",
    )
    parameters: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-flow parameter overrides {flow: {param: value}}"
    )
    dask_address: str | None = Field(default=None, description="Dask scheduler or 'local'")
    version: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def cron(self) -> str:
        """Cron expression of the nightly schedule."""
        return self.nightly_cron or nightly_cron(self.nightly_at)

    def specs(self) -> list[FlowSpec]:
        """Return the flow specs selected."""
        return [get_spec(n) for n in self.flows] if self.flows else list(REGISTRY.values())

    def parameters_for(self, spec: FlowSpec) -> dict[str, Any]:
        """Default parameters of a flow's deployment (registry defaults + settings)."""
        params = dict(spec.parameters)
        if spec.name == "nightly_master_calibration" and self.raw_dir:
            params["raw_dir"] = self.raw_dir
        for key in (spec.name, spec.alias):
            params.update(self.parameters.get(key, {}))
        return params


def _schedules(spec: FlowSpec, settings: DeploymentSettings, params: dict[str, Any]) -> list[Any]:
    if not spec.scheduled and not spec.cron:
        return []
    from prefect.schedules import Cron

    out = []
    if spec.scheduled:
        # a scheduled nightly run with no raw directory would fail every night: keep the
        # schedule visible but inactive until one is configured
        active = "raw_dir" in params or spec.name != "nightly_master_calibration"
        out.append(Cron(settings.cron(), timezone=settings.timezone, active=active))
    if spec.cron:
        # a flow's own schedule is in UTC (housekeeping checks, daily reports follow the
        # mission's clock, not the local time of the machine running them)
        out.append(Cron(spec.cron, timezone="UTC"))
    return out


def build_deployments(
    settings: DeploymentSettings, *, work_pool: str | None = None
) -> tuple[list[Any], dict[str, str]]:
    """Build a ``RunnerDeployment`` for each selected, importable flow.

    Returns
    -------
    (deployments, unavailable)
        The deployments, and ``{flow name: reason}`` for flows that could not be imported.
    """
    from prefect.deployments.runner import EntrypointType

    specs = settings.specs()
    loaded, missing = load_flows([s.name for s in specs])
    deployments = []
    for spec in specs:
        flow = loaded.get(spec.name)
        if flow is None:
            continue
        params = settings.parameters_for(spec)
        # module-path entrypoints: runs import the flow from the installed svomflow, whatever
        # the working directory of the serve process or worker
        kwargs: dict[str, Any] = {"entrypoint_type": EntrypointType.MODULE_PATH}
        if work_pool:
            # workers import the flow by module path: no code storage or image needed
            # where svomflow is installed
            kwargs["work_pool_name"] = work_pool
            if settings.dask_address:
                kwargs["job_variables"] = {"env": {"SVOMFLOW_DASK_ADDRESS": settings.dask_address}}
        deployments.append(
            flow.to_deployment(
                name=spec.alias,
                schedules=_schedules(spec, settings, params),
                parameters=params,
                description=spec.description,
                tags=["svomflow", *spec.tags],
                version=settings.version,
                **kwargs,
            )
        )
    return deployments, missing


def apply_deployments(deployments: list[Any]) -> dict[str, str]:
    """Register deployments with the Prefect API; return ``{full name: deployment id}``."""
    out = {}
    for d in deployments:
        dep_id = d.apply()
        out[f"{d.flow_name}/{d.name}"] = str(dep_id)
    return out


def _entrypoint_module(deployment: Any) -> tuple[str, str]:
    """Return ``(module, attribute)`` of a module-path entrypoint (``pkg.module.flow``)."""
    entry = str(deployment.entrypoint or "")
    module, _, attr = entry.rpartition(".")
    if ":" in entry or not module:
        raise ConfigError(f"{deployment.name}: entrypoint {entry!r} is not a module path")
    return module, attr


def preload_modules(deployments: list[Any]) -> list[str]:
    """Return the modules of the deployments' flows, each once, in order."""
    out: list[str] = []
    for d in deployments:
        module = _entrypoint_module(d)[0]
        if module not in out:
            out.append(module)
    return out


def serve_deployments(
    deployments: list[Any],
    *,
    limit: int | None = None,
    warm: bool = True,
    poll_s: float = 1.0,
    say: Callable[[str], None] | None = None,
) -> None:
    """Register the deployments and execute their runs until interrupted.

    Parameters
    ----------
    deployments
        From :func:`build_deployments` (module-path entrypoints).
    limit
        Maximum concurrent runs of this process.
    warm
        Fork each run from a server process that preloaded the flows and their kernels
        (:mod:`svomflow.operations.warm_runner`): the deployments are given to Prefect's
        runner with their flow objects (``Runner.add_flow``), which it hands to a child
        process (``run_flow_in_subprocess``), forked from that server. If the server cannot
        be used, ``say`` is told why and the runs start cold. False: Prefect's
        ``prefect.serve``, a fresh ``python -m prefect.engine`` per run, importing the
        flow from its entrypoint.
    poll_s
        Seconds between the runner's queries for runs to start (Prefect's default, 10 s,
        would dominate an alert's latency). A run is started as soon as the server's events
        stream says it was scheduled (:mod:`svomflow.operations.run_wakeup`); the polling
        finds those the stream missed.
    say
        Where the one-line messages about the runner go (default: nowhere).
    """
    import asyncio

    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner
    from svomflow.operations.run_wakeup import serve_with_wakeup

    tell = say or (lambda line: None)
    with contextlib.ExitStack() as stack:
        warm = warm and _enter_warm_starter(stack, preload_modules(deployments), tell)
        if not warm:
            tell("cold runs: a fresh interpreter per run")
        runner = Runner(limit=limit, query_seconds=poll_s, pause_on_shutdown=True)
        for d in deployments:
            if not warm:
                runner.add_deployment(d)
                continue
            module, attr = _entrypoint_module(d)
            runner.add_flow(
                getattr(importlib.import_module(module), attr),
                name=d.name,
                schedules=d.schedules,
                parameters=d.parameters,
                description=d.description,
                tags=d.tags,
                version=d.version,
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        tell(f"serving {', '.join(f'{d.flow_name}/{d.name}' for d in deployments)}")
        try:
            asyncio.run(serve_with_wakeup(runner, tell))
        except (KeyboardInterrupt, TerminationSignal):
            tell("stopped")


def _enter_warm_starter(
    stack: contextlib.ExitStack, modules: list[str], tell: Callable[[str], None]
) -> bool:
    """Start the warm forkserver and route the runner's runs through it; False if it cannot."""
    from svomflow.operations.warm_runner import (
        WarmServerError,
        check_prefect,
        start_warm_server,
        warm_starter,
    )

    try:
        check_prefect()
        state = start_warm_server(modules)
        stack.enter_context(warm_starter())
    except WarmServerError as exc:
        tell(f"warning: {exc}")
        return False
    kernels = state["kernels"]
    tell(
        f"warm runs: forked from server pid {state['pid']} ({len(modules)} flow modules, "
        f"{kernels.get('loaded', 0)} kernels from the cache, preloaded in "
        f"{state['seconds']:.1f} s)"
    )
    for error in state["errors"]:
        tell(f"warning: not preloaded: {error}")
    return True


def ensure_process_pool(name: str, *, concurrency: int | None = None) -> None:
    """Create (or keep) a Prefect work pool of type ``process``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", concurrency_limit=concurrency)
            )
        except ObjectAlreadyExists:
            if concurrency is not None:
                client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=concurrency))


def prefect_yaml(
    settings: DeploymentSettings,
    *,
    work_pool: str,
    working_directory: str,
    concurrency: int | None = None,
) -> str:
    """Return a ``prefect.yaml`` with the same deployments, for ``prefect deploy --all``.

    Entrypoints are files of the svomflow source tree, relative to ``working_directory``
    (the checkout on the worker machines, set by the pull step).
    """
    deployments = []
    for spec in settings.specs():
        module, func = spec.entrypoint.split(":")
        parts = module.split(".")
        if parts[:2] != ["svomflow", "flows"]:
            raise ConfigError(f"{spec.name}: entrypoint {spec.entrypoint} is not in svomflow.flows")
        params = settings.parameters_for(spec)
        entry: dict[str, Any] = {
            "name": spec.alias,
            "entrypoint": f"flows/{'/'.join(parts[2:])}.py:{func}",
            "description": spec.description,
            "tags": ["svomflow", *spec.tags],
            "parameters": params,
            "work_pool": {"name": work_pool, "job_variables": {}},
        }
        if settings.dask_address:
            entry["work_pool"]["job_variables"] = {
                "env": {"SVOMFLOW_DASK_ADDRESS": settings.dask_address}
            }
        if spec.scheduled:
            entry["schedules"] = [
                {
                    "cron": settings.cron(),
                    "timezone": settings.timezone,
                    "active": "raw_dir" in params,
                }
            ]
        if spec.cron:
            entry.setdefault("schedules", []).append(
                {"cron": spec.cron, "timezone": "UTC", "active": True}
            )
        deployments.append(entry)
    doc = {
        "name": "svomflow",
        "prefect-version": "3.8.8",
        "build": None,
        "push": None,
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": str(working_directory)
                }
            }
        ],
        "deployments": deployments,
    }
    header = (
        "# svomflow deployments on a Prefect process work pool (written by `svomflow deploy`).\n"
        f"#   prefect work-pool create {work_pool} --type process"
        + (
            f"\n#   prefect work-pool set-concurrency-limit {work_pool} {concurrency}"
            if concurrency
            else ""
        )
        + "\n#   prefect --no-prompt deploy --all\n"
        f"#   prefect worker start --pool {work_pool}     # on each processing machine\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False)


def write_prefect_yaml(path: str | Path, text: str) -> Path:
    """Write the ``prefect.yaml`` text atomically."""
    from svomflow.atomic import atomic_write_bytes

    p = Path(path)
    atomic_write_bytes(p, text.encode())
    return p
