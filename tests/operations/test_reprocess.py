"""Reprocessing from the database: same inputs, new version on a new configuration,
idempotent on an identical one, a list of bursts under a concurrency limit."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from prefect import flow
from sqlmodel import Session, select
from svomflow.errors import InputDataError, SvomflowError
from svomflow.flows.registry import FlowSpec
from svomflow.operations.reprocess import keys_in_range, plan_reprocess, run_plans
from svomflow.products.database import ProductRow
from svomflow.products.provenance import Provenance
from svomflow.products.store import ProductStore

pytestmark = pytest.mark.integration


@flow(name="toy_scaled_sum", flow_run_name="toy-{obs_id}")
def toy(
    obs_id: str,
    inputs: list[str],
    out_dir: str,
    database_url: str,
    config: dict[str, Any] | None = None,
) -> str:
    """A flow with the shape of the real ones: inputs + config -> one published product."""
    cfg = {"scale": 1.0, **(config or {})}
    total = sum(float(np.loadtxt(p).sum()) for p in inputs) * cfg["scale"]
    prov = Provenance.start(config=cfg, inputs=inputs, flow_name="toy_scaled_sum")
    hdu = fits.PrimaryHDU()
    hdu.header["TOTAL"] = total
    if cfg.get("on_dask"):  # where the run happened (get_worker raises outside a Dask worker)
        import distributed

        hdu.header["WORKER"] = distributed.get_worker().address
    ref = ProductStore(out_dir, database_url).publish(
        [hdu], type_code="TOY", instrument="grm", obs_id=obs_id, provenance=prov
    )
    return ref.id


SPEC = FlowSpec(
    name="toy_scaled_sum",
    alias="toy",
    entrypoint=f"{__name__}:toy",
    description="test flow",
    key_parameter="obs_id",
    config_parameter="config",
    inputs_parameter="inputs",
)


@pytest.fixture
def bursts(prefect_harness: None, tmp_path: Path) -> dict[str, Any]:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    out = tmp_path / "products"
    files = {}
    for i, burst in enumerate(["sb26112310", "sb26112311"]):
        f = tmp_path / f"{burst}.txt"
        np.savetxt(f, np.arange(5.0) + i)
        files[burst] = str(f)
        toy(obs_id=burst, inputs=[str(f)], out_dir=str(out), database_url=db)
    return {"db": db, "out": out, "files": files, "store": ProductStore(out, db)}


def _total(row: ProductRow) -> float:
    with fits.open(row.path) as h:
        return float(h[0].header["TOTAL"])


def test_identical_reprocessing_is_idempotent(bursts: dict[str, Any]) -> None:
    store = bursts["store"]
    (before,) = store.list(obs_id="sb26112310")
    (plan,) = plan_reprocess(SPEC, ["sb26112310"], database_url=bursts["db"])
    assert plan.source.startswith("parameters of flow run")
    (res,) = run_plans([plan], database_url=bursts["db"])
    assert res.state == "completed", res.message
    assert res.products == [
        {"type": "TOY", "instrument": "grm", "version": 1, "id": before.id, "change": "unchanged"}
    ]
    rows = store.list(obs_id="sb26112310", include_superseded=True)
    assert [r.id for r in rows] == [before.id]


def test_new_configuration_makes_a_new_version_and_keeps_the_old(bursts: dict[str, Any]) -> None:
    store = bursts["store"]
    (v1,) = store.list(obs_id="sb26112310")
    assert _total(v1) == 10.0
    plans = plan_reprocess(SPEC, ["sb26112310"], sets=["scale=2.5"], database_url=bursts["db"])
    assert plans[0].parameters["config"] == {"scale": 2.5}
    (res,) = run_plans(plans, database_url=bursts["db"])
    assert [p["change"] for p in res.products] == ["new version"]
    rows = store.list(obs_id="sb26112310", include_superseded=True)
    assert [(r.version, r.superseded) for r in rows] == [(2, False), (1, True)]
    v2 = rows[0]
    assert _total(v2) == 25.0 and Path(v1.path).is_file() and _total(v1) == 10.0
    assert rows[1].superseded_by == v2.id
    assert v2.provenance["config"] == {"scale": 2.5}
    assert v2.provenance["flow_run_id"] == res.flow_run_id != v1.provenance["flow_run_id"]
    # the same reprocessing again: nothing new
    (again,) = run_plans(
        plan_reprocess(SPEC, ["sb26112310"], sets=["scale=2.5"], database_url=bursts["db"]),
        database_url=bursts["db"],
    )
    assert [p["change"] for p in again.products] == ["unchanged"]
    assert len(store.list(obs_id="sb26112310", include_superseded=True)) == 2


def test_collection_with_concurrency_limit_and_date_range(bursts: dict[str, Any]) -> None:
    today = dt.date.today()
    keys = keys_in_range(SPEC, today - dt.timedelta(days=1), today, database_url=bursts["db"])
    assert keys == ["sb26112310", "sb26112311"]
    assert (
        keys_in_range(SPEC, dt.date(2020, 1, 1), dt.date(2020, 1, 2), database_url=bursts["db"])
        == []
    )
    results = run_plans(
        plan_reprocess(SPEC, keys, sets=["scale=3"], database_url=bursts["db"]),
        concurrency=2,
        database_url=bursts["db"],
    )
    assert [r.state for r in results] == ["completed", "completed"]
    totals = {r.obs_id: _total(r) for r in bursts["store"].list()}
    assert totals == {"sb26112310": 30.0, "sb26112311": 45.0}


def test_changed_inputs_refused_and_provenance_fallback(bursts: dict[str, Any]) -> None:
    with pytest.raises(SvomflowError, match="no current products"):
        plan_reprocess(SPEC, ["sb00000000"], database_url=bursts["db"])
    # the run is gone from the Prefect API: parameters are rebuilt from the provenance
    from svomflow.products.database import make_engine

    with Session(make_engine(bursts["db"])) as s:
        row = s.exec(select(ProductRow).where(ProductRow.obs_id == "sb26112311")).one()
        row.flow_run_id = str(uuid.uuid4())
        s.add(row)
        s.commit()
    (plan,) = plan_reprocess(SPEC, ["sb26112311"], database_url=bursts["db"])
    assert plan.source.startswith("provenance of product")
    assert plan.parameters["inputs"] == [str(Path(bursts["files"]["sb26112311"]).resolve())]
    # same inputs or nothing: a changed input file is refused
    Path(bursts["files"]["sb26112311"]).write_text("1\n")
    with pytest.raises(InputDataError, match="changed since"):
        plan_reprocess(SPEC, ["sb26112311"], database_url=bursts["db"])


def test_three_bursts_on_a_dask_cluster(bursts: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("prefect_dask")
    from svomflow.errors import ConfigError

    f = tmp_path / "sb26112312.txt"
    np.savetxt(f, np.arange(5.0) + 2)
    toy(obs_id="sb26112312", inputs=[str(f)], out_dir=str(bursts["out"]), database_url=bursts["db"])
    keys = ["sb26112310", "sb26112311", "sb26112312"]
    plans = plan_reprocess(SPEC, keys, sets=["scale=2", "on_dask=true"], database_url=bursts["db"])
    results = run_plans(plans, dask="local", database_url=bursts["db"])
    assert [r.key for r in results] == keys
    assert [r.state for r in results] == ["completed"] * 3, [r.message for r in results]
    assert [[p["change"] for p in r.products] for r in results] == [["new version"]] * 3
    rows = bursts["store"].list()
    assert {r.obs_id: _total(r) for r in rows} == {
        "sb26112310": 20.0,
        "sb26112311": 30.0,
        "sb26112312": 40.0,
    }
    # every flow run happened on a worker of the cluster, not in a thread of this process
    for row in rows:
        with fits.open(row.path) as h:
            assert str(h[0].header["WORKER"]).startswith(("inproc://", "tcp://"))
    with pytest.raises(ConfigError, match="--direct"):
        run_plans(plans, dask="local", mode="deployment", database_url=bursts["db"])
