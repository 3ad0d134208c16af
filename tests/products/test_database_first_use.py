"""First use of a products database by many processes at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from svomflow.products import ProductStore
from svomflow.products.database import dispose_engines

# one child: open the store on a database nobody created yet, publish a product, set a status
_CHILD = """
import sys, time
from svomflow.products import ProductStore, Provenance
from svomflow.products.ogip import primary_hdu
out, url, k, t0 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
while time.time() < t0:  # all children start their first use at the same moment
    time.sleep(0.001)
store = ProductStore(out, url)
store.publish([primary_hdu(telescope="SVOM", instrument="ECLAIRS")], type_code="QT90",
              instrument="ECLAIRS", obs_id=f"sb{k}",
              provenance=Provenance.start(config={"k": k}, flow_name="first_use"))
store.set_status(f"sb{k}", "first_use", "done")
"""


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a database (SQLite file, or PostgreSQL schema) with no table in it yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'new.db'}"
        dispose_engines()
        return
    base = request.getfixturevalue("postgres_url")
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


def test_eight_processes_first_use_at_once(tmp_path: Path, fresh_url: str) -> None:
    """8 separate processes open a new database together: 0 failures, 0 lost rows."""
    out = tmp_path / "out"
    t0 = time.time() + 4.0  # past the imports of every child
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(out), fresh_url, str(k), str(t0)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(8)
    ]
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=180)
        if p.returncode != 0:
            errors.append(err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}")
    assert errors == []
    store = ProductStore(out, fresh_url)
    rows = store.list(include_superseded=True)
    assert sorted(r.obs_id for r in rows) == [f"sb{k}" for k in range(8)]
    assert all(Path(r.path).is_file() for r in rows)
    assert sorted(s.key for s in store.statuses()) == [f"sb{k}" for k in range(8)]


def test_version_1_database_is_migrated_in_place(tmp_path: Path, fresh_url: str) -> None:
    """A database of schema version 1 (no leases) gains the new columns and keeps its rows."""
    from svomflow.products import Provenance
    from svomflow.products.database import SCHEMA_VERSION
    from svomflow.products.ogip import primary_hdu

    store = ProductStore(tmp_path / "out", fresh_url)
    ref = store.publish(
        [primary_hdu(telescope="SVOM", instrument="ECLAIRS")],
        type_code="QT90",
        instrument="ECLAIRS",
        obs_id="sbV1",
        provenance=Provenance.start(config={}, flow_name="migration"),
    )
    store.set_status("sbV1", "migration", "done")
    dispose_engines()
    # back to version 1: the lease columns did not exist
    eng = create_engine(fresh_url)
    with eng.begin() as conn:
        for table in ("products", "processing_status"):
            for column in ("owner", "lease_until"):
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("UPDATE svomflow_schema SET version = 1"))
    eng.dispose()

    again = ProductStore(tmp_path / "out", fresh_url)
    assert [r.id for r in again.list()] == [ref.id]
    assert again.statuses("sbV1")[0].state == "done"
    again.set_status("sbV1", "migration", "running")  # the new columns are written
    assert again.statuses("sbV1")[0].owner is not None
    with again.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM svomflow_schema")).scalar_one() == (
            SCHEMA_VERSION
        )
    again.set_status("sbV1", "migration", "done")
