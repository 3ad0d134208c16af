"""Orchestration overhead: what one Prefect task run costs compared with a plain call.

Runs N trivial tasks inside one flow with the default thread runner (mapped), and the same
function called directly, against the ephemeral Prefect API (temporary PREFECT_HOME), and
prints the per-task overhead and the ratio. This is the figure behind the rule that svomflow
tasks are coarse: a step over a whole light curve or image, never one task per pixel,
source or bin (ARCHITECTURE.md §10 measured ~3 ms per task with threads here).

Run: ``python -m benchmarks.bench_prefect_overhead [--n 300]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    """Measure and print the per-task overhead of Prefect's thread runner."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="svomflow-bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect import flow, task
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.task_runners import ThreadPoolTaskRunner

    def work(x: int) -> int:
        return x + 1

    tw = task(work, name="inc")

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def mapped(n: int) -> int:
        return sum(f.result() for f in tw.map(range(n)))

    @flow
    def empty() -> int:
        return 0

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        empty()  # start the ephemeral API once, outside the timings
        t0 = time.perf_counter()
        empty()
        t_empty = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert mapped(args.n) == sum(range(1, args.n + 1))
        t_flow = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(args.n):
        work(i)
    t_plain = time.perf_counter() - t0
    per_task = (t_flow - t_empty) / args.n
    print(f"empty flow run:                 {t_empty * 1e3:8.1f} ms")
    print(f"{args.n} mapped task runs:       {t_flow:8.2f} s  ({per_task * 1e3:.2f} ms per task)")
    print(f"{args.n} plain calls:            {t_plain * 1e3:8.3f} ms")
    print(f"ratio task run / plain call:    {per_task / max(t_plain / args.n, 1e-9):8.0f}x")


if __name__ == "__main__":
    main()
