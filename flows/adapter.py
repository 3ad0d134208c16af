"""The one Prefect adapter: runs any pipeline of steps as a flow's tasks, and what flows share.

:func:`run_pipeline` is the body of every pipeline flow: it resolves all the calibration the
pipeline's steps declare in the flow's first task (failing early and naming every missing
file), reads the inputs once, then runs the pipeline's plan with a :class:`PrefectRunner`
(each step call is one thin task; its science products are published through the catalogue
in a retried task on the publication lane, :mod:`svomflow.flows.publication_lane`, its
figures and previews after them on the publisher's figure thread, both while the next steps
run) and returns the outcome with small product references, once every product is
written. A flow function only builds the request and the configuration, calls it, and
writes its summary.

Also here: the run's :class:`FlowContext` (output root, database, processing key), the
failure hook :func:`record_failure`, the summary artifact :func:`publish_summary`, the task
runner choice :func:`task_runner_for` and the retry rule :func:`transient_error`.

Prefect is imported when the first task is made (:func:`_tasks`), not with this module:
:func:`run_pipeline_plain` and the ``--no-prefect`` commands that use it import this module
and must not pay Prefect's import (seconds of CPU in a fresh process).
"""

from __future__ import annotations

import os
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Generic, NamedTuple, ParamSpec, TypeVar, cast

from pydantic import BaseModel
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import SvomflowError
from svomflow.flows.publication_lane import LanePublisher, PublicationLane
from svomflow.products.catalogue import Product
from svomflow.products.catalogue.publish import CataloguePublisher
from svomflow.products.store import ProductRef, ProductStore
from svomflow.tasks.step import (
    Pipeline,
    Step,
    StepFuture,
    check_outputs,
    resolve_pipeline_calibration,
    run_plain,
)

P = ParamSpec("P")
R = TypeVar("R")
RequestT = TypeVar("RequestT")
ConfigT = TypeVar("ConfigT", bound=BaseModel)
OutcomeT = TypeVar("OutcomeT")

__all__ = [
    "PREVIEW_MAX_BYTES",
    "FlowContext",
    "PipelineRun",
    "PrefectRunner",
    "default_output_root",
    "preview_markdown",
    "product_link",
    "products_table_markdown",
    "publish_flow_products",
    "publish_summary",
    "record_failure",
    "run_key",
    "run_pipeline",
    "run_pipeline_plain",
    "task_runner_for",
    "transient_error",
]


def default_output_root() -> Path:
    """Return ``$SVOMFLOW_PRODUCTS`` or ``$SVOMFLOW_HOME/products``."""
    from svomflow.paths import data_home

    env = os.environ.get("SVOMFLOW_PRODUCTS")
    return Path(env) if env else data_home() / "products"


@dataclass(frozen=True)
class FlowContext:
    """Where a flow run writes and records: output root, database and processing key."""

    flow_name: str
    key: str
    out_root: str
    database_url: str | None = None

    def store(self) -> ProductStore:
        """Return a product store for this run (cheap: engines are cached per URL)."""
        return ProductStore(self.out_root, self.database_url)

    def status(self, state: str, reason: str | None = None) -> None:
        """Record the processing state of this run's key."""
        from svomflow.products.provenance import current_flow_run_id

        self.store().set_status(
            self.key, self.flow_name, state, reason=reason, flow_run_id=current_flow_run_id()
        )


