"""Warm runs for ``svomflow serve``: each run forked from a preloaded process.

Prefect's runner starts every run of a served deployment in a fresh interpreter: a
``python -m prefect.engine`` command for a deployment (``prefect.serve``), or, for a flow
object it was given (``Runner.add_flow``), ``DirectSubprocessStarter`` ->
``prefect.flow_engine.run_flow_in_subprocess``, a ``multiprocessing`` *spawn* process.
Either way each run imports svomflow, numpy, astropy, scipy and Prefect again and loads its
numba kernels, whatever the serve process has loaded.

Here the runner stays Prefect's (polling, limits, cancellation, crash detection) and is
given the flow objects, but the run's process comes from a ``multiprocessing``
*forkserver* whose server process was preloaded once (:func:`preload`): the served flows'
modules, the product catalogue, what a run imports only when it draws a preview, and every
cached numba kernel of the loaded modules. Each run is still its own process, so a crash or
a cancellation (kill) touches that run only, but it starts with all that in memory.

Kernels that use numba's threading layer (``parallel=True``) are *not* loaded in the server:
numba uses GNU OpenMP here, which is not fork-safe, and a child forked from a process that
loaded one is terminated by numba when it calls it ("fork() called from a process already
using GNU OpenMP"). Each run loads those few from the cache itself. :func:`preload`
checks that the threading layer was not started and records the outcome in
:data:`STATE`, which every forked child inherits: :func:`start_warm_server` asks a first
child for it before any run is routed here, and serve falls back to Prefect's own
``prefect.serve`` (cold runs), saying why, when the server is not warm or not fork-safe.

The one change to Prefect is :func:`warm_starter`: Prefect's own ``run_flow_in_subprocess``,
rebuilt with the multiprocessing context it asks for swapped from spawn to this forkserver
and the flow handed over by reference (the child takes the preloaded module's flow object,
see :class:`_FlowReference`), put where Prefect's runner looks it up (its docstring names
that module attribute as the way to override the starter). :func:`check_prefect` refuses,
with one line, a Prefect whose function or runner no longer has that shape.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import resource
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from svomflow.errors import SvomflowError

__all__ = [
    "LAZY_IMPORTS",
    "MAIN_ENV",
    "MAIN_PATH_ENV",
    "PRELOAD_ENV",
    "STATE",
    "WarmServerError",
    "check_prefect",
    "load_cached_kernels",
    "preload",
    "preload_from_environment",
    "start_warm_server",
    "warm_starter",
]

PRELOAD_ENV = "SVOMFLOW_WARM_MODULES"
"""Comma-separated modules the forkserver preloads (set by :func:`start_warm_server`)."""
MAIN_ENV = "SVOMFLOW_WARM_MAIN"
"""The serve process's main module when run with ``python -m`` (set by the same)."""
MAIN_PATH_ENV = "SVOMFLOW_WARM_MAIN_PATH"
"""The serve process's main script when run as a script, e.g. ``svomflow`` (set by the same)."""

# What a flow run imports only when it first needs it (kept out of the flow modules so that
# the command line starts fast): matplotlib where a preview is drawn, astropy's tables and
# IERS tables where a catalogue is read or a time converted, Prefect's task engine, its
# task-graph tools and artifacts at the first task, SQLAlchemy's SQLite dialect at the
# first database write. Measured in served runs: about 0.25 s of each run's start.
LAZY_IMPORTS = (
    "astropy.table",
    "astropy.utils.iers",
    "matplotlib.backends.backend_agg",
    "matplotlib.collections",
    "matplotlib.figure",
    "matplotlib.image",
    "matplotlib.patches",
    "prefect.artifacts",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.sqlite.aiosqlite",
)

STATE: dict[str, Any] | None = None
"""What :func:`preload` did, in the forkserver and in every run forked from it; else None."""

# Prefect's targets: the starter of served runs (3.8) and the runner's older direct path
_PREFECT_TARGETS = ("prefect.runner._starter_direct", "prefect.runner.runner")


