"""Alerts exactly once through a warm `svomflow serve` (issue 14), with the real NATS.

The SIGKILL scenario of ``test_alerts_exactly_once`` (12 valid alerts, 3 re-sent
duplicates, 3 malformed, the listener killed once with a backlog; 40, 8 and 8 with
``SVOMFLOW_WARM_SERVE_ALERTS=40``, 3.6 min here), but the runs the listener
creates in deployment mode are executed: ``svomflow serve --flow alert`` runs beside it,
warm (each run forked from its preloaded server). Every valid alert must have exactly one
run, completed, and exactly one ALERT product; the ledger and dead letters as before.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import server_env
from .test_alerts_exactly_once import (
    ListenerProcess,
    Publisher,
    check,
    collect,
    corpus,
    delete_runs,
    publish_with_a_kill,
    write_config,
)

pytestmark = [pytest.mark.nats, pytest.mark.integration]


def _wait_registered(serve: subprocess.Popen[bytes], log: Path, api_url: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.time() + 240
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        while "serving alert_ingest/alert" not in log.read_text():
            if serve.poll() is not None or time.time() > deadline:
                pytest.fail(f"serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name("alert_ingest/alert")


def _wait_final(api_url: str, runs: list[Any], timeout: float) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.time() + timeout
    states: dict[str, str] = {}
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as c:
        while True:
            states = {r.name: c.read_flow_run(r.id).state.type.value for r in runs}
            finals = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
            if all(s in finals for s in states.values()) or time.time() > deadline:
                return states
            time.sleep(2.0)


def test_alerts_exactly_once_through_a_warm_serve(
    prefect_server: str, nats_prefix: str, tmp_path: Path
) -> None:
    from svomflow.operations.local_server import stop_process
    from svomflow.products.store import ProductStore

    rng = random.Random(14)
    valid = int(os.environ.get("SVOMFLOW_WARM_SERVE_ALERTS", "12"))
    messages = corpus(nats_prefix, valid, valid // 5, valid // 5, seed=14)
    config, db = write_config(tmp_path, nats_prefix)
    env = server_env(tmp_path / "client_home", prefect_server)
    env["SVOMFLOW_HOME"] = str(tmp_path / "home")
    serve_log = tmp_path / "serve.log"
    with open(serve_log, "wb") as log:
        serve = subprocess.Popen(
            # two runs at a time on 2 cores: more would only slow the Prefect server that
            # the listener needs to create the runs
            [sys.executable, "-m", "svomflow.cli.main", "serve", "--flow", "alert", "--limit", "2"],
            env=env | {"PREFECT_LOGGING_LEVEL": "INFO"},  # the runs' states in the log
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    listener = ListenerProcess(config, env, tmp_path / "listener.log")
    out = None
    states: dict[str, str] = {}
    try:
        _wait_registered(serve, serve_log, prefect_server)
        assert "warm runs: forked from server pid" in serve_log.read_text()
        listener.start()
        pub = Publisher(
            f"{nats_prefix}.svom.alert.eclairs", messages, pace_s=1.6 / valid
        )  # the kill lands mid-stream
        publish_with_a_kill(listener, pub, rng)
        # the runs executing meanwhile load the (SQLite) Prefect server: generous timeouts
        out = collect(prefect_server, nats_prefix, messages, pub, 600, listener.faults)
        states = _wait_final(prefect_server, [r for rs in out.runs.values() for r in rs], 900)
    finally:
        listener.stop()
        stop_process(serve)
        if out is not None:
            delete_runs(prefect_server, [r for rs in out.runs.values() for r in rs])
    assert out is not None
    check(out, messages, db, nats_prefix, tmp_path)
    # the warm serve executed every run once: completed, one ALERT product per alert
    assert set(states.values()) == {"COMPLETED"}, (states, serve_log.read_text()[-3000:])
    store = ProductStore(tmp_path / "products", db)
    for trigger, (run,) in out.runs.items():
        (row,) = store.list(obs_id=trigger, type_code="ALERT")
        assert row.flow_run_id == str(run.id)
