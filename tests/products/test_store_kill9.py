"""A publisher killed with SIGKILL mid-batch: the next use of the store reconciles what it left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session, select
from svomflow.atomic import sha256_file
from svomflow.products import ProductStore, Provenance
from svomflow.products.database import ProductRow, dispose_engines
from svomflow.products.ogip import primary_hdu

# A child publishing a batch of 4 products (v2 of products that exist at v1). It stops at
# the moment named by argv[3] and waits to be killed: "write" while the 3rd file is being
# written (two temporary files done, rows reserved), "record" after all renames and before
# the rows are recorded, "status" with a running status and nothing else.
_CHILD = """
import sys, time
from pathlib import Path
from svomflow.products import ProductStore, Provenance
from svomflow.products.store import PublishRequest
from svomflow.products.ogip import primary_hdu

out, url, moment, flag = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
store = ProductStore(out, url)
store.set_status("sbK", "kill9", "running")

def stall():
    flag.write_text("ready")
    while True:
        time.sleep(1)

if moment == "status":
    stall()
if moment == "record":
    ProductStore._record = lambda *a, **k: stall()

def content(i):
    if moment == "write" and i == 2:
        def half(path):
            path.write_bytes(b"half a file")
            stall()
        return half
    return [primary_hdu(telescope="SVOM", instrument="ECLAIRS")]

store.publish_many([
    PublishRequest(content(i), f"Q{i}", "ECLAIRS", "sbK",
                   Provenance.start(config={"run": 2}, flow_name="kill9"))
    for i in range(4)
])
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'products.db'}"
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


def _v1(store: ProductStore) -> dict[str, str]:
    """Publish v1 of the four products; return their checksums by path."""
    refs = [
        store.publish(
            [primary_hdu(telescope="SVOM", instrument="ECLAIRS")],
            type_code=f"Q{i}",
            instrument="ECLAIRS",
            obs_id="sbK",
            provenance=Provenance.start(config={"run": 1}, flow_name="kill9"),
        )
        for i in range(4)
    ]
    return {r.path: r.checksum for r in refs}


def _kill_child_at(moment: str, out: Path, url: str, tmp_path: Path) -> None:
    flag = tmp_path / f"ready-{moment}"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out), url, moment, str(flag)],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not flag.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = child.poll() is None
    if alive:
        os.kill(child.pid, signal.SIGKILL)
    _, err = child.communicate()
    assert alive and flag.exists(), f"the child never reached its moment: {err.decode()[-2000:]}"


def _leftovers(store: ProductStore, out: Path) -> tuple[int, int, int]:
    """Return (rows pointing to a missing file, pending rows, .tmp files) in the database and tree."""
    with Session(store.engine) as s:
        rows = s.exec(select(ProductRow)).all()
    missing = sum(not Path(r.path).is_file() for r in rows)
    pending = sum(r.checksum == "pending" for r in rows)
    return missing, pending, len(list(out.rglob(".tmp-*")))


@pytest.mark.parametrize("moment", ["write", "record"])
def test_killed_batch_is_reconciled_at_next_use(tmp_path: Path, db_url: str, moment: str) -> None:
    out = tmp_path / "out"
    store = ProductStore(out, db_url)
    before = _v1(store)
    _kill_child_at(moment, out, db_url, tmp_path)
    dispose_engines()

    # what the killed run left: reserved rows, and temporary files or renamed files
    engine = create_engine(db_url)
    with Session(engine) as s:
        assert len(s.exec(select(ProductRow).where(ProductRow.checksum == "pending")).all()) == 4
    engine.dispose()
    if moment == "write":
        assert len(list(out.rglob(".tmp-*"))) == 3  # two complete, one half written
    else:
        assert len(list(out.rglob("*_v02.fits"))) == 4  # renamed, never recorded

    # the next use of the store (another process, this test) reconciles
    again = ProductStore(out, db_url)
    assert _leftovers(again, out) == (0, 0, 0)
    assert not list(out.rglob("*_v02.fits"))
    assert {r.path: r.checksum for r in again.list(include_superseded=True)} == before
    assert all(sha256_file(p) == c for p, c in before.items())
    (st,) = again.statuses("sbK")
    assert st.state == "failed" and st.reason.startswith("abandoned")

    # a re-run with the killed run's configuration makes v2 in the version it had reserved
    refs = [
        again.publish(
            [primary_hdu(telescope="SVOM", instrument="ECLAIRS")],
            type_code=f"Q{i}",
            instrument="ECLAIRS",
            obs_id="sbK",
            provenance=Provenance.start(config={"run": 2}, flow_name="kill9"),
        )
        for i in range(4)
    ]
    assert [r.version for r in refs] == [2, 2, 2, 2]
    assert all(sha256_file(p) == c for p, c in before.items())  # v1 intact, superseded


def test_running_status_of_a_killed_run_reads_abandoned(tmp_path: Path, db_url: str) -> None:
    out = tmp_path / "out"
    _kill_child_at("status", out, db_url, tmp_path)
    dispose_engines()
    store = ProductStore(out, db_url)
    (st,) = store.statuses("sbK")
    assert (st.state, st.reason.split(":")[0]) == ("failed", "abandoned")


def test_a_live_run_keeps_its_lease(tmp_path: Path, db_url: str, monkeypatch) -> None:
    """The heartbeat renews a running status past its lease: a live run is never abandoned."""
    monkeypatch.setenv("SVOMFLOW_LEASE_SECONDS", "1")
    store = ProductStore(tmp_path / "out", db_url)
    store.set_status("sbL", "kill9", "running")
    # another host's reader cannot ask /proc: only the lease tells it the run is alive
    monkeypatch.setattr("svomflow.products.lease.owner_alive", lambda owner: None)
    time.sleep(2.5)  # more than two leases: renewed by the heartbeat in between
    (st,) = store.statuses("sbL")
    assert st.state == "running"
    store.set_status("sbL", "kill9", "done")
    (st,) = store.statuses("sbL")
    assert st.state == "done" and st.owner is None
