"""Benchmark: publishing a VHF-sized batch of products, one at a time vs one batch.

A batch of 50 products like a VHF run's (40 FITS light curves and tables of 2000 rows, 10
PNG-sized files) is published into a products database twice per round with a new
configuration each time (so every product is written, never found identical):

* the peer, product by product (``ProductStore.publish`` for each: per product one
  reservation commit, one record commit, one file fsync and one directory fsync, as the
  store did before batches);
* one batch (``ProductStore.publish_many``: one reservation and one record transaction,
  one fsync per file and one per directory).

Prints the commits and fsyncs counted for each and the wall-time ratio, on SQLite and, when
``SVOMFLOW_TEST_POSTGRES_URL`` is set, on PostgreSQL (in a temporary schema).

Run: ``python -m benchmarks.bench_publication`` (under a minute).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

N_FITS, N_PNG, ROUNDS = 40, 10, 3


def _requests(round_id: int, mode: str) -> list:
    from astropy.io import fits
    from svomflow.products import Provenance
    from svomflow.products.store import PublishRequest

    rng = np.random.default_rng(round_id)
    out = []
    for i in range(N_FITS):
        table = fits.BinTableHDU.from_columns(
            [
                fits.Column("TIME", "D", array=np.sort(rng.uniform(0, 100, 2000))),
                fits.Column("RATE", "E", array=rng.normal(100, 10, 2000)),
            ],
            name="RATE",
        )
        content = [fits.PrimaryHDU(), table]
        out.append((content, f"LC{i:02d}", "fits"))
    blob = rng.bytes(60_000)  # a preview PNG's size
    for i in range(N_PNG):
        out.append((lambda p, b=blob: p.write_bytes(b), f"PNG{i:02d}", "png"))
    return [
        PublishRequest(
            content,
            code,
            "ECLGRM",
            "sbBENCH",
            Provenance.start(config={"round": round_id, "mode": mode}, flow_name="bench"),
            ext,
        )
        for content, code, ext in out
    ]


@contextmanager
def _counting(engine) -> Iterator[dict[str, int]]:
    """Count commits on ``engine`` and calls of ``os.fsync`` while the block runs."""
    from sqlalchemy import event

    counts = {"commits": 0, "fsyncs": 0}
    real_fsync = os.fsync

    def on_commit(_conn) -> None:
        counts["commits"] += 1

    def fsync(fd: int) -> None:
        counts["fsyncs"] += 1
        real_fsync(fd)

    event.listen(engine, "commit", on_commit)
    os.fsync = fsync
    try:
        yield counts
    finally:
        os.fsync = real_fsync
        event.remove(engine, "commit", on_commit)


def _measure(store, publish: Callable[[list], object], mode: str) -> tuple[float, dict[str, int]]:
    times, counts = [], {}
    for r in range(ROUNDS):
        requests = _requests(r, mode)
        with _counting(store.engine) as c:
            t = time.perf_counter()
            publish(requests)
            times.append(time.perf_counter() - t)
        counts = c
    return statistics.median(times), counts


def _bench(url: str, label: str, root: Path) -> None:
    from svomflow.products import ProductStore

    store = ProductStore(root / label, url)
    one_by_one = _measure(store, lambda reqs: [store.publish_many([q]) for q in reqs], "single")
    batched = _measure(store, store.publish_many, "batch")
    n = N_FITS + N_PNG
    print(f"\n{label}: {n} products per publication, median of {ROUNDS} rounds")
    print(f"  {'path':<22}{'wall (s)':>10}{'commits':>10}{'fsyncs':>10}")
    for name, (wall, c) in (("one product at a time", one_by_one), ("one batch", batched)):
        print(f"  {name:<22}{wall:>10.3f}{c['commits']:>10}{c['fsyncs']:>10}")
    print(f"  wall-time ratio one-at-a-time / batch: {one_by_one[0] / batched[0]:.2f}")


def main() -> None:
    """Run the publication benchmark on SQLite and, when configured, PostgreSQL."""
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _bench(f"sqlite:///{root / 'products.db'}", "SQLite", root)
        base = os.environ.get("SVOMFLOW_TEST_POSTGRES_URL")
        if not base:
            print("\nPostgreSQL: skipped (SVOMFLOW_TEST_POSTGRES_URL is not set)")
            return
        from sqlalchemy import create_engine, text

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            sep = "&" if "?" in base else "?"
            _bench(f"{base}{sep}options=-csearch_path%3D{schema}", "PostgreSQL", root)
        finally:
            from svomflow.products.database import dispose_engines

            dispose_engines()
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


if __name__ == "__main__":
    main()