def record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` hook: store 'failed' with the reason for the run's key.

    The key is the run's ``obs_id`` (or ``night``, ``burst_id``), else the name of its first
    input file (``images``/``events``); ``out_dir``/``output_dir`` and ``database_url`` are
    honoured; the reason is the state's message.
    """
    params = dict(getattr(flow_run, "parameters", {}) or {})
    key = run_key(params)
    if not key:
        return
    out_root = params.get("out_dir") or params.get("output_dir") or str(default_output_root())
    reason = (getattr(state, "message", None) or "failed")[:2000]
    ctx = FlowContext(flow.name, str(key), str(out_root), params.get("database_url"))
    try:
        ctx.status("failed", reason)
    except Exception as exc:
        import logging

        logging.getLogger("svomflow.flows").error("could not record failure of %s: %s", key, exc)


def run_key(params: Mapping[str, Any]) -> str | None:
    """Return what a flow run processes, from its parameters (used for status and names)."""
    for name in ("obs_id", "night", "burst_id"):
        if params.get(name):
            return str(params[name])
    for name in ("images", "events", "l1_files"):
        files = params.get(name)
        if files:
            first = files[0] if isinstance(files, list | tuple) else files
            return Path(str(first)).name
    return None


# A preview above this size is linked, not embedded: the artifact lives in the Prefect
# database and the UI loads it whole.
PREVIEW_MAX_BYTES = 400_000


def product_link(path: str | os.PathLike[str]) -> str | None:
    """Return the HTTP address of a product file, or None when it is not served.

    Products are served read-only from the products root at ``$SVOMFLOW_PRODUCTS_URL``:
    the flow commands set it to the ``/files`` of the instrument-centre site (``svomflow
    web``), started with the Prefect server, since ``file://`` links do not open from the
    Prefect UI. A file outside the root has no address.
    """
    base = os.environ.get("SVOMFLOW_PRODUCTS_URL")
    if not base:
        return None
    root = default_output_root().expanduser().resolve()
    target = Path(path).resolve()
    if root not in target.parents:
        return None
    rel = target.relative_to(root).as_posix()
    return f"{base.rstrip('/')}/{urllib.parse.quote(rel)}"


def preview_markdown(path: str | os.PathLike[str], max_bytes: int = PREVIEW_MAX_BYTES) -> str:
    """Return a preview image for the artifact: embedded as a data URI when small enough.

    Larger (or unreadable) images are linked through :func:`product_link`, else named.
    """
    import base64
    import mimetypes

    p = Path(path)
    kind = mimetypes.guess_type(p.name)[0] or "image/png"
    try:
        if p.stat().st_size <= max_bytes:
            data = base64.b64encode(p.read_bytes()).decode("ascii")
            return f"![{p.name}](data:{kind};base64,{data})"
    except OSError:
        return f"{p.name} (missing)"
    link = product_link(p)
    return f"![{p.name}]({link})" if link else f"{p.name} (too large to embed: {p})"


def products_table_markdown(refs: Sequence[ProductRef]) -> str:
    """Return a markdown table of products, each linked over HTTP when served."""
    lines = ["| product | instrument | version | file |", "|---|---|---|---|"]
    for r in refs:
        name = Path(r.path).name
        link = product_link(r.path)
        cell = f"[{name}]({link})" if link else f"`{r.path}`"
        lines.append(f"| {r.type_code} | {r.instrument} | v{r.version} | {cell} |")
    return "\n".join(lines)


def publish_summary(
    *,
    title: str,
    key: str,
    refs: Sequence[ProductRef],
    numbers: Mapping[str, Any] | None = None,
    previews: Sequence[str] = (),
    artifact_key: str | None = None,
) -> str:
    """Attach a markdown summary artifact (key numbers, product table, previews) to the run.

    Returns the markdown text (also useful outside Prefect). Previews are embedded as data
    URIs (bounded by :data:`PREVIEW_MAX_BYTES`) and products linked over HTTP
    (:func:`product_link`), so both work in the Prefect UI.
    """
    parts = [f"# {title}", ""]
    if numbers:
        parts += ["| quantity | value |", "|---|---|"]
        parts += [f"| {k} | {v} |" for k, v in numbers.items()]
        parts.append("")
    parts += ["## Products", "", products_table_markdown(refs), ""]
    if previews:
        parts += ["## Previews", ""]
        parts += [preview_markdown(p) + "\n" for p in previews]
    text = "\n".join(parts)
    if "prefect" not in sys.modules:
        return text  # no flow run without Prefect: do not import it just to find none
    try:
        from prefect.artifacts import create_markdown_artifact
        from prefect.context import FlowRunContext

        if FlowRunContext.get() is not None:
            safe_key = (artifact_key or f"{title}-{key}").lower()
            safe_key = "".join(c if c.isalnum() or c == "-" else "-" for c in safe_key)[:100]
            create_markdown_artifact(markdown=text, key=safe_key, description=title)
    except ImportError:
        pass
    return text


def task_runner_for(address: str | None = None, *, max_workers: int | None = None) -> Any:
    """Return the task runner for a flow's fan-out: threads, or Dask when one is configured.

    Parameters
    ----------
    address
        ``None`` reads ``$SVOMFLOW_DASK_ADDRESS``; empty means the default thread pool;
        ``"local"`` starts a Dask ``LocalCluster`` per flow run (2 workers, no dashboard);
        anything else is the address of a running Dask scheduler (``tcp://host:8786``).
    max_workers
        Threads of the thread runner (default ``min(8, cpu count)``: Prefect's default pool
        is unbounded).

    Notes
    -----
    Dask submission costs ~65 ms per task here (ARCHITECTURE.md §10), so it pays only for
    coarse tasks (seconds each): per-group masters, per-image reductions, Monte Carlo batches.
    """
    from prefect.task_runners import ThreadPoolTaskRunner

    if address is None:
        address = os.environ.get("SVOMFLOW_DASK_ADDRESS", "")
    address = address.strip()
    if not address:
        return ThreadPoolTaskRunner(max_workers=max_workers or min(8, os.cpu_count() or 1))
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        from svomflow.errors import ConfigError

        raise ConfigError(
            f"a Dask address is set ({address!r}) but prefect-dask is not installed: "
            "pip install 'svomflow[dask]'"
        ) from exc
    if address == "local":
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": 2,
                "threads_per_worker": 1,
                "processes": False,
                "dashboard_address": None,
            }
        )
    return DaskTaskRunner(address=address)


def transient_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry I/O and database errors, never user errors.

    A bad header value or a missing calibration (:class:`~svomflow.errors.SvomflowError`)
    fails the same way on every try; a locked database, a network file system hiccup or a
    dropped database connection may not.
    """
    from sqlalchemy.exc import OperationalError
    from svomflow.errors import SvomflowError

    try:
        state.result()
    except SvomflowError:
        return False
    except (OSError, OperationalError, TimeoutError):
        return True
    except Exception:
        return False
    return False


# --------------------------------------------------------------------------- the adapter


@dataclass
class PipelineRun(Generic[OutcomeT]):
    """What :func:`run_pipeline` returns: the plan's outcome and what was published."""

    outcome: OutcomeT
    refs: list[ProductRef]
    calibration: CalibrationSet
    warnings: list[str]


def _run_step(step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run one pure step call (never retried: a step is deterministic on its inputs)."""
    return step.run(*args, **kwargs)


def _opaque(*values: Any) -> list[Any]:
    """Return a task call's arguments, each marked for Prefect not to walk into it.

    Prefect walks every argument of a task call, element by element, to find the task runs
    it came from (the UI's dependency edges) and the futures to resolve: through the data
    objects steps pass (event lists, tables, calibration sets, products) that walk was
    about 0.5 s of a 1e6-event VHF run. Each argument marked ``opaque`` is still looked at
    whole (an earlier step's result is recognised: the edge stays) but not inside.
    """
    from prefect.utilities.annotations import opaque

    return [opaque(v) for v in values]


def _step_call(
    step: Step[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """Return the ``step`` task's arguments for one step call, every value opaque."""
    opaque_step, *opaque_args = _opaque(step, *args)
    return (
        opaque_step,
        tuple(opaque_args),
        dict(zip(kwargs, _opaque(*kwargs.values()), strict=True)),
    )


def _runs_in_this_process() -> bool:
    """Whether the current flow's task runner runs submitted tasks in this process (threads).

    Prefect's ``opaque`` marker is a tuple subclass that pickles as a tuple of its tuple:
    through Dask's workers a step would receive ``(step,)``. Submitted calls are marked
    only for the thread runner; direct calls always run here.
    """
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    ctx = FlowRunContext.get()
    return ctx is not None and isinstance(ctx.task_runner, ThreadPoolTaskRunner)


def _publish(
    publisher: CataloguePublisher, step: Step[Any, Any], products: list[Product]
) -> list[ProductRef]:
    """Publish a step's products (retried on I/O and database errors only)."""
    return publisher.publish(step, products)


def _resolve(
    pipeline: Pipeline[Any, Any, Any, Any],
    request: Any,
    config: Any,
    caldb_root: str | None,
    index_version: int | None,
) -> CalibrationSet:
    """Select and load every calibration file the steps declare (the flow's first task)."""
    return resolve_pipeline_calibration(
        pipeline, request, config, caldb_root=caldb_root, index_version=index_version
    )


def _read(pipeline: Pipeline[Any, Any, Any, Any], request: Any, cal: CalibrationSet) -> Any:
    """Read the inputs once (retried on I/O errors, never on bad input)."""
    return pipeline.read(request, cal)


class _PrefectTasks(NamedTuple):
    """The adapter's Prefect tasks: a step call, a publication, calibration, reading."""

    step: Any
    publish: Any
    resolve: Any
    read: Any


@cache
def _tasks() -> _PrefectTasks:
    """Return the adapter's tasks, importing Prefect on first use (see the module docstring)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    def io_task(name: str, delays: tuple[float, ...]) -> Any:
        # I/O is retried after ``delays`` on transient errors only
        return task(
            name=name,
            cache_policy=NO_CACHE,
            persist_result=False,
            retries=len(delays),
            retry_delay_seconds=list(delays),
            retry_condition_fn=transient_error,
        )

    return _PrefectTasks(
        step=task(name="step", cache_policy=NO_CACHE, persist_result=False)(_run_step),
        publish=io_task("publish", (1, 3))(_publish),
        resolve=io_task("resolve-calibration", (2, 5))(_resolve),
        read=io_task("read-inputs", (1, 3))(_read),
    )


class _PrefectStepFuture(Generic[R]):
    """A submitted step call: waits for the task, then hands its products to the lane once."""

    def __init__(self, runner: PrefectRunner, step: Step[Any, R], name: str, future: Any) -> None:
        self._runner, self._step, self._name, self._future = runner, step, name, future
        self._done = False
        self._value: Any = None

    def result(self) -> R:
        """Wait for the step call and queue the publication of its products (once)."""
        if not self._done:
            value = self._future.result()
            self._runner._publish(self._step, self._name, value)
            self._value, self._done = value, True
        return cast(R, self._value)


class PrefectRunner:
    """Runner whose step calls are Prefect tasks named after the step.

    Concurrent calls (:meth:`submit`) go to the flow's task runner (threads, or Dask for a
    flow that sets one); products are always published from the flow's own process, in a
    retried ``publish`` task run on the publication lane (in call order, while the next
    steps run; their references come from the lane's ``finish``).

    Parameters
    ----------
    publisher
        Where products go (the catalogue publisher of the run), or None.
    lane
        Where the ``publish`` tasks run (required with a publisher).
    label
        Suffix of the task-run names (``lightcurves-eclairs``); see :meth:`named`.
    """

    def __init__(
        self,
        publisher: CataloguePublisher | None,
        lane: PublicationLane | None = None,
        label: str | None = None,
    ) -> None:
        if publisher is not None and lane is None:
            raise ValueError("a publisher needs a publication lane")
        self.publisher = publisher
        self.lane = lane
        self.label = label
        self.warnings: list[str] = []
        self._lock = threading.Lock()

    def named(self, label: str) -> PrefectRunner:
        """Return a view of this runner whose task runs are named ``<step>-<label>``."""
        view = PrefectRunner(self.publisher, self.lane, label)
        view.warnings, view._lock = self.warnings, self._lock
        return view

    def _task_name(self, step: Step[Any, Any]) -> str:
        return f"{step.name}-{self.label}" if self.label else step.name

    def _publish(self, step: Step[Any, Any], name: str, result: object) -> None:
        products = check_outputs(step, result)
        publisher, lane = self.publisher, self.lane
        if products and publisher is not None and lane is not None:
            task = _tasks().publish.with_options(task_run_name=f"publish-{name}")
            call = _opaque(publisher, step, products)
            lane.submit(lambda: task(*call))

    def run(self, step: Step[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one step call as a task now; publish its products; return its result."""
        name = self._task_name(step)
        task = _tasks().step.with_options(name=step.name, task_run_name=name)
        result = task(*_step_call(step, args, kwargs))
        self._publish(step, name, result)
        return cast(R, result)

    def submit(self, step: Step[P, R], *args: P.args, **kwargs: P.kwargs) -> StepFuture[R]:
        """Start one step call on the flow's task runner; ``.result()`` waits and publishes."""
        name = self._task_name(step)
        task = _tasks().step.with_options(name=step.name, task_run_name=name)
        if _runs_in_this_process():
            fut = task.submit(*_step_call(step, args, kwargs))
        else:  # Dask pickles the call: an opaque value does not survive it (Prefect 3.8)
            fut = task.submit(step, tuple(args), dict(kwargs))
        return _PrefectStepFuture(self, step, name, fut)

    def warn(self, message: str) -> None:
        """Log a warning to the flow run (shown in the UI)."""
        from prefect import get_run_logger
        from prefect.exceptions import MissingContextError

        with self._lock:
            self.warnings.append(message)
        try:
            get_run_logger().warning(message)
        except MissingContextError:  # outside a run context
            import logging

            logging.getLogger("svomflow.flows").warning(message)


def run_pipeline(
    pipeline: Pipeline[RequestT, Any, ConfigT, OutcomeT],
    request: RequestT,
    config: ConfigT,
    ctx: FlowContext,
    *,
    inputs: Sequence[str] = (),
    caldb_root: str | None = None,
    index_version: int | None = None,
) -> PipelineRun[OutcomeT]:
    """Run a pipeline inside the current flow run (see the module docstring).

    Parameters
    ----------
    pipeline
        The pipeline definition.
    request
        What the run processes (the flow's parameters as the pipeline's request object).
    config
        The merged configuration (recorded in every product's provenance).
    ctx
        Output root, database and processing key of the run.
    inputs
        The input files (checksummed into every product's provenance).
    caldb_root, index_version
        The CALDB to select from (default ``$SVOMFLOW_CALDB`` or the home's) and an index
        version to reproduce an earlier calibration context.
    """
    ctx.status("running")
    cal = (
        _tasks().resolve(*_opaque(pipeline, request, config), caldb_root, index_version)
        if pipeline.calibration_codes
        else CalibrationSet()  # nothing declared: no CALDB to open, no task to wait for
    )
    data = _tasks().read(*_opaque(pipeline, request, cal))
    publisher = CataloguePublisher(
        ctx.store(),
        obs_id=ctx.key,
        flow_name=ctx.flow_name,
        config=config,
        inputs=list(inputs),
        calibration=cal.refs(),
        background_figures=True,
    )
    lane = PublicationLane()
    runner = PrefectRunner(publisher, lane)
    with _publications_finished(lane, publisher):
        outcome = pipeline.plan(runner, data, config, cal)
        refs = lane.finish()
        refs.extend(publisher.finish_figures())
    return PipelineRun(outcome, refs, cal, list(runner.warnings))


@contextmanager
def _publications_finished(lane: PublicationLane, publisher: CataloguePublisher) -> Iterator[None]:
    """Stop the publication lane, then the publisher's figure thread, after their last batch.

    Science products are written on the lane and figures (PNG products, previews) on the
    figure thread while the next steps run; the block waits for them
    (:meth:`PublicationLane.finish`, :meth:`CataloguePublisher.finish_figures`). On an
    error the batches already queued are still finished (or fail) before the error goes
    up, so no run ends while one of its files is being written.
    """
    try:
        yield
    finally:
        lane.close()  # the lane's last batches may still queue figures: it stops first
        publisher.close()


@dataclass(frozen=True)
class _FlowStage:
    """The publisher's view of flow-level work (no step, no calibration of its own)."""

    name: str
    calibration: tuple[str, ...] = ()


def publish_flow_products(
    ctx: FlowContext,
    config: BaseModel | Mapping[str, Any] | None,
    products: Sequence[Product],
    *,
    name: str,
    inputs: Sequence[str] = (),
) -> list[ProductRef]:
    """Publish products a flow makes from its steps' results (a summary page) via the catalogue.

    Parameters
    ----------
    ctx
        The run's output root, database and key.
    config
        The run's merged configuration (recorded in provenance).
    products
        Catalogue products (checked against their declarations).
    name
        What made them (recorded as the publishing stage's name).
    inputs
        The run's input files (checksummed into provenance).
    """
    publisher = CataloguePublisher(
        ctx.store(), obs_id=ctx.key, flow_name=ctx.flow_name, config=config, inputs=list(inputs)
    )
    return publisher.publish(_FlowStage(name), list(products))


def run_pipeline_plain(
    pipeline: Pipeline[RequestT, Any, ConfigT, OutcomeT],
    request: RequestT,
    config: ConfigT,
    ctx: FlowContext,
    *,
    inputs: Sequence[str] = (),
    caldb_root: str | None = None,
) -> PipelineRun[OutcomeT]:
    """Run a pipeline in this process without Prefect, publishing as :func:`run_pipeline` does.

    The same calibration resolution, reading, plan and catalogue publication (on the
    publication lane and the figure thread, all written before this returns), with the
    plain runner: what
    ``--no-prefect`` commands and the GP1 watcher's plain mode use. The processing status
    is set to running here (a lease this process renews: a killed run reads ``failed:
    abandoned``), and to failed (with the reason) on an error, as a flow's failure hook
    would.
    """
    ctx.status("running")
    try:
        cal = resolve_pipeline_calibration(pipeline, request, config, caldb_root=caldb_root)
        publisher = CataloguePublisher(
            ctx.store(),
            obs_id=ctx.key,
            flow_name=ctx.flow_name,
            config=config,
            inputs=list(inputs),
            calibration=cal.refs(),
            background_figures=True,
        )
        lane = PublicationLane()
        with _publications_finished(lane, publisher):
            outcome, runner = run_plain(
                pipeline, request, config, calibration=cal, publisher=LanePublisher(lane, publisher)
            )
            lane.finish()  # their references are in publisher.refs, in publication order
            publisher.finish_figures()
    except SvomflowError as exc:
        ctx.status("failed", str(exc)[:2000])
        raise
    except BaseException as exc:
        # not left "running" (its lease renewed for ever) in a process that goes on
        ctx.status("failed", f"{type(exc).__name__}: {exc}"[:2000])
        raise
    return PipelineRun(outcome, list(publisher.refs), cal, list(runner.warnings))
