"""`svomflow serve`'s warm runner: served runs forked from a preloaded forkserver.

A probe flow, served once warm (the default) and once cold (Prefect's spawn) against a real
``prefect server``, reports from inside its run what it found at start: whether its process
was forked from the warm server (the state the server's preload left, inherited), whether
the probe's numba kernel was already loaded (no compilation, no cache load in the run), and
whether a ``parallel=True`` kernel runs in the child (GNU OpenMP kills a child forked from
a process that started it). No timing is asserted: the properties are what make a run warm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.integration

PROBE = '''
"""A served flow that reports what its process had loaded when the run started."""
import json, os, sys, time

import numba
import numpy as np
from prefect import flow
from svomflow.numba_policy import kernel, parallel_kernel


@kernel
def add_one(x):
    return x + 1.0


@parallel_kernel
def parallel_sum(a):
    s = 0.0
    for i in numba.prange(a.size):
        s += a[i]
    return s


def report(out):
    # a module-level function, as the steps the real flows call: Prefect pickles the flow
    # function itself by value, what it calls by reference (the preloaded module's)
    warm = sys.modules.get("svomflow.operations.warm_runner")
    found = {
        "pid": os.getpid(),
        "parent": os.getppid(),
        "state": getattr(warm, "STATE", None),
        "kernel_loaded_at_start": len(add_one.overloads),
        "parallel_loaded_at_start": len(parallel_sum.overloads),
    }
    # what a run would otherwise import or check on its first use, done in the server
    import astropy.time.core as atc

    found["leap_seconds_checked"] = atc._LEAP_SECONDS_CHECK == atc._LeapSecondsCheck.DONE
    found["lazy_imports_loaded"] = all(m in sys.modules for m in warm.LAZY_IMPORTS) if warm else False
    found["add_one"] = float(add_one(np.float64(1.0)))
    found["compiled_in_run"] = sum(add_one.stats.cache_misses.values())
    found["parallel_sum"] = float(parallel_sum(np.arange(1000, dtype=np.float64)))
    with open(out, "w") as fh:
        json.dump(found, fh)


@flow(name="warm_probe")
def probe(out: str, sleep_s: float = 0.0) -> None:
    report(out)
    time.sleep(sleep_s)
'''

SERVE = """
import os
import sys

# every process that runs this main script says so: the server once, not each run
with open(os.environ["SERVE_MAIN_LOG"], "a") as fh:
    fh.write(f"{os.getpid()}\\n")

from prefect.deployments.runner import EntrypointType
from svomflow.operations.deployments import serve_deployments
from warm_probe import probe

POLL_S = {"warm": 3600.0, "cold": 1.0}

if __name__ == "__main__":  # the forkserver imports this main module: no serving there
    name = sys.argv[1]
    dep = probe.to_deployment(name=name, entrypoint_type=EntrypointType.MODULE_PATH)
    serve_deployments([dep], warm=name == "warm", poll_s=POLL_S[name], say=print)
