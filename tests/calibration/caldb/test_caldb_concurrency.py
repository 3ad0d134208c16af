"""Several processes registering into one CALDB at once lose nothing and get distinct versions."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

from svomflow.calibration.caldb import Caldb

N_PROC = 4
PER_PROC = 5


def _worker(root: str, src_dir: str, k: int) -> list[tuple[int, int]]:
    db = Caldb(root)
    out = []
    for i in range(PER_PROC):
        p = Path(src_dir) / f"p{k}_{i}.fits"
        p.write_text(f"process {k} file {i}\n")
        # Same code name and validity for everyone: only the registration order separates them.
        e = db.register(
            p, telescope="SVOM", instrument="MXT", codename="CTI", valid_from="2024-01-01"
        )
        out.append((e.id, e.registered_version))
    return out


def test_concurrent_registrations(tmp_path):
    root = tmp_path / "caldb"
    Caldb(root)  # create the schema once, as a deployment would
    src = tmp_path / "src"
    src.mkdir()
    # fork: the children run this module's function without re-importing the test module.
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start = ctx.Barrier(N_PROC)

    def run(k: int) -> None:
        # A forked child inherits the parent's threads and atexit handlers (e.g. a Prefect
        # test server started by another test); leave with os._exit so none of them runs.
        code = 0
        try:
            start.wait(timeout=30)  # release all writers together
            queue.put(_worker(str(root), str(src), k))
        except BaseException as exc:  # report in the parent instead of dying silently
            queue.put(repr(exc))
            code = 1
        finally:
            queue.close()
            queue.join_thread()
            os._exit(code)

    procs = [ctx.Process(target=run, args=(k,)) for k in range(N_PROC)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    assert all(isinstance(r, list) for r in results), results
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    got = [x for r in results for x in r]
    db = Caldb(root)
    entries = db.entries()
    assert len(entries) == N_PROC * PER_PROC == len(got)
    assert sorted(v for _, v in got) == list(range(1, N_PROC * PER_PROC + 1))
    assert db.index_version == N_PROC * PER_PROC
    for e in entries:
        e.verify()
        assert e.path.read_text().startswith("process ")
    # Every version has its snapshot, each with exactly as many entries as its number.
    for v in range(1, db.index_version + 1):
        assert len(db.snapshot(v)["entries"]) == v
    # The tie on validity start goes to the entry registered last.
    last = max(entries, key=lambda e: e.registered_version)
    assert db.select("CTI", instrument="MXT", time="2025-01-01").id == last.id
