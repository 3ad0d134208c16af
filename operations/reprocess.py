"""Reprocessing: re-run a flow on the same inputs as a burst's current products.

The inputs come from the database: the current products of the burst made by the flow name
the flow run that made them; that run's parameters (read back from the Prefect API) are the
call to repeat. When the run is no longer in the Prefect API (retention), flows whose
registry entry names an inputs parameter are rebuilt from the products' provenance (input
files + merged configuration). Either way the input files must still be there with the
checksums recorded in the provenance: reprocessing is on the same inputs, or not at all.

``--set``/``--config`` values are merged into the flow's configuration parameter. The product
store does the versioning: a changed configuration makes version N+1 and supersedes N (kept
on disk and in the database); identical inputs and configuration return the same products.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import yaml
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlmodel import Session, select
from svomflow.atomic import sha256_file
from svomflow.config.loader import deep_merge, parse_set_overrides, read_yaml_mapping
from svomflow.errors import ConfigError, InputDataError, SvomflowError
from svomflow.flows.prefect_flow import flow
from svomflow.flows.registry import FlowSpec, get_spec
from svomflow.products.database import ProductRow, make_engine

__all__ = [
    "ReprocessPlan",
    "ReprocessResult",
    "keys_in_range",
    "plan_reprocess",
    "reprocess_batch",
    "run_plans",
]


@dataclass
class ReprocessPlan:
    """One flow run to make: the burst, the parameters and where they came from."""

    spec: FlowSpec
    key: str
    parameters: dict[str, Any]
    source: str
    # (type code, instrument) -> (version, id) of the current products before the run
    previous: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)


@dataclass
class ReprocessResult:
    """What a reprocessing run did to the burst's products."""

    key: str
    state: str
    flow_run_id: str | None
    message: str
    products: list[dict[str, Any]] = field(default_factory=list)

    @property
    def new_versions(self) -> list[dict[str, Any]]:
        """Products whose version changed."""
        return [p for p in self.products if p["change"] == "new version"]


def _current_rows(engine: Any, spec: FlowSpec, key: str) -> list[ProductRow]:
    with Session(engine) as s:
        stmt = select(ProductRow).where(
            ProductRow.obs_id == key,
            ProductRow.flow_name == spec.name,
            ProductRow.superseded == False,  # noqa: E712 - SQL expression
            ProductRow.checksum != "pending",
        )
        # a version whose file is gone cannot be the base of a reprocessing
        return [r for r in s.exec(stmt) if Path(r.path).is_file()]


def keys_in_range(
    flow: str | FlowSpec, start: date, end: date, *, database_url: str | None = None
) -> list[str]:
    """Return the bursts with current products of ``flow`` made between two dates (UTC, inclusive)."""
    spec = flow if isinstance(flow, FlowSpec) else get_spec(flow)
    t0 = datetime.combine(start, time.min, tzinfo=UTC)
    t1 = datetime.combine(end, time.max, tzinfo=UTC)
    with Session(make_engine(database_url)) as s:
        stmt = select(ProductRow.obs_id).where(
            ProductRow.flow_name == spec.name,
            ProductRow.superseded == False,  # noqa: E712 - SQL expression
            ProductRow.created >= t0,
            ProductRow.created <= t1,
            ProductRow.checksum != "pending",
        )
        return sorted(set(s.exec(stmt)))


