"""Concurrent flow runs in separate processes on one products database (SQLite, PostgreSQL).

Two processes start ``alert_ingest`` runs at the same moment: each its own burst, both the
very same alert of a shared burst (must become one product), and each a different notice of
a second shared burst (must become versions 1 and 2, files distinct, one superseded).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from svomflow.atomic import sha256_file
from svomflow.products.database import dispose_engines, make_engine
from svomflow.products.store import ProductStore

pytestmark = pytest.mark.integration

WORKER = r"""
import json, sys, time
from pathlib import Path
from svomflow.products.alert_messages import parse_alert
from svomflow.flows.alert_ingest import alert_ingest

out, db, go, me, tag = sys.argv[1:6]
def doc(alert_id, trig):
    return json.dumps({"id": alert_id, "trigger_id": trig, "trigger_time": "2026-11-23T04:00:00Z"})
jobs = [(f"a-{tag}-{me}", f"own{me}{tag}"), (f"a-{tag}-shared", f"shared{tag}"),
        (f"a-{tag}-upd-{me}", f"upd{tag}")]
while not Path(go).exists():  # start together
    time.sleep(0.01)
for alert_id, trig in jobs:
    text = doc(alert_id, trig)
    alert_ingest(burst_id=trig, alert=parse_alert(text), payload=text, instrument="grm",
                 out_dir=out, database_url=db)
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'products.db'}"
        dispose_engines()
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"c_{uuid.uuid4().hex[:12]}"  # one schema per test: runs never share rows
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_two_processes_running_flows_at_once(
    prefect_harness: None, tmp_path: Path, db_url: str
) -> None:
    from prefect.settings import PREFECT_API_URL

    make_engine(db_url)  # schema first, then the race
    dispose_engines()
    out, go, tag = tmp_path / "products", tmp_path / "go", uuid.uuid4().hex[:6]
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_LOGGING_LEVEL="WARNING")
    env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = "180"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(out), db_url, str(go), str(i), tag],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in (1, 2)
    ]
    time.sleep(0.5)
    go.touch()
    for p in procs:
        output, _ = p.communicate(timeout=240)
        assert p.returncode == 0, output.decode()[-3000:]

    store = ProductStore(out, db_url)
    rows = store.list(include_superseded=True)
    by_burst: dict[str, list] = {}
    for r in rows:
        by_burst.setdefault(r.obs_id, []).append(r)
    assert set(by_burst) == {f"own1{tag}", f"own2{tag}", f"shared{tag}", f"upd{tag}"}
    assert len(by_burst[f"shared{tag}"]) == 1  # identical alert twice at once: one product
    upd = sorted(by_burst[f"upd{tag}"], key=lambda r: r.version)
    assert [r.version for r in upd] == [1, 2]
    assert [r.superseded for r in upd] == [True, False] and upd[0].superseded_by == upd[1].id
    assert upd[0].path != upd[1].path
    for r in rows:  # each file is the one its row describes: nothing overwritten
        assert sha256_file(r.path) == r.checksum
    ids = {Path(r.path).read_text() for r in upd}
    assert len(ids) == 2
    states = {(s.key, s.flow_name): s.state for s in store.statuses()}
    assert all(states[(b, "alert_ingest")] == "done" for b in by_burst)
