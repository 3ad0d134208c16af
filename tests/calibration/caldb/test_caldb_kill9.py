"""kill -9 during CALDB promotions (issue 15): the index and its files stay consistent.

The nightly calibration promotes its masters into the CALDB, outside the products store. A
child process registers masters night after night (as the nightly flow does) and is killed
at random moments; after each kill a new writer opens the CALDB and promotes again. Then:
every entry's file exists with its checksum, ``latest.json`` is the committed index version
and no snapshot claims an uncommitted one, no staged ``.tmp-`` copy and no unreferenced
file is left in the data tree (a killed registration's file is set aside under
``orphans/``), and each promotion after a kill succeeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from svomflow.calibration.caldb import Caldb

_WRITER = """
import sys, time
from pathlib import Path
from svomflow.calibration.caldb import Caldb
root, work, first = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
caldb = Caldb(root)
for night in range(first, first + 1000):
    src = work / "candidate_bias_DDRAGOmB_1x1.fits"
    src.write_bytes((f"night {night} " * 20000).encode())  # 200 kB: copies take a while
    caldb.register(src, telescope="COLIBRI", instrument="COLIBRI_DDRAGO_B",
                   codename="MASTER_BIAS", valid_from=f"2026-{1 + night // 28 % 12:02d}-{1 + night % 28:02d}T01:00:00")
    print(night, flush=True)
"""


def _check_consistent(root: Path) -> None:
    caldb = Caldb(root)
    committed = caldb.index_version
    entries = caldb.entries()
    referenced = set()
    for e in entries:
        path = root / e.relpath
        assert path.is_file(), f"entry {e.id} points to a missing file {e.relpath}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == e.sha256
        referenced.add(path)
    latest = json.loads((root / "index" / "latest.json").read_text())
    assert latest["index_version"] == committed
    assert all(int(p.stem[1:]) <= committed for p in (root / "index").glob("v*.json"))
    data = [p for p in (root / "data").rglob("*") if p.is_file()]
    assert [p.name for p in data if p.name.startswith(".tmp-")] == []
    assert sorted(set(data) - referenced) == []


def _kill_loop(tmp_path: Path, kills: int, seed: int) -> int:
    rng = random.Random(seed)
    root, work = tmp_path / "caldb", tmp_path / "work"
    work.mkdir()
    first = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(root), str(work), str(first)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # one promotion done: the writer is in its loop
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        first += 1000
        # the next writer (a re-run of the nightly flow) repairs and promotes
        caldb = Caldb(root)
        before = caldb.index_version
        src = work / "rerun.fits"
        src.write_bytes(f"re-run after kill {first}".encode())
        caldb.register(src, telescope="COLIBRI", instrument="COLIBRI_DDRAGO_B",
                       codename="MASTER_BIAS", valid_from="2026-12-01T01:00:00")  # fmt: skip
        assert caldb.index_version == before + 1
        _check_consistent(root)
    return Caldb(root).index_version


def test_caldb_promotions_survive_kill9(tmp_path: Path) -> None:
    assert _kill_loop(tmp_path, kills=6, seed=15) >= 12


@pytest.mark.slow
def test_caldb_promotions_survive_many_kill9(tmp_path: Path) -> None:
    assert _kill_loop(tmp_path, kills=40, seed=1515) >= 80