def _run_parameters(flow_run_id: str) -> dict[str, Any] | None:
    """Parameters of a flow run from the Prefect API, or None if it is not there."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            return dict(client.read_flow_run(UUID(str(flow_run_id))).parameters)
    except (ObjectNotFound, ValueError):
        return None


def _check_inputs(rows: Sequence[ProductRow]) -> None:
    seen: dict[str, str] = {}
    for row in rows:
        for ref in (row.provenance or {}).get("inputs", []):
            seen.setdefault(ref["path"], ref["sha256"])
    bad = []
    for path, digest in seen.items():
        if not Path(path).is_file():
            bad.append(f"{path} (missing)")
        elif sha256_file(path) != digest:
            bad.append(f"{path} (changed since the products were made)")
    if bad:
        raise InputDataError("cannot reprocess on the same inputs: " + "; ".join(bad))


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in mapping.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, name + ".")
        else:
            out.append(
                f"{name}={json.dumps(v) if not isinstance(v, str) else yaml.safe_dump(v).strip()}"
            )
    return out


def _apply_config(
    spec: FlowSpec, params: dict[str, Any], sets: Sequence[str], files: Sequence[str | Path]
) -> dict[str, Any]:
    if not sets and not files:
        return params
    changes: dict[str, Any] = {}
    for f in files:
        changes = deep_merge(changes, read_yaml_mapping(f))
    changes = deep_merge(changes, parse_set_overrides(sets))
    params = dict(params)
    if spec.config_parameter:
        current = params.get(spec.config_parameter) or {}
        if hasattr(current, "model_dump"):
            current = current.model_dump(mode="json")
        params[spec.config_parameter] = deep_merge(current, changes)
    elif spec.overrides_parameter:
        params[spec.overrides_parameter] = [
            *(params.get(spec.overrides_parameter) or []),
            *_flatten(changes),
        ]
    else:
        raise ConfigError(f"flow {spec.name} takes no configuration: --set/--config do not apply")
    return params


def plan_reprocess(
    flow: str | FlowSpec,
    keys: Sequence[str],
    *,
    sets: Sequence[str] = (),
    config_files: Sequence[str | Path] = (),
    database_url: str | None = None,
    check_inputs: bool = True,
) -> list[ReprocessPlan]:
    """Work out the flow call that re-makes each burst's products.

    Raises
    ------
    SvomflowError
        A burst has no current products of the flow, or its parameters cannot be recovered.
    InputDataError
        An input file recorded in the provenance is missing or changed.
    """
    spec = flow if isinstance(flow, FlowSpec) else get_spec(flow)
    engine = make_engine(database_url)
    plans = []
    for key in keys:
        rows = _current_rows(engine, spec, key)
        if not rows:
            raise SvomflowError(f"no current products of {spec.name} for {key!r} in the database")
        if check_inputs:
            _check_inputs(rows)
        latest = max(rows, key=lambda r: r.created)
        params = _run_parameters(latest.flow_run_id) if latest.flow_run_id else None
        if params is not None:
            source = f"parameters of flow run {latest.flow_run_id}"
        elif spec.inputs_parameter and spec.key_parameter:
            prov = latest.provenance or {}
            params = {
                spec.key_parameter: key,
                spec.inputs_parameter: [i["path"] for i in prov.get("inputs", [])],
            }
            if spec.config_parameter and prov.get("config"):
                params[spec.config_parameter] = prov["config"]
            if database_url:
                params["database_url"] = database_url
            source = f"provenance of product {latest.id}"
        else:
            raise SvomflowError(
                f"the flow run that made {key!r} ({latest.flow_run_id}) is not in the Prefect API "
                f"and {spec.name} cannot be rebuilt from provenance alone; run it again by hand"
            )
        plans.append(
            ReprocessPlan(
                spec=spec,
                key=key,
                parameters=_apply_config(spec, params, sets, config_files),
                source=source,
                previous={(r.type_code, r.instrument): (r.version, r.id) for r in rows},
            )
        )
    return plans


def _execute(plan: ReprocessPlan, mode: str) -> tuple[str, str | None, str]:
    name = f"reprocess-{plan.spec.alias}-{plan.key}"
    if mode == "deployment":
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        # called outside an event loop: Prefect's sync/async dual returns the flow run
        fr = cast(
            FlowRun,
            run_deployment(
                plan.spec.deployment_name,
                parameters=plan.parameters,
                flow_run_name=name,
                tags=["reprocess"],
                as_subflow=False,
            ),
        )
        if fr.state is None:
            return "unknown", str(fr.id), "the API returned the run without a state"
        return fr.state.type.value.lower(), str(fr.id), fr.state.message or ""
    flow = plan.spec.load().with_options(flow_run_name=name)
    state = flow(**plan.parameters, return_state=True)
    return state.type.value.lower(), str(state.state_details.flow_run_id), state.message or ""


# one task per burst so the Dask workers (or threads) run whole flow runs; no result
# persistence or cache: the products are the result, recorded by the flow itself
@task(name="reprocess", cache_policy=NO_CACHE, persist_result=False)
def _run_one(plan: ReprocessPlan, mode: str) -> tuple[str, str | None, str]:
    """Run one plan; a failed flow is a result, not an exception (the others go on)."""
    try:
        return _execute(plan, mode)
    except Exception as exc:
        return "failed", None, f"{type(exc).__name__}: {exc}"


def _changes(engine: Any, plan: ReprocessPlan) -> list[dict[str, Any]]:
    """List the burst's current products, each marked new, unchanged or a new version."""
    products = []
    for row in _current_rows(engine, plan.spec, plan.key):
        before = plan.previous.get((row.type_code, row.instrument))
        change = (
            "new product"
            if before is None
            else "unchanged"
            if before[1] == row.id
            else "new version"
        )
        products.append(
            {
                "type": row.type_code,
                "instrument": row.instrument,
                "version": row.version,
                "id": row.id,
                "change": change,
            }
        )
    return products