"""

#: The warm server polls once an hour: its runs can start only when the server's events
#: stream wakes it (operations/run_wakeup.py). The cold one keeps a 1 s poll.
POLL_S = {"warm": 3600.0, "cold": 1.0}


def test_check_prefect_refuses_a_changed_prefect(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow_engine
    from prefect.runner import _starter_direct
    from svomflow.operations.warm_runner import WarmServerError, check_prefect

    assert check_prefect() is flow_engine.run_flow_in_subprocess

    def run_flow_in_subprocess(*args: Any, **kwargs: Any) -> None:  # a future Prefect's
        return None

    monkeypatch.setattr(flow_engine, "run_flow_in_subprocess", run_flow_in_subprocess)
    monkeypatch.setattr(_starter_direct, "run_flow_in_subprocess", run_flow_in_subprocess)
    with pytest.raises(WarmServerError, match=r"spawn.*--cold"):
        check_prefect()


def test_warm_starter_swaps_the_context_and_restores_prefect() -> None:
    from prefect import flow_engine
    from prefect.runner import _starter_direct
    from svomflow.operations.warm_runner import warm_starter

    original = flow_engine.run_flow_in_subprocess
    with warm_starter():
        variant = _starter_direct.run_flow_in_subprocess
        assert variant is not original and variant.__wrapped__ is original
        # Prefect's own body, with only 'multiprocessing' resolved differently
        assert variant.forking.__code__ is original.__code__
        ctx = variant.forking.__globals__["multiprocessing"].get_context("spawn")
        assert ctx.get_start_method() == "forkserver"
    assert _starter_direct.run_flow_in_subprocess is original
    assert flow_engine.run_flow_in_subprocess is original


def test_serve_says_why_and_runs_cold_when_the_server_is_not_usable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import contextlib

    from svomflow.operations import deployments, warm_runner

    def not_fork_safe(modules: list[str], timeout_s: float = 0.0) -> dict[str, Any]:
        raise warm_runner.WarmServerError("a parallel numba kernel was loaded")

    monkeypatch.setattr(warm_runner, "start_warm_server", not_fork_safe)
    said: list[str] = []
    with contextlib.ExitStack() as stack:
        assert not deployments._enter_warm_starter(stack, ["json"], said.append)
    assert said == ["warning: a parallel numba kernel was loaded"]


def test_a_module_level_flow_is_passed_by_reference() -> None:
    """The run's process gets the module's own flow object, not a copy by value."""
    import cloudpickle
    from svomflow.flows.alert_ingest import alert_ingest
    from svomflow.operations.warm_runner import _by_reference

    assert cloudpickle.loads(cloudpickle.dumps(_by_reference(alert_ingest))) is alert_ingest
    # Prefect's own pickling makes a copy whose globals lack the annotations' types
    assert cloudpickle.loads(cloudpickle.dumps(alert_ingest)) is not alert_ingest
    local = alert_ingest.with_options(name="not_at_module_level")
    assert _by_reference(local) is local


def test_preload_reports_a_started_threading_layer(tmp_path: Path) -> None:
    """A server that ran a parallel kernel is not fork-safe: the preload says so."""
    script = textwrap.dedent(
        """
        import json, sys
        import numba, numpy as np
        from svomflow.operations.warm_runner import preload

        @numba.njit(parallel=True)
        def total(a):
            s = 0.0
            for i in numba.prange(a.size):
                s += a[i]
            return s

        if sys.argv[1] == "run":
            total(np.ones(8))  # starts numba's threading layer in this process
        print(json.dumps(preload(["json"])))
        """
    )
    (tmp_path / "preload_check.py").write_text(script)
    got = {}
    for mode in ("run", "none"):
        done = subprocess.run(
            [sys.executable, str(tmp_path / "preload_check.py"), mode],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        got[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["run"]["fork_safe"] is False
    assert got["none"]["fork_safe"] is True and got["none"]["errors"] == []


def _serve(tmp_path: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(tmp_path / f"serve_{name}.log", "wb") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, str(tmp_path / "serve_probe.py"), name],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_final(run_id: Any, log: Path, deadline: float) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_final():
                return state
            if time.time() > deadline:
                pytest.fail(f"run not finished: {state}\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def _run_probe(name: str, out: Path, serve: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    deadline = time.time() + 240
    with get_client(sync_client=True) as client:
        while True:  # the serve process registers its deployment once warm
            try:
                client.read_deployment_by_name(f"warm_probe/{name}")
                break
            except Exception:
                if time.time() > deadline or serve.poll() is not None:
                    pytest.fail(log.read_text()[-3000:])
                time.sleep(0.5)
    run = run_deployment(f"warm_probe/{name}", parameters={"out": str(out)}, timeout=0)
    state = _wait_final(run.id, log, deadline)
    assert state.is_completed(), f"{state}\n{log.read_text()[-3000:]}"
    return dict(json.loads(out.read_text()))


def _cancel_running_probe(out: Path, log: Path) -> tuple[int, str]:
    """Start a long warm run, cancel it from the API; return its pid and final state."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    deadline = time.time() + 240
    params = {"out": str(out), "sleep_s": 600.0}
    run = run_deployment("warm_probe/warm", parameters=params, timeout=0)
    while not out.exists():  # the run reports, then sleeps
        if time.time() > deadline:
            pytest.fail(f"the long run did not start\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    time.sleep(0.5)  # the report is written whole before the sleep begins
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Cancelling(), force=True)
    state = _wait_final(run.id, log, deadline)
    return int(json.loads(out.read_text())["pid"]), state.type.value