class WarmServerError(SvomflowError):
    """The warm forkserver cannot be used (Prefect changed, or the server is not warm)."""


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load_cached_kernels(modules: Sequence[str] = ()) -> dict[str, int]:
    """Load from numba's cache every compiled version of the kernels of loaded modules.

    The kernels are the numba dispatchers found as attributes of svomflow's modules in
    ``sys.modules`` and of ``modules`` (the served flows' own); each signature listed in a
    kernel's cache index is loaded (numba compiles it only if the cache entry cannot be
    used). Kernels with ``parallel=True`` are skipped (see the module docstring).

    Returns
    -------
    dict
        ``kernels`` (dispatchers seen), ``loaded`` (signatures loaded from the cache),
        ``compiled`` (signatures numba had to compile), ``failed`` (left to the runs),
        ``parallel_skipped``.
    """
    from numba.core.dispatcher import Dispatcher

    seen: dict[int, Dispatcher] = {}
    for name, module in list(sys.modules.items()):
        if (name.startswith("svomflow.") or name in modules) and module is not None:
            for obj in list(vars(module).values()):
                if isinstance(obj, Dispatcher):
                    seen.setdefault(id(obj), obj)
    out = {"kernels": len(seen), "loaded": 0, "compiled": 0, "failed": 0, "parallel_skipped": 0}
    for disp in seen.values():
        if disp.targetoptions.get("parallel"):
            out["parallel_skipped"] += 1
            continue
        # numba's internals (0.60-0.68): the cache's index file; absent when caching is off
        cache_file = getattr(getattr(disp, "_cache", None), "_cache_file", None)
        if cache_file is None or not getattr(disp, "_can_compile", True):
            continue  # no cache, or compiled for its declared signatures at import
        for key in cache_file._load_index():  # {(signature, target, code hash): file}
            hits = sum(disp.stats.cache_hits.values())
            try:
                disp.compile(key[0])
            except Exception:  # this kernel is loaded or compiled by the run that calls it
                out["failed"] += 1
                continue
            if sum(disp.stats.cache_hits.values()) > hits:
                out["loaded"] += 1
            else:
                out["compiled"] += 1
    return out


def _threading_layer_started() -> bool:
    from numba.np.ufunc import parallel

    return bool(getattr(parallel, "_is_initialized", False))


def _load(
    modules: Sequence[str], main: str | None, errors: list[str], main_path: str | None = None
) -> dict[str, int]:
    """Load what the runs use: main module or script, modules, catalogue, first uses, kernels.

    The served ``modules``, :data:`LAZY_IMPORTS` and the catalogue's declarations are
    imported, :func:`_first_uses` done, the cached kernels loaded.
    """
    if main:
        try:
            sys.modules["__main__"] = sys.modules["__mp_main__"] = importlib.import_module(main)
        except Exception as exc:
            errors.append(f"{main}: {type(exc).__name__}: {exc}")
    elif main_path:
        # multiprocessing's own preload of '__main__' never loads a main script (CPython
        # 3.11-3.12 look for a 'main_path' key that the preparation data names
        # 'init_main_from_path'), so every forked run would run the script again (0.1 s for
        # the svomflow command's). Loaded here, a run finds it as its __main__ and skips it.
        from multiprocessing import spawn

        try:
            spawn.import_main_path(main_path)
        except Exception as exc:
            errors.append(f"{main_path}: {type(exc).__name__}: {exc}")
    for name in [*modules, *LAZY_IMPORTS]:
        try:
            importlib.import_module(name)
        except Exception as exc:  # recorded and reported by serve
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    try:
        _first_uses()
    except Exception as exc:
        errors.append(f"first uses: {type(exc).__name__}: {exc}")
    try:
        from svomflow.products.catalogue import all_types

        all_types()  # imports every product declaration module
        return load_cached_kernels(modules)
    except Exception as exc:
        errors.append(f"kernels: {type(exc).__name__}: {exc}")
        return {}


def _first_uses() -> None:
    """Do here, once, what each run would do on its first use of a library.

    astropy checks that its leap-second table is current (reading its IERS files, 0.2 s) on
    a process's first time-scale conversion: every VHF run converts T0 to UTC.
    """
    from astropy.time import Time

    _ = Time(60000.0, format="mjd", scale="utc").tai