# the progress callback of the running batch: not a flow parameter, since the flow's context
# (parameters included) is pickled to the Dask workers and a callback may not pickle
_PROGRESS: ContextVar[Callable[[ReprocessResult], None] | None] = ContextVar(
    "reprocess_progress", default=None
)


def _progress() -> Callable[[ReprocessResult], None] | None:
    # through a function: the batch flow is pickled by value, a ContextVar does not pickle
    return _PROGRESS.get()


@flow(name="reprocess", persist_result=False, validate_parameters=False)
def reprocess_batch(
    plans: list[ReprocessPlan], mode: str = "direct", database_url: str | None = None
) -> list[ReprocessResult]:
    """Run each plan as one task on the flow's task runner; report what changed per burst.

    The batch is a flow run of its own so that its task runner is the one choice of runner
    (:func:`~svomflow.flows.adapter.task_runner_for`, set by :func:`run_plans`) and the
    reprocessed flow runs appear under it in the Prefect UI.
    """
    engine = make_engine(database_url)
    futures = [
        _run_one.with_options(task_run_name=f"reprocess-{p.key}").submit(p, mode) for p in plans
    ]
    progress = _progress()
    results = []
    for plan, future in zip(plans, futures, strict=True):
        try:
            state, run_id, message = future.result()
        except Exception as exc:  # the task itself failed (a Dask worker died)
            state, run_id, message = "failed", None, f"{type(exc).__name__}: {exc}"
        result = ReprocessResult(plan.key, state, run_id, message, _changes(engine, plan))
        if progress:
            progress(result)
        results.append(result)
    return results


def run_plans(
    plans: Sequence[ReprocessPlan],
    *,
    concurrency: int = 2,
    mode: str = "direct",
    database_url: str | None = None,
    progress: Callable[[ReprocessResult], None] | None = None,
    dask: str | None = None,
) -> list[ReprocessResult]:
    """Run the plans, at most ``concurrency`` at a time; report what changed per burst.

    Each plan is one Prefect task (``reprocess-<key>``, the flow run inside it) of the
    :func:`reprocess_batch` flow, on the task runner of
    :func:`~svomflow.flows.adapter.task_runner_for`: ``concurrency`` threads of this
    process, or the workers of a Dask cluster when ``dask`` is given (a scheduler address
    ``tcp://host:8786``, or ``"local"`` for an in-process cluster), whose workers then bound
    the concurrency. ``mode="direct"`` runs the flows in the worker (a thread here, or a Dask
    worker process, which must see the same home, products and database); ``"deployment"``
    submits ``run_deployment`` calls to the served/worker deployments and waits for each
    (threads only: the deployments' own workers do the work).
    """
    if concurrency < 1:
        raise ConfigError("concurrency must be at least 1")
    if dask and mode == "deployment":
        raise ConfigError("a Dask cluster runs the flows itself: --dask needs --direct")
    if not plans:
        return []
    from svomflow.flows.adapter import task_runner_for

    batch = reprocess_batch.with_options(
        flow_run_name=f"reprocess-{plans[0].spec.alias}-{len(plans)}",
        task_runner=task_runner_for(dask or "", max_workers=concurrency),
    )
    token = _PROGRESS.set(progress)
    try:
        return batch(list(plans), mode, database_url)
    finally:
        _PROGRESS.reset(token)
