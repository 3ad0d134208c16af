"""`svomflow demo` end to end against a Prefect API (the session test server via PREFECT_API_URL)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from svomflow.cli.main import app
from typer.testing import CliRunner


@pytest.mark.integration
def test_demo_runs_the_flow_and_prints_products_truth_and_url(prefect_harness, monkeypatch) -> None:
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    monkeypatch.setenv("PREFECT_API_URL", api)  # restored after the test
    res = CliRunner().invoke(app, ["demo", "--seed", "1"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())  # rich wraps long lines
    assert "measured vs injected" in out and "T90 GRM 50-300 keV" in out
    m = re.search(r"(\d+) products in (\S+)", out)
    assert m and int(m.group(1)) >= 20 and Path(m.group(2)).is_dir()
    url = re.search(r"flow run in the Prefect UI: (\S+)", out)
    ui = api.removesuffix("/api")
    assert url and url.group(1).startswith(f"{ui}/runs/flow-run/")
    assert "already running" in out  # the configured server was used, not started


@pytest.mark.integration
def test_server_status_command(prefect_harness, monkeypatch) -> None:
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    res = CliRunner().invoke(app, ["server", "status"])
    assert res.exit_code == 0 and "running" in res.stdout
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    res = CliRunner().invoke(app, ["server", "status"])
    assert res.exit_code == 1 and "not running" in res.stdout