def preload(
    modules: Sequence[str], main: str | None = None, main_path: str | None = None
) -> dict[str, Any]:
    """Load the served flows and what their runs use into this process; set :data:`STATE`.

    Called in the forkserver (through :mod:`svomflow.operations.warm_preload`). Nothing
    here raises: a module that fails to import is recorded in ``errors`` (the run that
    needs it then fails as it would in a fresh process).

    ``main`` is the serve process's main module when it runs as ``python -m <main>``: it is
    imported and installed as this process's ``__main__``, so that each forked child finds
    it there instead of running it again. ``main_path`` is its main script otherwise (the
    ``svomflow`` command), loaded for the same reason (see :func:`_load`).
    """
    global STATE
    from svomflow import collector

    t0, c0 = time.perf_counter(), _cpu_s()
    errors: list[str] = []
    # this process exists to be forked: what it loads is frozen out of the cyclic
    # collector's scans (gc.freeze), so that no child scans it, nor copies its pages to
    # update the collector's bookkeeping
    collector.adopt()
    with collector.imports_frozen():
        kernels = _load(modules, main, errors, main_path)
    started = _threading_layer_started()
    STATE = {
        "pid": os.getpid(),
        "modules": list(modules),
        "kernels": kernels,
        "errors": errors,
        # a started threading layer (GNU OpenMP) kills the children that use it
        "fork_safe": not started,
        "threads": threading.active_count(),
        "seconds": round(time.perf_counter() - t0, 3),
        "cpu_seconds": round(_cpu_s() - c0, 3),
    }
    return STATE


def preload_from_environment() -> None:
    """Run :func:`preload` on the modules named by ``$SVOMFLOW_WARM_MODULES``."""
    names = [m for m in os.environ.get(PRELOAD_ENV, "").split(",") if m]
    preload(names, os.environ.get(MAIN_ENV) or None, os.environ.get(MAIN_PATH_ENV) or None)


def _report_state(conn: multiprocessing.connection.Connection) -> None:
    """Send the inherited :data:`STATE` (with this child's pid and parent) and exit."""
    state = dict(STATE) if STATE is not None else None
    if state is not None:
        state["child_pid"], state["child_parent"] = os.getpid(), os.getppid()
    conn.send(state)
    conn.close()


def start_warm_server(modules: Sequence[str], timeout_s: float = 600.0) -> dict[str, Any]:
    """Start the preloaded forkserver and return its :data:`STATE`, as a forked child sees it.

    Raises
    ------
    WarmServerError
        The server did not preload (state missing), is not fork-safe, or did not answer.
    """
    ctx = multiprocessing.get_context("forkserver")
    # '__main__' as multiprocessing documents it, though it loads nothing here (see _load):
    # the preload loads the main module (MAIN_ENV) or script (MAIN_PATH_ENV) itself
    ctx.set_forkserver_preload(["__main__", "svomflow.operations.warm_preload"])
    os.environ[PRELOAD_ENV] = ",".join(modules)
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    os.environ[MAIN_ENV] = getattr(main_spec, "name", None) or ""
    # the script each run would otherwise run again as its __main__ (multiprocessing's data)
    from multiprocessing import spawn

    os.environ[MAIN_PATH_ENV] = spawn.get_preparation_data("svomflow-warm").get(
        "init_main_from_path", ""
    )
    try:
        state = _ask_state(ctx, timeout_s)
        if state is None:
            raise WarmServerError("the warm runner's server did not preload (see its output)")
        if state["child_parent"] != state["pid"]:
            raise WarmServerError("the warm runner's check ran outside its server")
        if not state["fork_safe"]:
            raise WarmServerError(
                "a parallel numba kernel was loaded in the warm runner's server: its runs "
                "would be killed by GNU OpenMP"
            )
    except WarmServerError:
        # a server that cannot be used would hold its memory until serve exits
        stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
        if stop is not None:
            stop()
        raise
    finally:
        os.environ.pop(PRELOAD_ENV, None)
        os.environ.pop(MAIN_ENV, None)
        os.environ.pop(MAIN_PATH_ENV, None)
    return state


def _ask_state(ctx: Any, timeout_s: float) -> dict[str, Any] | None:
    """Fork a first child from the server (starting it) and return the state it reports."""
    try:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_report_state, args=(child,), name="svomflow-warm-check")
        proc.start()  # starts the server: returns once it has preloaded and forked
        child.close()
        if not parent.poll(timeout_s):
            proc.kill()
            raise WarmServerError(f"the warm runner did not answer within {timeout_s:.0f} s")
        state: dict[str, Any] | None = parent.recv()
        proc.join(timeout=30)
    except (EOFError, OSError) as exc:
        raise WarmServerError(f"the warm runner failed to start: {exc}") from None
    return state


