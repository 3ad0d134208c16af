"""The step contract: one declaration per unit of work, and the pipelines built from steps.

A step states in one place its name, its configuration model, the CALDB code names of the
calibration it needs, its outputs as product type codes of the catalogue
(:mod:`svomflow.products.catalogue`) and a pure ``run`` function (its inputs are the
parameters of ``run``)::

    @step(name="durations", config=DurationsConfig, calibration=("EBOUNDS",), outputs=("QT90",))
    def durations(events: EventSet, *, config: DurationsConfig, calibration: CalibrationSet) -> T90:
        ...

``run`` never imports Prefect, never opens the CALDB and never writes a file: it takes data
objects and returns data objects. Products it makes are catalogue
:class:`~svomflow.products.catalogue.Product` objects in its result, which a runner
publishes. A :class:`Pipeline` lists a flow's steps and says how they connect (its ``plan``
calls ``runner.run(step, ...)``); the same pipeline runs under Prefect (the adapter in
:mod:`svomflow.flows.adapter`, one thin task per step call) or in plain Python
(:class:`PlainRunner`: notebooks, tests, the Monte Carlo bench). ``docs/steps.md`` has a
worked example.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from pydantic import BaseModel
from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import StepConfig
from svomflow.products.catalogue import Product, products_of

__all__ = [
    "Observation",
    "Pipeline",
    "PlainRunner",
    "Publisher",
    "Runner",
    "Step",
    "StepCall",
    "StepFuture",
    "check_outputs",
    "collect_overrides",
    "config_sections",
    "override_field",
    "resolve_pipeline_calibration",
    "run_plain",
    "step",
]

P = ParamSpec("P")
R = TypeVar("R")
RequestT = TypeVar("RequestT")
InputsT = TypeVar("InputsT")
ConfigT = TypeVar("ConfigT", bound=BaseModel)
OutcomeT = TypeVar("OutcomeT")

# parameters of ``run`` that are not data inputs
_CONTEXT_PARAMETERS = ("config", "calibration")


def override_field(codename: str) -> str:
    """Return the config field that overrides a CALDB code by path (``override_<code>``).

    ``"SPECRESP MATRIX"`` gives ``override_specresp_matrix`` (stpipe's ``override_<reftype>``).
    """
    return "override_" + re.sub(r"[^a-z0-9]+", "_", codename.lower()).strip("_")


@dataclass(frozen=True, eq=False)
class Step(Generic[P, R]):
    """One unit of work: name, config model, calibration, outputs and a pure ``run``.

    Attributes
    ----------
    name
        Short name, unique within a pipeline (names the Prefect task run).
    config
        The :class:`~svomflow.config.base.StepConfig` model ``run`` receives as ``config``.
    calibration
        CALDB code names ``run`` receives (as ``calibration``); the config model has an
        ``override_<code>`` field for each.
    outputs
        Product type codes (catalogue) that ``run`` may return among its results.
    run
        The pure function: data objects in, data objects out.
    """

    name: str
    config: type[StepConfig]
    calibration: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable[P, R]

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the data inputs (``run``'s parameters other than config and calibration)."""
        params = inspect.signature(self.run).parameters
        return tuple(n for n in params if n not in _CONTEXT_PARAMETERS)

    @property
    def module(self) -> str:
        """Module that defines ``run``."""
        return str(self.run.__module__)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``run`` directly (notebooks, unit tests)."""
        return self.run(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Step({self.name!r}, outputs={list(self.outputs)})"


def step(
    *,
    name: str,
    config: type[StepConfig],
    calibration: Sequence[str] = (),
    outputs: Sequence[str] = (),
) -> Callable[[Callable[P, R]], Step[P, R]]:
    """Declare a pure function as a step (see the module docstring).

    Raises
    ------
    TypeError
        When the declaration and the function disagree: ``run`` lacks a ``config`` parameter,
        declares calibration without a ``calibration`` parameter (or the reverse), or the
        config model lacks an ``override_<code>`` field for a declared code.
    """

    def declare(run: Callable[P, R]) -> Step[P, R]:
        params = inspect.signature(run).parameters
        where = f"step {name!r} ({run.__module__}.{run.__qualname__})"
        if "config" not in params:
            raise TypeError(f"{where}: run must take a 'config' parameter")
        if calibration and "calibration" not in params:
            raise TypeError(f"{where}: declares calibration but run takes no 'calibration'")
        if not calibration and "calibration" in params:
            raise TypeError(f"{where}: run takes 'calibration' but the step declares none")
        missing = [
            override_field(c) for c in calibration if override_field(c) not in config.model_fields
        ]
        if missing:
            raise TypeError(f"{where}: config {config.__name__} lacks {', '.join(missing)}")
        return Step(
            name=name,
            config=config,
            calibration=tuple(calibration),
            outputs=tuple(outputs),
            run=run,
        )

    return declare


@dataclass(frozen=True)
class StepCall:
    """What a runner records of one step call: the step, a label and the products made."""

    step: str
    label: str
    products: tuple[Product, ...]


class Publisher(Protocol):
    """Publishes the products of a step call (the adapter's product store, or nothing)."""

    def publish(self, step: Step[Any, Any], products: Sequence[Product]) -> object:
        """Write and record ``products`` made by ``step`` (what it returns is not used)."""


R_co = TypeVar("R_co", covariant=True)


class StepFuture(Protocol[R_co]):
    """A submitted step call: ``result()`` waits for it (and publishes its products)."""

    def result(self) -> R_co:
        """Wait for the call and return its result (re-raises its error)."""
        ...


class Runner(Protocol):
    """Runs step calls for a pipeline plan: in Prefect tasks or in plain Python.

    Every submitted call must be waited for (``.result()``): that is when its products are
    published.
    """

    def run(self, step: Step[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one step call now and return its result (its products are published)."""
        ...

    def submit(self, step: Step[P, R], *args: P.args, **kwargs: P.kwargs) -> StepFuture[R]:
        """Start one step call, possibly concurrently; ``.result()`` waits for it."""
        ...

    def named(self, label: str) -> Runner:
        """Return a view of the runner whose calls are labelled (``lightcurves-eclairs``)."""
        ...

    def warn(self, message: str) -> None:
        """Report a non-fatal problem to the run's log."""
        ...


def check_outputs(step: Step[Any, Any], result: object) -> list[Product]:
    """Return the products in a step's result, checking each is a declared output.

    Raises
    ------
    TypeError
        When ``run`` returned a product whose type code the step did not declare (a bug).
    """
    products = products_of(result)
    stray = sorted({p.type_code for p in products} - set(step.outputs))
    if stray:
        raise TypeError(
            f"step {step.name!r} returned product type(s) {', '.join(stray)} it does not "
            f"declare in outputs {list(step.outputs)}"
        )
    return products


class PlainRunner:
    """Run a pipeline's step calls one after the other in this process (no Prefect).

    Parameters
    ----------
    publisher
        Where products go; ``None`` keeps them in :attr:`calls` only (the bench, notebooks).
    """

    def __init__(self, publisher: Publisher | None = None, label: str | None = None) -> None:
        self.publisher = publisher
        self.label = label
        self.calls: list[StepCall] = []
        self.warnings: list[str] = []

    def named(self, label: str) -> PlainRunner:
        """Return a view of this runner whose calls carry ``label`` (shared records)."""
        view = PlainRunner(self.publisher, label)
        view.calls, view.warnings = self.calls, self.warnings
        return view

    def run(self, step: Step[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one step call and publish its products."""
        result = step.run(*args, **kwargs)
        products = check_outputs(step, result)
        if products and self.publisher is not None:
            self.publisher.publish(step, products)
        label = f"{step.name}-{self.label}" if self.label else step.name
        self.calls.append(StepCall(step.name, label, tuple(products)))
        return result

    def submit(self, step: Step[P, R], *args: P.args, **kwargs: P.kwargs) -> StepFuture[R]:
        """Run the call now (sequentially) and return it as a finished future."""
        fut: Future[R] = Future()
        try:
            fut.set_result(self.run(step, *args, **kwargs))
        except Exception as exc:  # the caller sees it on .result(), as with Prefect
            fut.set_exception(exc)
        return fut

    def warn(self, message: str) -> None:
        """Keep the message (returned with the outcome by the caller)."""
        import logging

        self.warnings.append(message)
        logging.getLogger("svomflow.tasks").warning(message)

    def products(self) -> list[Product]:
        """Every product made so far, in order."""
        return [p for c in self.calls for p in c.products]


@dataclass(frozen=True)
class Observation:
    """What a flow learns from its inputs' headers before reading them (for the CALDB).

    Attributes
    ----------
    instruments
        Instrument definition names present (``eclairs``, ``grm``, ``mxt``, ...).
    time
        Observation time for CALDB selection (mission-independent: an ISO UTC string).
    selections
        Extra per-instrument selection values (detector, filter, boundary parameters).
    """

    instruments: tuple[str, ...]
    time: str
    selections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Pipeline(Generic[RequestT, InputsT, ConfigT, OutcomeT]):
    """A flow's steps and how they connect, runnable by any :class:`Runner`.

    Attributes
    ----------
    flow_name
        Name of the Prefect flow that runs it (and of its packaged config layer).
    config
        The flow's configuration model (composed of its steps' config models).
    steps
        Every step the plan may call (the walk test and ``docs/products.md`` read them).
    observe
        Reads the request's headers: instruments and time (I/O, cheap).
    calibration_needs
        The CALDB selections of the run from the observation and config (pure); the
        default asks, for each instrument, the codes its steps declare that its definition
        lists in ``calibration_codes``.
    read
        Reads the inputs once, with the resolved calibration (I/O).
    plan
        Calls the steps through a runner; returns the outcome (pure but for the runner).
    optional_calibration
        Codes the default rule selects when the CALDB has them but does not require: the
        steps that use them do without (and say so) when they are missing.
    """

    flow_name: str
    config: type[ConfigT]
    steps: tuple[Step[Any, Any], ...]
    observe: Callable[[RequestT], Observation]
    read: Callable[[RequestT, CalibrationSet], InputsT]
    plan: Callable[[Runner, InputsT, ConfigT, CalibrationSet], OutcomeT]
    calibration_needs: Callable[[Observation, ConfigT], list[CalibrationRequirement]] | None = None
    optional_calibration: tuple[str, ...] = ()

    @property
    def calibration_codes(self) -> tuple[str, ...]:
        """Union of the CALDB codes the steps declare, in first-seen order."""
        seen: dict[str, None] = {}
        for s in self.steps:
            for c in s.calibration:
                seen.setdefault(c, None)
        return tuple(seen)

    @property
    def output_codes(self) -> tuple[str, ...]:
        """Union of the product type codes the steps declare, in first-seen order."""
        seen: dict[str, None] = {}
        for s in self.steps:
            for c in s.outputs:
                seen.setdefault(c, None)
        return tuple(seen)

    def needs(self, observation: Observation, config: ConfigT) -> list[CalibrationRequirement]:
        """Return the CALDB selections of a run (the pipeline's own rule, else the default)."""
        if self.calibration_needs is not None:
            return self.calibration_needs(observation, config)
        return default_calibration_needs(
            self.calibration_codes, observation, optional=self.optional_calibration
        )


def default_calibration_needs(
    codes: Sequence[str], observation: Observation, *, optional: Sequence[str] = ()
) -> list[CalibrationRequirement]:
    """For each instrument, the declared codes its definition lists in ``calibration_codes``.

    Requirement names are ``<instrument>:<CODE>`` (the keys of the calibration set).
    """
    from svomflow.config import available_instruments, load_instrument

    known = set(available_instruments())
    out: list[CalibrationRequirement] = []
    for name in observation.instruments:
        if name not in known:
            continue  # a foreign instrument (GBM): its files carry what it needs
        inst = load_instrument(name)
        offered = {str(c).upper() for c in inst.get("calibration_codes", [])}
        sel = dict(observation.selections.get(name, {}))
        for code in codes:
            if code.upper() in offered:
                out.append(
                    CalibrationRequirement(
                        name=f"{name}:{code}",
                        codename=code,
                        instrument=inst.instrument,
                        telescope=inst.telescope,
                        detector=str(sel.get("detector", "NONE")),
                        filter=str(sel.get("filter", "NONE")),
                        optional=code.upper() in {o.upper() for o in optional},
                    )
                )
    return out


def config_sections(config: BaseModel, model: type[BaseModel]) -> list[BaseModel]:
    """Return every section of ``config`` (itself included) that is a ``model`` instance.

    This is how a step's configuration is found in its flow's configuration: by its type.
    """
    found: list[BaseModel] = []

    def walk(node: object) -> None:
        if isinstance(node, BaseModel):
            if isinstance(node, model):
                found.append(node)
            for name in type(node).model_fields:
                walk(getattr(node, name))
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)

    walk(config)
    return found


def collect_overrides(
    pipeline: Pipeline[Any, Any, Any, Any],
    config: BaseModel,
    requirements: Sequence[CalibrationRequirement],
) -> dict[str, str]:
    """Return ``{requirement name: path}`` from the steps' ``override_<code>`` fields.

    An override is a path (for every instrument that needs the code) or a mapping
    ``{instrument: path}``; requirement names are ``<instrument>:<CODE>``.
    """
    out: dict[str, str] = {}
    for req in requirements:
        inst = req.name.split(":", 1)[0].lower()
        for s in pipeline.steps:
            if req.codename.upper() not in {c.upper() for c in s.calibration}:
                continue
            for section in config_sections(config, s.config):
                value = getattr(section, override_field(req.codename), None)
                if isinstance(value, Mapping):
                    value = {str(k).lower(): v for k, v in value.items()}.get(inst)
                if value:
                    out[req.name] = str(value)
    return out


def resolve_pipeline_calibration(
    pipeline: Pipeline[RequestT, Any, ConfigT, Any],
    request: RequestT,
    config: ConfigT,
    *,
    caldb_root: str | None = None,
    index_version: int | None = None,
) -> CalibrationSet:
    """Select and load every calibration file a run needs, or fail naming all missing ones.

    The observation (instruments, time) comes from the request's headers; the selections
    from the pipeline's rule; ``override_<code>`` values in the config replace selections.
    """
    obs = pipeline.observe(request)
    reqs = pipeline.needs(obs, config)
    if not reqs:
        return CalibrationSet()
    overrides = collect_overrides(pipeline, config, reqs)
    caldb = None
    if len(overrides) < len(reqs):
        from svomflow.calibration.caldb import open_caldb

        caldb = open_caldb(caldb_root)
    return CalibrationSet.resolve(
        reqs, obs.time, caldb=caldb, overrides=overrides, index_version=index_version
    )


def run_plain(
    pipeline: Pipeline[RequestT, InputsT, ConfigT, OutcomeT],
    request: RequestT,
    config: ConfigT,
    *,
    calibration: CalibrationSet | None = None,
    publisher: Publisher | None = None,
    caldb_root: str | None = None,
) -> tuple[OutcomeT, PlainRunner]:
    """Run a pipeline in this process, without Prefect: notebooks, tests, the bench.

    The same pipeline definition the flow runs: resolve the calibration (unless given),
    read the inputs once, run the plan. Products are published only with a ``publisher``.
    """
    cal = (
        calibration
        if calibration is not None
        else resolve_pipeline_calibration(pipeline, request, config, caldb_root=caldb_root)
    )
    data = pipeline.read(request, cal)
    runner = PlainRunner(publisher)
    return pipeline.plan(runner, data, config, cal), runner
