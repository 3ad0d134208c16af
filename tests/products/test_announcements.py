"""Product announcements: subjects, the JSON Schema, key values, and the transactional outbox."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import text
from sqlmodel import Session, select
from svomflow.config import load_instrument
from svomflow.products import announcements
from svomflow.products.announcements import (
    announcement_schema,
    parse_announcement,
    subject_filter,
    subject_for,
)
from svomflow.products.database import (
    SCHEMA_VERSION,
    OutboxRow,
    ProductRow,
    dispose_engines,
    make_engine,
)
from svomflow.products.provenance import Provenance
from svomflow.products.store import ProductStore
from svomflow.tasks.xray.detect import SourceRecord
from svomflow.tasks.xray.fits_products import srclist_model

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "config" / "schemas" / "product_announcement.json"


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _qpo(ra: float, dec: float, err: float, unit: str) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    cols = [
        fits.Column("RA", "D", unit="deg", array=[ra]),
        fits.Column("DEC", "D", unit="deg", array=[dec]),
        fits.Column("ERR_RAD", "D", unit=unit, array=[err]),
    ]
    return [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="POSITION")]


def _outbox(store: ProductStore) -> list[OutboxRow]:
    with Session(store.engine) as s:
        return list(s.exec(select(OutboxRow).order_by(OutboxRow.id)))  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> ProductStore:
    yield ProductStore(tmp_path / "out", f"sqlite:///{tmp_path / 'products.db'}")
    dispose_engines()


def test_subjects_name_type_and_instrument() -> None:
    assert subject_for("QPO", "ECL") == "svomflow.product.QPO.ECL"
    assert subject_for("RSP", "GRM-GRD01") == "svomflow.product.RSP.GRM-GRD01"
    assert subject_filter(instrument="MXT") == "svomflow.product.*.MXT"
    assert subject_filter("PO", prefix="x.y") == "x.y.PO.*"
    for bad in ("Q.PO", "Q*", "Q>", "Q PO", ""):
        with pytest.raises(ValueError, match="NATS subject token"):
            subject_for(bad, "ECL")


def test_the_schema_file_is_the_models_schema() -> None:
    # the documented schema and the model cannot drift apart
    assert json.loads(SCHEMA_FILE.read_text()) == announcement_schema()


def test_each_new_version_writes_one_outbox_row_in_its_transaction(store: ProductStore) -> None:
    validator = _validator()
    p1 = Provenance.start(config={"run": 1}, flow_name="t")
    r1 = store.publish(
        _qpo(123.4, -12.5, 6.0, "arcmin"),
        type_code="QPO",
        instrument="ECL",
        obs_id="sb1",
        provenance=p1,
    )
    # the identical product again: no new version, no new announcement
    again = store.publish(
        _qpo(123.4, -12.5, 6.0, "arcmin"),
        type_code="QPO",
        instrument="ECL",
        obs_id="sb1",
        provenance=Provenance.start(config={"run": 1}, flow_name="t"),
    )
    assert again.id == r1.id and not again.created_new
    r2 = store.publish(
        _qpo(123.5, -12.4, 3.0, "arcmin"),
        type_code="QPO",
        instrument="ECL",
        obs_id="sb1",
        provenance=Provenance.start(config={"run": 2}, flow_name="t"),
    )
    rows = _outbox(store)
    assert [r.product_id for r in rows] == [r1.id, r2.id]
    assert all(r.sent_at is None for r in rows)  # no bus configured: left for the relay
    msgs = [parse_announcement(r.payload) for r in rows]
    for r, m in zip(rows, msgs, strict=True):
        validator.validate(json.loads(r.payload))
        assert r.subject == m.subject == "svomflow.product.QPO.ECL"
        assert r.msg_id == m.announcement_id == f"{m.product_id}:{m.version}"
    assert [m.version for m in msgs] == [1, 2]
    assert msgs[1].supersedes == r1.id and msgs[0].supersedes is None
    assert msgs[1].checksum == r2.checksum and msgs[1].file_name == Path(r2.path).name
    assert msgs[1].url == Path(r2.path).resolve().as_uri()
    pos = msgs[1].position
    assert pos is not None
    assert (pos.ra_deg, pos.dec_deg) == (123.5, -12.4)
    assert pos.error_radius_deg == pytest.approx(3.0 / 60.0, rel=1e-12)
    assert pos.error_confidence == 0.9


def test_a_failed_record_leaves_neither_product_nor_announcement(
    store: ProductStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_msg: object) -> str:
        raise RuntimeError("disk full while recording")

    monkeypatch.setattr(announcements, "payload_json", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        store.publish(
            _qpo(1.0, 2.0, 3.0, "deg"),
            type_code="QPO",
            instrument="GRM",
            obs_id="sb2",
            provenance=Provenance.start(config={}, flow_name="t"),
        )
    assert _outbox(store) == []
    with Session(store.engine) as s:
        assert s.exec(select(ProductRow)).all() == []


def test_the_mxt_source_list_announces_its_most_significant_source(
    store: ProductStore, tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    ml = rng.uniform(10, 200, size=5)
    srcs = [
        SourceRecord(
            x=float(rng.uniform(0, 256)),
            y=float(rng.uniform(0, 256)),
            ra_deg=float(rng.uniform(0, 360)),
            dec_deg=float(rng.uniform(-80, 80)),
            r90_arcsec=float(rng.uniform(5, 120)),
            counts=100.0,
            counts_err=10.0,
            band_counts=np.array([60.0, 40.0]),
            band_counts_err=np.array([8.0, 6.0]),
            ml=float(m),
            rate=1.0,
            rate_err=0.1,
            group=k,
        )
        for k, m in enumerate(ml)
    ]
    model = srclist_model(
        srcs,
        load_instrument("mxt"),
        bands_kev=[(0.3, 2.0), (2.0, 10.0)],
        exposure_s=1000.0,
        n_candidates=9,
        ml_threshold=8.0,
        prior=True,
        cards=[],
    )
    ref = store.publish(
        list(model.to_fits()),
        type_code="SRCLIST",
        instrument="MXT",
        obs_id="sb3",
        provenance=Provenance.start(config={}, flow_name="t"),
    )
    (row,) = _outbox(store)
    msg = parse_announcement(row.payload)
    best = srcs[int(np.argmax(ml))]
    assert msg.product_id == ref.id and msg.position is not None
    assert msg.position.ra_deg == pytest.approx(best.ra_deg, abs=1e-9)
    assert msg.position.dec_deg == pytest.approx(best.dec_deg, abs=1e-9)
    # RADEC_ERR90 is a float32 column in arcsec
    assert msg.position.error_radius_deg == pytest.approx(best.r90_arcsec / 3600, rel=1e-6)
    _validator().validate(json.loads(row.payload))


def test_an_unreadable_position_is_announced_with_the_reason(store: ProductStore) -> None:
    hdus = [
        fits.PrimaryHDU(),
        fits.BinTableHDU.from_columns([fits.Column("RA", "D", array=[10.0])], name="POSITION"),
    ]
    store.publish(
        hdus,
        type_code="QPO",
        instrument="ECL",
        obs_id="sb4",
        provenance=Provenance.start(config={}, flow_name="t"),
    )
    msg = parse_announcement(_outbox(store)[0].payload)
    assert msg.position is None
    assert msg.notes and "no position" in msg.notes[0]


def test_a_version_2_database_gains_the_outbox(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE product_outbox"))
        conn.execute(text("UPDATE svomflow_schema SET version = 2"))
    dispose_engines()
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM svomflow_schema")).scalar_one() == (
            SCHEMA_VERSION
        )
        assert conn.execute(text("SELECT count(*) FROM product_outbox")).scalar_one() == 0
    dispose_engines()
