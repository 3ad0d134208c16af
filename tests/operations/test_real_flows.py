"""Operations on real flows: `svomflow reprocess` of a VHF quick analysis of a simulated
GRM-only burst, and a failed run's reason recorded by the on_failure hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from svomflow.cli.main import app
from svomflow.products.store import ProductStore
from typer.testing import CliRunner

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_vhf_reprocess_from_the_cli(prefect_harness: None, tmp_path: Path) -> None:
    from svomflow.flows.vhf import vhf_quick_analysis
    from svomflow.simulation.scenario import load_scenario, run_scenario

    run_scenario(load_scenario("grm_only_grb"), tmp_path / "sim", seed=3)
    events = sorted(str(p) for p in (tmp_path / "sim").glob("*events*.fits"))
    db = f"sqlite:///{tmp_path / 'p.db'}"
    out = tmp_path / "products"
    vhf_quick_analysis(event_files=events, obs_id="sb26112360", out_dir=str(out), database_url=db)
    store = ProductStore(out, db)
    before = {(r.type_code, r.instrument): r for r in store.list(obs_id="sb26112360")}
    assert before, "the VHF flow published no products"

    args = ["reprocess", "--flow", "vhf", "--burst", "sb26112360", "--database-url", db, "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    (same,) = json.loads(res.output)
    assert same["state"] == "completed"
    assert {p["change"] for p in same["products"]} == {"unchanged"}
    assert {p["id"] for p in same["products"]} == {r.id for r in before.values()}

    res = runner.invoke(app, [*args, "--set", "lc_dt_s=0.128"])
    assert res.exit_code == 0, res.output
    (new,) = json.loads(res.output)
    changes = {(p["type"], p["instrument"]): p["change"] for p in new["products"]}
    # the configuration is part of every product's identity: each gets a new version
    assert set(changes.values()) == {"new version"} and set(changes) == set(before)
    rows = store.list(obs_id="sb26112360", include_superseded=True)
    assert len(rows) == 2 * len(before)
    for old in before.values():
        assert Path(old.path).is_file()  # the superseded version stays on disk
    current = {(r.type_code, r.instrument): r for r in store.list(obs_id="sb26112360")}
    assert all(r.version == 2 for r in current.values())
    # the new configuration is what the provenance of every new version records
    assert all(r.provenance["config"]["lc_dt_s"] == 0.128 for r in current.values())
    assert all(r.provenance["config"]["lc_dt_s"] == 0.064 for r in before.values())
    res = runner.invoke(app, ["status", "sb26112360", "--database-url", db, "--json"])
    prods = json.loads(res.output)["products"]
    assert sorted(p["state"] for p in prods).count("superseded") == len(before)


def test_failed_run_records_its_reason(prefect_harness: None, tmp_path: Path) -> None:
    from svomflow.flows.alert_ingest import alert_ingest
    from svomflow.products.alert_messages import parse_alert

    db = f"sqlite:///{tmp_path / 'p.db'}"
    text = '{"id": "x1", "trigger_id": "sb..evil", "trigger_time": "2026-11-23T04:00:00Z"}'
    state = alert_ingest(
        burst_id="sb..evil",
        alert=parse_alert(text),
        payload=text,
        instrument="grm",
        out_dir=str(tmp_path / "products"),
        database_url=db,
        return_state=True,
    )
    assert state.is_failed()
    (st,) = [s for s in ProductStore(tmp_path / "products", db).statuses("sb..evil")]
    assert st.state == "failed" and "would leave the output directory" in st.reason
    assert st.flow_run_id == str(state.state_details.flow_run_id)
    # a user error is not retried (transient_error): the publish task ran once
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    deadline = time.time() + 20  # task-run states reach the API through events: wait
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[st.flow_run_id])),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                limit=10,
            )
            published = [r for r in runs if r.name.startswith("publish-")]
            state = published[0].state if published else None
            if (state is not None and state.is_final()) or time.time() > deadline:
                break
            time.sleep(0.2)
    (task_run,) = published
    assert task_run.run_count == 1 and task_run.state.is_failed()
