"""What svomflow changes in how Prefect runs a flow: opaque step arguments, no heartbeat join.

A step call's arguments are handed to its task opaque (``flows/adapter.py: _opaque``):
Prefect must still record the edge from the step that produced an argument (the UI's task
graph) and hand the task the very object, without walking into it. The flow modules'
``flow`` (``flows/prefect_flow.py``) leaves the heartbeat thread unjoined at a run's end.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
from svomflow.config import StepConfig
from svomflow.flows.adapter import PrefectRunner
from svomflow.flows.prefect_flow import flow, heartbeats_without_join
from svomflow.tasks.step import step


class _Cfg(StepConfig):
    scale: float = 2.0


@dataclass
class _Batch:
    """A step's data object: a long Python list inside, as event lists and tables hold."""

    values: list[float] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)


@step(name="make-batch", config=_Cfg)
def make_batch(n: int, *, config: _Cfg) -> _Batch:
    return _Batch([float(i) for i in range(n)])


@step(name="scale-batch", config=_Cfg)
def scale_batch(batch: _Batch, *, config: _Cfg) -> float:
    return float(np.sum(batch.values)) * config.scale


@flow(name="opaque-probe")
def _probe(n: int) -> tuple[float, str, int]:
    from prefect.runtime import flow_run
    from svomflow.flows.adapter import _runs_in_this_process

    assert _runs_in_this_process()  # the default thread runner: submitted calls go opaque
    runner = PrefectRunner(None)
    batch = runner.run(make_batch, n, config=_Cfg())
    total = runner.submit(scale_batch, batch, config=_Cfg()).result()
    return total, str(flow_run.id), len(batch.values)


def test_step_arguments_keep_their_edge_and_reach_the_task_whole() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    n = 200_000
    total, run_id, size = _probe(n)
    assert total == 2.0 * n * (n - 1) / 2 and size == n
    by_name: dict = {}
    deadline = time.time() + 60  # task runs reach the server as events, recorded in batches
    with get_client(sync_client=True) as client:
        while time.time() < deadline:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                limit=50,
            )
            by_name = {r.name: r for r in runs}
            if {"make-batch", "scale-batch"} <= set(by_name) and by_name["scale-batch"].task_inputs:
                break
            time.sleep(0.5)
    assert {"make-batch", "scale-batch"} <= set(by_name)
    upstream = {inp.id for inputs in by_name["scale-batch"].task_inputs.values() for inp in inputs}
    assert by_name["make-batch"].id in upstream  # the edge of the UI's task graph


def test_heartbeat_context_is_left_without_join() -> None:
    joined: list[bool] = []

    @contextlib.contextmanager
    def prefect_like(engine: object, join_on_exit: bool = True):  # Prefect's shape
        joined.append(join_on_exit)
        yield

    changed = heartbeats_without_join(prefect_like)
    assert changed is not None
    with changed(object()):
        pass
    assert joined == [False]
    assert heartbeats_without_join(changed) is None  # never wrapped twice
    assert heartbeats_without_join(lambda engine: None) is None  # another shape: left alone


def test_flow_modules_run_with_the_unjoined_heartbeat() -> None:
    """Importing a flow module puts the change in Prefect's engine (where the runs look it up)."""
    import svomflow.flows.vhf  # noqa: F401 - a flow module, as a served run imports it
    from prefect import flow_engine

    assert getattr(flow_engine._send_heartbeats, "svomflow_no_join", False)
