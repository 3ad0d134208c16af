"""Products validated and delivered to the science database: the flow and the plain pass."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import create_engine, text
from sqlmodel import Session
from svomflow.flows.science_delivery import deliver_plain, science_delivery
from svomflow.products.database import dispose_engines
from svomflow.products.ogip import primary_hdu
from svomflow.products.provenance import Provenance
from svomflow.products.science_db import (
    delivered,
    dispose_science_engines,
    make_science_engine,
    refused,
)
from svomflow.products.store import ProductStore
from svomflow.tasks.validation.pipeline import load_delivery_config


def _position(code: str, inst: str, ra: float, dec: float, err: float, unit: str) -> list:
    prim = primary_hdu(telescope="SVOM", instrument=inst)
    if code == "OTPO":
        prim.header["RA_OBJ"], prim.header["DEC_OBJ"], prim.header["POS_ERR"] = ra, dec, err
        return [prim]
    names = {"QPO": ("RA", "DEC", "ERR_RAD"), "SRCLIST": ("RA", "DEC", "RADEC_ERR90")}[code]
    cols = [
        fits.Column(names[0], "D", unit="deg", array=[ra]),
        fits.Column(names[1], "D", unit="deg", array=[dec]),
        fits.Column(names[2], "D", unit=unit, array=[err]),
        fits.Column("DET_ML", "D", array=[50.0]),
    ]
    ext = fits.BinTableHDU.from_columns(cols, name="POSITION" if code == "QPO" else "SRCLIST")
    ext.header["EXPOSURE"] = 1000.0
    return [prim, ext]


def _t90(value: float) -> list:
    cols = [fits.Column("T90", "D", array=[value]), fits.Column("T90_ERR", "D", array=[0.1])]
    return [
        primary_hdu(telescope="SVOM", instrument="ECL"),
        fits.BinTableHDU.from_columns(cols, name="T90"),
    ]


def _pub(store: ProductStore, content: list, code: str, inst: str, obs: str, run: int = 1) -> str:
    prov = Provenance.start(config={"run": run}, flow_name="test")
    return store.publish(content, type_code=code, instrument=inst, obs_id=obs, provenance=prov).id


@pytest.fixture(params=["sqlite", "postgres"])
def science_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'science.db'}"
        dispose_science_engines()
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"sci_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    dispose_science_engines()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def products(tmp_path: Path) -> Iterator[tuple[ProductStore, str]]:
    url = f"sqlite:///{tmp_path / 'products.db'}"
    yield ProductStore(tmp_path / "out", url), url
    dispose_engines()


def test_validated_delivered_refused_kept_and_versioned(products, science_url) -> None:
    store, url = products
    cfg = load_delivery_config()
    qpo = _pub(store, _position("QPO", "ECL", 150.0, 20.0, 9.0, "arcmin"), "QPO", "ECL", "sb1")
    mxt = _pub(
        store, _position("SRCLIST", "MXT", 150.02, 20.01, 40.0, "arcsec"), "SRCLIST", "MXT", "sb1"
    )
    # GP1's transient 20" from the MXT source (inside its 40" r90); another burst's 3' away
    ot_in = _pub(
        store,
        _position("OTPO", "CAM", 150.02 + 20 / 3600 / 0.9397, 20.01, 0.3, "arcsec"),
        "OTPO",
        "CAM",
        "sb1",
    )
    _pub(store, _position("QPO", "ECL", 10.0, -5.0, 2.0, "arcmin"), "QPO", "ECL", "sb2")
    ot_out = _pub(store, _position("OTPO", "CAM", 10.0, -5.05, 0.3, "arcsec"), "OTPO", "CAM", "sb2")
    bad = _pub(store, _t90(-1.0), "QT90", "ECL", "sb1")
    # previews and types without rules are not offered
    _pub(store, [primary_hdu(telescope="SVOM", instrument="ECL")], "QLC", "ECL", "sb1")

    report = deliver_plain(cfg, database_url=url, science_database_url=science_url)
    assert set(report.delivered) == {qpo, mxt, ot_in, ot_out} | {
        r.id for r in store.list(type_code="QPO", obs_id="sb2")
    }
    assert report.refused == {bad: ["T90 = -1 outside [0, 10000]"]}
    assert set(report.flagged) == {ot_out}
    assert (
        "3.00' from the QPO ECL position, outside its error radius 2.00'"
        in (report.flagged[ot_out][0])
    )
    # the refused product stays in svomflow's store, its file intact
    kept = store.get(bad)
    assert kept is not None and Path(kept.path).is_file()

    with Session(make_science_engine(science_url)) as s:
        rows = {r.product_id: r for r in delivered(s)}
        assert rows[mxt].error_radius_deg == pytest.approx(40.0 / 3600)
        assert rows[ot_in].flags == [] and rows[ot_out].flags
        assert [r.product_id for r in refused(s)] == [bad]
        n_before = len(delivered(s, include_superseded=True))

    # idempotent: a second pass judges nothing again
    again = deliver_plain(cfg, database_url=url, science_database_url=science_url)
    assert again.delivered == [] and again.refused == {}
    # versioned: a new QPO version of sb1 is delivered and supersedes the first
    qpo2 = _pub(
        store, _position("QPO", "ECL", 150.01, 20.0, 6.0, "arcmin"), "QPO", "ECL", "sb1", run=2
    )
    third = deliver_plain(cfg, database_url=url, science_database_url=science_url)
    assert third.delivered == [qpo2]
    with Session(make_science_engine(science_url)) as s:
        assert len(delivered(s, include_superseded=True)) == n_before + 1
        current = delivered(s, obs_id="sb1", type_code="QPO")
        assert [(r.product_id, r.version) for r in current] == [(qpo2, 2)]


def test_the_flow_delivers_through_prefect(prefect_harness, products, tmp_path) -> None:
    store, url = products
    sci = f"sqlite:///{tmp_path / 'science_flow.db'}"
    qpo = _pub(store, _position("QPO", "GRM", 40.0, 30.0, 12.0, "deg"), "QPO", "GRM", "sb9")
    bad = _pub(store, _position("QPO", "ECL", 40.0, 30.0, 45.0, "deg"), "QPO", "ECL", "sb9")
    out = science_delivery(database_url=url, science_database_url=sci)
    assert out["delivered"] == [qpo]
    assert out["refused"] == {bad: ["error_radius_deg = 45 outside [0, 30]"]}
    # the rules are configuration: a flow parameter relaxes them (the refusal is judged
    # again only on request; a new version is judged with the new rules)
    relaxed = {"validation": {"types": {"QPO": {"ranges": {"error_radius_deg": [0, 60]}}}}}
    bad2 = _pub(store, _position("QPO", "ECL", 40.0, 30.0, 44.0, "deg"), "QPO", "ECL", "sb9", 2)
    out2 = science_delivery(database_url=url, science_database_url=sci, config=relaxed)
    assert out2["delivered"] == [bad2] and out2["refused"] == {}
    status = {s.key: s for s in store.statuses()}["all"]
    assert status.state == "done" and "1 delivered" in (status.reason or "")
    dispose_science_engines()
