"""The operations commands on a products database made here: products, status, deploy files."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from astropy.io import fits
from svomflow.cli.main import app
from svomflow.products.provenance import Provenance
from svomflow.products.store import ProductStore
from typer.testing import CliRunner

runner = CliRunner()


def _publish(store: ProductStore, value: float, tmp_path: Path) -> str:
    inp = tmp_path / "in.txt"
    inp.write_text("1 2 3\n")
    hdu = fits.PrimaryHDU()
    hdu.header["VALUE"] = value
    prov = Provenance.start(config={"value": value}, inputs=[inp], flow_name="vhf_quick_analysis")
    return store.publish(
        [hdu], type_code="QLC", instrument="eclairs", obs_id="sb26112320", provenance=prov
    ).id


def test_products_list_show_and_status(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    store = ProductStore(tmp_path / "out", db)
    v1 = _publish(store, 1.0, tmp_path)
    v2 = _publish(store, 2.0, tmp_path)
    store.set_status("sb26112320", "vhf_quick_analysis", "done")
    store.set_status("sb26112321", "vhf_quick_analysis", "failed", reason="no GRM data in window")

    res = runner.invoke(app, ["products", "list", "--database-url", db, "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["id"] for r in rows] == [v2]  # the current version only
    res = runner.invoke(
        app, ["products", "list", "--database-url", db, "--all", "--json", "--burst", "sb26112320"]
    )
    rows = json.loads(res.output)
    assert [(r["version"], r["superseded"]) for r in rows] == [(2, False), (1, True)]
    res = runner.invoke(app, ["products", "list", "--database-url", db, "--type", "SP", "--json"])
    assert json.loads(res.output) == []
    res = runner.invoke(app, ["products", "list", "--database-url", db])
    assert res.exit_code == 0 and "sb26112320" in res.output and "QLC" in res.output

    res = runner.invoke(app, ["products", "show", v1[:8], "--database-url", db, "--json"])
    shown = json.loads(res.output)
    assert shown["id"] == v1 and shown["superseded_by"] == v2
    assert shown["provenance"]["config"] == {"value": 1.0}
    res = runner.invoke(app, ["products", "show", "nosuchid", "--database-url", db])
    assert res.exit_code != 0 and "no product" in res.output

    res = runner.invoke(app, ["status", "--database-url", db, "--json"])
    st = {r["key"]: r for r in json.loads(res.output)["status"]}
    assert st["sb26112320"]["state"] == "done"
    assert (
        st["sb26112321"]["state"] == "failed"
        and st["sb26112321"]["reason"] == "no GRM data in window"
    )
    res = runner.invoke(app, ["status", "sb26112320", "--database-url", db, "--json"])
    out = json.loads(res.output)
    assert [p["state"] for p in out["products"]] == ["current", "superseded"]
    res = runner.invoke(app, ["status", "sb26112321", "--database-url", db])
    assert res.exit_code == 0 and "no GRM data in window" in res.output


def test_deploy_writes_a_prefect_yaml_for_process_workers(tmp_path: Path) -> None:
    out = tmp_path / "prefect.yaml"
    res = runner.invoke(
        app,
        [
            "deploy",
            "--write-only",
            "--pool",
            "gp-pool",
            "--output",
            str(out),
            "--tz",
            "Europe/Paris",
            "--nightly-at",
            "06:15",
            "--raw-dir",
            "/data/raw",
            "--working-directory",
            "/opt/svomflow",
            "--concurrency",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "prefect worker start --pool gp-pool" in text
    doc = yaml.safe_load(text)
    assert (
        doc["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"]
        == "/opt/svomflow"
    )
    deps = {d["name"]: d for d in doc["deployments"]}
    from svomflow.flows.registry import REGISTRY

    # one deployment per registered flow, and the pipelines' ones among them
    assert set(deps) == {spec.alias for spec in REGISTRY.values()}
    assert {"vhf", "xband", "mxt", "gp1", "nightly", "alert"} <= set(deps)
    n = deps["nightly"]
    assert n["entrypoint"] == "flows/nightly_calibration.py:nightly_master_calibration"
    assert n["schedules"] == [{"cron": "15 6 * * *", "timezone": "Europe/Paris", "active": True}]
    assert n["parameters"] == {"night": "last", "raw_dir": "/data/raw"}
    assert all(d["work_pool"]["name"] == "gp-pool" for d in deps.values())
    repo = Path(__file__).resolve().parents[2]
    for d in deps.values():  # every entrypoint file exists in the source tree
        assert (repo / d["entrypoint"].split(":")[0]).is_file(), d["entrypoint"]


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["reprocess", "--flow", "nosuch", "--burst", "x"])
    assert res.exit_code == 2 and "unknown flow 'nosuch'" in res.output
    res = runner.invoke(app, ["reprocess", "--flow", "vhf"])
    assert res.exit_code == 2 and "give --burst" in res.output
    res = runner.invoke(
        app, ["deploy", "--write-only", "--nightly-at", "25:00", "-o", str(tmp_path / "p.yaml")]
    )
    assert res.exit_code == 2 and "HH:MM" in res.output
