"""Benchmark: the web site on a realistic history (issue 18's load target, < 300 ms).

History: ``--days`` (default a year) of housekeeping at one sample per 10 s for ``--params``
(default 50) ECLAIRs parameters, ingested day by day through the housekeeping store's own
path (:func:`svomflow.products.housekeeping.ingest`, which maintains the rollups), and
``--products`` (default 10,000) products published through the products store
(:meth:`ProductStore.publish_many`, files on disk, rows in the database), all on SQLite.

Then the site is served by uvicorn on a free port and asked over HTTP, with an API token:

* a quarter-long plot: ``/api/housekeeping/series`` over 90 days (what the viewer's page
  fetches), against the peer: the raw samples of the same quarter read straight from the
  table (``housekeeping.samples``, the query without rollups);
* the products list: ``/api/products`` (100 newest) and the ``/products`` page, against
  the peer: a plain SQL ``SELECT`` of the same 100 rows.

Each figure is the median of ``--repeats`` requests (a different parameter each time).
Run: ``python -m benchmarks.bench_web`` (a year: long, mostly ingestion; ``--days 120``
gives the same quarter figures on a shorter history).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from benchmarks._report import result

TARGET_S = 0.300
STEP_S = 10.0


def _median_time(fn: Callable[[int], object], repeats: int) -> float:
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _ingest_housekeeping(engine, days: int, n_params: int, end: datetime) -> tuple[int, float]:
    """Ingest ``days`` of samples day by day; return (samples, seconds)."""
    from sqlmodel import Session
    from svomflow.products import housekeeping as hk

    names = [f"p{k:02d}" for k in range(n_params)]
    rng = np.random.default_rng(18)
    phases = rng.uniform(0, 2 * np.pi, n_params)
    t_end = end.timestamp()
    t_start = t_end - days * 86400.0
    total = 0
    t0 = time.perf_counter()
    with Session(engine) as s:
        hk.upsert_parameters(
            s,
            [
                hk.ParameterDef(
                    instrument="ECLAIRS", name=n, unit="degC", soft_low=-30.0, soft_high=30.0
                )
                for n in names
            ],
        )
        for day in range(days):
            t = t_start + day * 86400.0 + np.arange(0.0, 86400.0, STEP_S)
            values = {
                n: 10.0 * np.sin(2 * np.pi * t / 86400.0 + phases[k]) + rng.normal(0, 0.3, t.size)
                for k, n in enumerate(names)
            }
            res = hk.ingest(s, "ECLAIRS", t, values)
            total += res.total
            if (day + 1) % 30 == 0 or day + 1 == days:
                rate = total / (time.perf_counter() - t0)
                print(f"  housekeeping: {day + 1}/{days} days, {total:,} samples, {rate:,.0f}/s")
    return total, time.perf_counter() - t0


def _publish_products(root: Path, url: str, n: int) -> float:
    """Publish ``n`` small products in batches through the products store; return seconds."""
    from svomflow.products import ProductStore, Provenance
    from svomflow.products.store import PublishRequest

    store = ProductStore(root, url)
    codes = ("QLC", "QPO", "QT90", "QSPEC")
    t0 = time.perf_counter()
    batch: list[PublishRequest] = []
    for k in range(n):
        obs = f"sb{26000000 + k // len(codes):08d}"
        code = codes[k % len(codes)]
        payload = f'{{"obs": "{obs}", "code": "{code}"}}'.encode()
        batch.append(
            PublishRequest(
                lambda p, b=payload: p.write_bytes(b),
                code,
                "ECL",
                obs,
                Provenance.start(config={"k": k}, flow_name="vhf_quick_analysis"),
                "json",
            )
        )
        if len(batch) == 500 or k == n - 1:
            store.publish_many(batch)
            batch = []
    return time.perf_counter() - t0


def main() -> None:
    """Build the history, serve the site, time the two pages against their peers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--params", type=int, default=50)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.days < 91:
        parser.error("--days must cover a quarter (91 or more)")

    import httpx

    # the whole site is imported before the long ingestion: an import problem stops the run
    # at once, and the server runs the code that was there when the history was built
    import svomflow.web.app  # noqa: F401
    from sqlmodel import Session, text
    from svomflow.products import housekeeping as hk
    from svomflow.web.auth import add_user, create_token
    from svomflow.web.db import engine_for
    from svomflow.web.server import serve_in_thread
    from svomflow.web.settings import WebSettings

    tmp = Path(tempfile.mkdtemp(prefix="svomflow-bench-web-"))
    try:
        url = f"sqlite:///{tmp / 'site.db'}"
        root = tmp / "products"
        root.mkdir()
        engine = engine_for(url)
        end = datetime.now(UTC).replace(microsecond=0)
        print(
            f"history: {args.days} days x {args.params} parameters at 1/{STEP_S:.0f} s, "
            f"{args.products:,} products, SQLite at {tmp}"
        )
        samples, t_hk = _ingest_housekeeping(engine, args.days, args.params, end)
        t_prod = _publish_products(root, url, args.products)
        db_mb = sum(p.stat().st_size for p in tmp.glob("site.db*")) / 1e6
        print(
            f"ingested {samples:,} samples in {t_hk:.0f} s ({samples / t_hk:,.0f}/s), "
            f"published {args.products:,} products in {t_prod:.0f} s; database {db_mb:,.0f} MB"
        )
        with Session(engine) as s:
            add_user(s, "bench", uuid.uuid4().hex, ["admin"])
            _, token = create_token(s, "bench", "bench")
        server = serve_in_thread(
            WebSettings(database_url=url, products_root=root, secret_key=uuid.uuid4().hex)
        )
        try:
            client = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            q_start, q_end = end - timedelta(days=90), end

            def plot(i: int) -> None:
                res = client.get(
                    "/api/housekeeping/series",
                    params={
                        "instrument": "ECLAIRS",
                        "parameter": f"p{i % args.params:02d}",
                        "start": q_start.isoformat(),
                        "end": q_end.isoformat(),
                        "max_points": 2000,
                    },
                )
                res.raise_for_status()
                assert len(res.json()["times_ms"]) > 1000

            def raw(i: int) -> None:
                with Session(engine) as s:
                    t, _ = hk.samples(s, "ECLAIRS", f"p{i % args.params:02d}", q_start, q_end)
                assert t.size > 700_000

            def products_api(_: int) -> None:
                res = client.get("/api/products", params={"limit": 100})
                res.raise_for_status()
                assert len(res.json()) == 100

            def products_page(_: int) -> None:
                res = client.get("/products", headers={"Accept": "text/html"})
                res.raise_for_status()

            def plain_select(_: int) -> None:
                with engine.connect() as conn:
                    rows = conn.execute(
                        text(
                            "SELECT * FROM products WHERE checksum != 'pending' AND superseded = 0"
                            " ORDER BY created DESC LIMIT 100"
                        )
                    ).fetchall()
                assert len(rows) == 100

            plot(0)  # first use: imports and page caches
            figures = {
                "plot": _median_time(plot, args.repeats),
                "raw": _median_time(raw, max(3, args.repeats // 2)),
                "api": _median_time(products_api, args.repeats),
                "page": _median_time(products_page, args.repeats),
                "select": _median_time(plain_select, args.repeats),
            }
            client.close()
        finally:
            server.stop()
        history = f"{args.days} d x {args.params} params"
        print(
            f"quarter plot over HTTP: {figures['plot'] * 1e3:.0f} ms; raw quarter query "
            f"(no rollups): {figures['raw'] * 1e3:.0f} ms -> "
            f"{figures['raw'] / figures['plot']:.1f}x faster with the rollups"
        )
        print(
            f"products list: API {figures['api'] * 1e3:.0f} ms, page "
            f"{figures['page'] * 1e3:.0f} ms; plain SELECT of the same rows "
            f"{figures['select'] * 1e3:.1f} ms"
        )
        result(
            f"quarter plot of 1 parameter ({history}) < 300 ms",
            f"{figures['plot'] * 1e3:.0f} ms",
            f"{figures['raw'] / figures['plot']:.1f}x faster than the raw-sample query",
            figures["plot"] < TARGET_S,
        )
        result(
            f"products list, 100 of {args.products:,} (API) < 300 ms",
            f"{figures['api'] * 1e3:.0f} ms",
            f"{figures['api'] / figures['select']:.0f}x a plain SQL SELECT",
            figures["api"] < TARGET_S,
        )
        result(
            f"products page, 100 of {args.products:,} (HTML) < 300 ms",
            f"{figures['page'] * 1e3:.0f} ms",
            f"{figures['page'] / figures['select']:.0f}x a plain SQL SELECT",
            figures["page"] < TARGET_S,
        )
    finally:
        from svomflow.products.database import dispose_engines

        dispose_engines()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