def test_served_runs_are_forked_warm_and_cold_with_cold(
    use_prefect_server: str, tmp_path: Path
) -> None:
    from svomflow.numba_policy import cache_dir
    from svomflow.operations.local_server import stop_process

    from .conftest import server_env

    (tmp_path / "warm_probe.py").write_text(textwrap.dedent(PROBE))
    (tmp_path / "serve_probe.py").write_text(SERVE)
    # the kernels are in the cache before the server starts, as `svomflow warm` leaves them
    sys.path.insert(0, str(tmp_path))
    try:
        import warm_probe

        warm_probe.add_one(np.float64(0.0))
        warm_probe.parallel_sum(np.ones(4))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("warm_probe", None)
    env = server_env(tmp_path / "client_home", use_prefect_server)
    env.update(NUMBA_CACHE_DIR=str(cache_dir()), PYTHONPATH=str(tmp_path), PYTHONUNBUFFERED="1")
    env["SERVE_MAIN_LOG"] = str(tmp_path / "main_runs.txt")
    servers = {name: _serve(tmp_path, name, env) for name in ("warm", "cold")}
    try:
        got = {
            name: _run_probe(name, tmp_path / f"{name}.json", proc, tmp_path / f"serve_{name}.log")
            for name, proc in servers.items()
        }
        # cancellation still kills the run's own process, and only it
        long_pid, cancelled = _cancel_running_probe(
            tmp_path / "long.json", tmp_path / "serve_warm.log"
        )
    finally:
        for proc in servers.values():
            stop_process(proc)
    warm, cold = got["warm"], got["cold"]
    # the warm server polls hourly: its runs (and the cancellation) came by the events stream
    assert "runs start when scheduled" in (tmp_path / "serve_warm.log").read_text()
    state = warm["state"]
    # forked from the preloaded server: its state inherited, its pid the run's parent
    assert state is not None and state["fork_safe"] and state["errors"] == []
    assert warm["parent"] == state["pid"] != warm["pid"]
    assert state["modules"] == ["warm_probe"]
    assert state["kernels"]["loaded"] >= 1 and state["kernels"]["parallel_skipped"] >= 1
    # the kernel came loaded from the server: nothing compiled or read from the cache here
    assert warm["kernel_loaded_at_start"] == 1 and warm["compiled_in_run"] == 0
    # the parallel kernel was left to the run, and runs in the forked child
    assert warm["parallel_loaded_at_start"] == 0
    assert warm["add_one"] == 2.0 and warm["parallel_sum"] == 499500.0
    # the main script ran in the server, not again in the run (CPython's forkserver preload
    # of '__main__' misses a main script); imports and astropy's leap-second check done there
    main_runs = {int(p) for p in (tmp_path / "main_runs.txt").read_text().split()}
    assert state["pid"] in main_runs and warm["pid"] not in main_runs
    assert warm["lazy_imports_loaded"] and warm["leap_seconds_checked"]
    # --cold: Prefect's fresh interpreter, nothing preloaded
    assert cold["state"] is None and cold["kernel_loaded_at_start"] == 0
    assert cold["parallel_sum"] == 499500.0
    assert "warm runs: forked from server pid" in (tmp_path / "serve_warm.log").read_text()
    assert cancelled == "CANCELLED"
    with pytest.raises(ProcessLookupError):  # gone, and reaped by the forkserver
        os.kill(long_pid, 0)
