"""`svomflow serve`: deployments of the registered flows, the nightly cron schedule, and the
Prefect scheduler really creating scheduled runs (what the SQLAlchemy<2.1 pin protects)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from svomflow.flows.registry import REGISTRY
from svomflow.operations.deployments import (
    DeploymentSettings,
    apply_deployments,
    build_deployments,
    nightly_cron,
)

pytestmark = pytest.mark.integration


def test_nightly_cron_parsing() -> None:
    assert nightly_cron("03:00") == "0 3 * * *"
    assert nightly_cron("23:45") == "45 23 * * *"
    for bad in ("24:00", "3h", "12:60"):
        with pytest.raises(Exception, match="HH:MM"):
            nightly_cron(bad)
    with pytest.raises(ValueError, match="time zone"):
        DeploymentSettings(timezone="Mars/Olympus")


def _read_deployments(names: list[str]) -> dict[str, object]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {n: client.read_deployment_by_name(n) for n in names}


def test_serve_registers_every_flow_with_nightly_schedule(
    prefect_harness: None, tmp_path: Path
) -> None:
    settings = DeploymentSettings(
        nightly_at="04:30", timezone="Europe/Paris", raw_dir=str(tmp_path)
    )
    deployments, missing = build_deployments(settings)
    ids = apply_deployments(deployments)
    got = _read_deployments(list(ids))
    # every registered flow is either deployed or reported as not importable (never both)
    for spec in REGISTRY.values():
        assert (spec.deployment_name in ids) != (spec.name in missing), spec.name
        if spec.deployment_name in ids:
            d = got[spec.deployment_name]
            assert "svomflow" in d.tags and d.entrypoint == spec.entrypoint.replace(":", ".")
            assert d.parameter_openapi_schema["properties"], spec.name
    nightly = got["nightly_master_calibration/nightly"]
    assert nightly.parameters == {"night": "last", "raw_dir": str(tmp_path)}
    (sched,) = nightly.schedules
    assert sched.active
    assert sched.schedule.cron == "30 4 * * *" and sched.schedule.timezone == "Europe/Paris"
    # unscheduled flows have no schedule
    assert got["alert_ingest/alert"].schedules == []


def test_alert_flow_parameters_render_as_a_form(prefect_harness: None) -> None:
    (dep,), _ = build_deployments(DeploymentSettings(flows=["alert"]))
    schema = dep._parameter_openapi_schema.model_dump()
    props = schema["properties"]
    assert props["burst_id"]["type"] == "string"
    # the pydantic Alert model becomes a nested form with its own typed fields
    alert_def = schema["definitions"]["Alert"]["properties"]
    assert alert_def["ra_deg"]["anyOf"][0]["type"] == "number"
    assert alert_def["role"]["enum"] == ["observation", "test", "utility"]


def test_scheduler_creates_runs_of_a_scheduled_deployment(
    use_prefect_server: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    # every minute, so the next runs fall inside the scheduler's horizon
    settings = DeploymentSettings(
        flows=["nightly"], nightly_cron="* * * * *", raw_dir=str(tmp_path), version="sched-test"
    )
    deployments, _ = build_deployments(settings)
    deployments[0].name = "every-minute"
    ids = apply_deployments(deployments)
    dep_id = ids["nightly_master_calibration/every-minute"]
    deadline = time.time() + 30
    runs = []
    with get_client(sync_client=True) as client:
        while time.time() < deadline:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep_id])),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=50,
            )
            if len(runs) >= 3:
                break
            time.sleep(1)
        # pause the schedule so the session's server does not start pending runs later
        client.pause_deployment(dep_id)
    assert len(runs) >= 3, f"the scheduler created {len(runs)} runs in 30 s"
    assert all(r.state.type.value == "SCHEDULED" for r in runs)
    starts = sorted(r.expected_start_time for r in runs)
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(starts)}
    assert gaps == {60.0}
    assert all(r.parameters["night"] == "last" for r in runs)


def test_deploy_on_a_process_pool_and_a_worker_runs_it(
    use_prefect_server: str, tmp_path: Path
) -> None:
    """`svomflow deploy` registers on a process work pool; a `prefect worker` executes a run."""
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from svomflow.cli.main import app
    from svomflow.operations.local_server import stop_process
    from svomflow.products.alert_messages import parse_alert
    from svomflow.products.store import ProductStore
    from typer.testing import CliRunner

    from .conftest import server_env

    pool = f"pool-{tmp_path.name[-6:]}"
    res = CliRunner().invoke(
        app, ["deploy", "--pool", pool, "--flow", "alert", "-o", str(tmp_path / "prefect.yaml")]
    )
    assert res.exit_code == 0, res.output
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("alert_ingest/alert")
        assert dep.work_pool_name == pool
        assert client.read_work_pool(pool).type == "process"
    env = server_env(tmp_path / "worker_home", use_prefect_server)
    env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--limit", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        db = f"sqlite:///{tmp_path / 'p.db'}"
        text = '{"id": "w1", "trigger_id": "sb26112370", "trigger_time": "2026-11-23T04:00:00Z"}'
        run = run_deployment(
            "alert_ingest/alert",
            timeout=120,
            poll_interval=1,
            parameters={
                "burst_id": "sb26112370",
                "alert": parse_alert(text).model_dump(mode="json"),
                "payload": text,
                "instrument": "grm",
                "out_dir": str(tmp_path / "products"),
                "database_url": db,
            },
        )
    finally:
        stop_process(worker)
        log.close()
    assert run.state.is_completed(), (run.state, (tmp_path / "worker.log").read_text()[-2000:])
    (row,) = ProductStore(tmp_path / "products", db).list(obs_id="sb26112370")
    assert row.flow_run_id == str(run.id)
