import multiprocessing as mp
import uuid
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import create_engine, text
from svomflow.errors import PathEscapeError
from svomflow.products import ProductStore, Provenance
from svomflow.products.database import (
    SCHEMA_VERSION,
    IncompatibleDatabaseError,
    dispose_engines,
    make_engine,
)
from svomflow.products.ogip import primary_hdu


def hdus() -> list:
    return [primary_hdu(telescope="SVOM", instrument="ECLAIRS")]


def prov(cfg: dict, inputs: list[Path] = ()) -> Provenance:
    return Provenance.start(config=cfg, inputs=inputs, flow_name="test")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'products.db'}"
        dispose_engines()
        return
    base = request.getfixturevalue("postgres_url")
    # one schema per test so runs never see each other's rows
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_publish_is_idempotent_and_versions_on_change(tmp_path: Path, db_url: str) -> None:
    inp = tmp_path / "events.fits"
    inp.write_bytes(b"events")
    store = ProductStore(tmp_path / "out", db_url)
    a = store.publish(
        hdus(),
        type_code="QT90",
        instrument="ECLAIRS",
        obs_id="sb1",
        provenance=prov({"bin": 1}, [inp]),
    )
    b = store.publish(
        hdus(),
        type_code="QT90",
        instrument="ECLAIRS",
        obs_id="sb1",
        provenance=prov({"bin": 1}, [inp]),
    )
    assert (a.id, a.version, b.created_new) == (b.id, 1, False)
    assert len(store.list(include_superseded=True)) == 1
    c = store.publish(
        hdus(),
        type_code="QT90",
        instrument="ECLAIRS",
        obs_id="sb1",
        provenance=prov({"bin": 2}, [inp]),
    )
    assert c.version == 2 and c.created_new
    rows = store.list(include_superseded=True)
    assert [(r.version, r.superseded) for r in rows] == [(2, False), (1, True)]
    assert Path(a.path).is_file() and Path(c.path).is_file()  # old version kept on disk
    with fits.open(c.path) as h:
        assert h[0].header["PRODVER"] == 2
        assert h[0].header["INFIL01"] == "events.fits"
    assert store.list()[0].id == c.id
    assert store.get(c.id[:8]).version == 2


def test_damaged_file_is_rewritten_not_duplicated(tmp_path: Path, db_url: str) -> None:
    store = ProductStore(tmp_path / "out", db_url)
    a = store.publish(hdus(), type_code="QLC", instrument="GRM", obs_id="sb2", provenance=prov({}))
    Path(a.path).write_bytes(b"corrupted")
    b = store.publish(hdus(), type_code="QLC", instrument="GRM", obs_id="sb2", provenance=prov({}))
    assert (b.id, b.version, b.created_new) == (a.id, 1, True)
    with fits.open(b.path) as h:
        assert h[0].header["PRODTYPE"] == "QLC"


def test_header_value_cannot_escape_output_root(tmp_path: Path, db_url: str) -> None:
    store = ProductStore(tmp_path / "out", db_url)
    with pytest.raises(PathEscapeError):
        store.publish(
            hdus(), type_code="QLC", instrument="GRM", obs_id="../../etc", provenance=prov({})
        )
    assert store.list(include_superseded=True) == []


def test_failed_writer_leaves_no_row(tmp_path: Path, db_url: str) -> None:
    store = ProductStore(tmp_path / "out", db_url)

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.publish(
            broken,
            type_code="QF",
            instrument="DDRAGO-B",
            obs_id="sb3",
            provenance=prov({}),
            ext="png",
        )
    assert store.list(include_superseded=True) == []
    ok = store.publish(
        lambda p: p.write_bytes(b"png"),
        type_code="QF",
        instrument="DDRAGO-B",
        obs_id="sb3",
        provenance=prov({}),
        ext="png",
    )
    assert ok.version == 1 and Path(ok.path).read_bytes() == b"png"


def _publish_worker(args: tuple[str, str, str, int]) -> tuple[str, int]:
    out, url, obs, cfg = args
    store = ProductStore(out, url)
    ref = store.publish(
        hdus(), type_code="QT90", instrument="ECLAIRS", obs_id=obs, provenance=prov({"k": cfg})
    )
    return ref.id, ref.version


def test_concurrent_publishers_never_collide(tmp_path: Path, db_url: str) -> None:
    out = str(tmp_path / "out")
    make_engine(db_url)  # create the schema before the workers race
    dispose_engines()  # children must open their own connections
    # 8 processes: 4 distinct configurations, each published twice at the same moment
    jobs = [(out, db_url, "sbC", i % 4) for i in range(8)]
    # fork: with --import-mode=importlib a spawned child cannot import this test module
    with mp.get_context("fork").Pool(4) as pool:
        results = pool.map(_publish_worker, jobs)
    ids_by_cfg: dict[int, set[str]] = {}
    for (pid, _), job in zip(results, jobs, strict=True):
        ids_by_cfg.setdefault(job[3], set()).add(pid)
    assert all(len(ids) == 1 for ids in ids_by_cfg.values()), "same product recorded twice"
    store = ProductStore(out, db_url)
    rows = store.list(include_superseded=True)
    assert sorted(r.version for r in rows) == [1, 2, 3, 4]
    assert sum(not r.superseded for r in rows) == 1
    for r in rows:  # every file on disk is the one its row describes
        from svomflow.atomic import sha256_file

        assert sha256_file(r.path) == r.checksum


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    make_engine(url)
    dispose_engines()
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text(f"UPDATE svomflow_schema SET version = {SCHEMA_VERSION + 1}"))
    eng.dispose()
    with pytest.raises(IncompatibleDatabaseError, match="schema version"):
        make_engine(url)
    dispose_engines()


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE products (id TEXT)"))
    eng.dispose()
    with pytest.raises(IncompatibleDatabaseError, match="not made by svomflow"):
        make_engine(url)
    dispose_engines()


def test_status_records(tmp_path: Path, db_url: str) -> None:
    store = ProductStore(tmp_path / "out", db_url)
    store.set_status("sb9", "vhf_quick_analysis", "received")
    store.set_status("sb9", "vhf_quick_analysis", "failed", reason="no EBOUNDS")
    (st,) = store.statuses("sb9")
    assert (st.state, st.reason) == ("failed", "no EBOUNDS")
    with pytest.raises(ValueError):
        store.set_status("sb9", "vhf_quick_analysis", "exploded")


def test_first_use_from_many_threads_creates_the_schema_once(tmp_path) -> None:
    """Concurrent steps of one run open a new database together: no CREATE TABLE race."""
    from concurrent.futures import ThreadPoolExecutor

    from svomflow.products.database import dispose_engines

    dispose_engines()
    url = f"sqlite:///{tmp_path / 'new.db'}"

    def first_use(k: int) -> str:
        store = ProductStore(tmp_path / "out", url)
        store.set_status(f"key{k}", "vhf_quick_analysis", "running")
        return store.statuses(f"key{k}")[0].state

    with ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(first_use, range(16)))
    assert states == ["running"] * 16
    assert len(ProductStore(tmp_path / "out", url).statuses()) == 16