def check_prefect() -> Callable[..., Any]:
    """Return Prefect's ``run_flow_in_subprocess`` if the warm starter can replace it.

    Raises
    ------
    WarmServerError
        When Prefect's starter or its subprocess function changed shape (a Prefect upgrade):
        ``svomflow serve --cold`` runs as before.
    """
    import prefect
    from prefect import flow_engine

    fn = getattr(flow_engine, "run_flow_in_subprocess", None)
    problems = []
    if fn is None:
        problems.append("prefect.flow_engine.run_flow_in_subprocess is gone")
    else:
        code = fn.__code__
        if not {"multiprocessing", "get_context"} <= set(code.co_names) or (
            "spawn" not in code.co_consts
        ):
            problems.append("run_flow_in_subprocess no longer asks for a 'spawn' context")
    starter, runner = (importlib.import_module(t) for t in _PREFECT_TARGETS)
    if fn is None or getattr(starter, "run_flow_in_subprocess", None) is not fn:
        problems.append(f"{starter.__name__} does not start runs with it")
    if getattr(runner, "run_flow_in_subprocess", fn) is not fn:
        problems.append(f"{runner.__name__}.run_flow_in_subprocess is not Prefect's own")
    if problems:
        raise WarmServerError(
            f"the warm runner does not fit Prefect {prefect.__version__} "
            f"({'; '.join(problems)}); it was written for Prefect 3.8: use svomflow serve --cold"
        )
    assert fn is not None
    return fn


def _module_attribute(module: str, name: str) -> Any:
    """Return ``module.name`` (importing the module if needed): how a flow is unpickled."""
    return getattr(importlib.import_module(module), name)


class _FlowReference:
    """Pickles as a reference to a module-level flow: unpickled, it *is* that module's flow.

    Prefect pickles the flow object it hands to the run's process by value (its function
    cannot be found by name, the module attribute being the flow): the run then executes a
    copy whose globals hold only the names its body uses, which breaks the flows whose
    parameter annotations name other types (pydantic cannot resolve them), and leaves the
    preloaded module's state unused. A reference loads the module's own flow in the child:
    the preloaded one.
    """

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __reduce__(self) -> tuple[Callable[[str, str], Any], tuple[str, str]]:
        return _module_attribute, (self.module, self.name)


def _by_reference(flow: Any) -> Any:
    """Return a :class:`_FlowReference` for a module-level flow, else ``flow`` itself."""
    fn = getattr(flow, "fn", None)
    module, name = getattr(fn, "__module__", None), getattr(fn, "__name__", None)
    if module and name and getattr(sys.modules.get(module), name, None) is flow:
        return _FlowReference(module, name)
    return flow


def _forkserver_variant(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``fn`` (Prefect's) forking from the warm server, the flow passed by reference.

    The body, the environment handling, the serialisation of the run and the control
    channel stay Prefect's: the name ``multiprocessing`` is resolved to a shim whose
    ``get_context`` hands the forkserver context out for "spawn", and the flow is given as
    a :class:`_FlowReference`.
    """

    def get_context(method: str | None = None) -> Any:
        return multiprocessing.get_context("forkserver" if method == "spawn" else method)

    shim = types.SimpleNamespace(get_context=get_context, context=multiprocessing.context)
    namespace = dict(fn.__globals__, multiprocessing=shim)
    forking = types.FunctionType(
        fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__
    )
    forking.__kwdefaults__ = fn.__kwdefaults__

    @functools.wraps(fn)
    def run_flow_in_subprocess(flow: Any, *args: Any, **kwargs: Any) -> Any:
        return forking(_by_reference(flow), *args, **kwargs)

    run_flow_in_subprocess.__doc__ = f"{fn.__doc__}\n\n(svomflow: forked from the warm server)"
    run_flow_in_subprocess.forking = forking  # type: ignore[attr-defined]
    return run_flow_in_subprocess


@contextlib.contextmanager
def warm_starter() -> Iterator[None]:
    """Route the runs Prefect's runner starts in this process through the warm forkserver.

    Start the server first (:func:`start_warm_server`); restored when the block ends.
    """
    fn = check_prefect()
    variant = _forkserver_variant(fn)
    modules = [importlib.import_module(t) for t in _PREFECT_TARGETS]
    saved = [getattr(m, "run_flow_in_subprocess", None) for m in modules]
    for m, old in zip(modules, saved, strict=True):
        if old is not None:
            setattr(m, "run_flow_in_subprocess", variant)  # noqa: B010 - Prefect's hook
    try:
        yield
    finally:
        for m, old in zip(modules, saved, strict=True):
            if old is not None:
                setattr(m, "run_flow_in_subprocess", old)  # noqa: B010
