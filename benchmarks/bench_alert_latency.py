"""Benchmark: alert message to the last VHF product, cold process vs warm long-lived process.

The same simulated bright burst (about 1e6 events, ECLAIRs + GRM; simulated once) is
processed for each of N alerts, alternating the two ways so both see the same load:

* cold (the peer): a fresh ``svomflow vhf --no-prefect`` process per alert, the numba
  kernel cache already filled (as after ``make warm``): imports, cache loading, reading,
  the pipeline and the products;
* warm: one long-lived process with the imports and the compiled kernels loaded (what a
  served deployment or the alert listener is) parses the alert message and runs the same
  pipeline (:func:`~svomflow.flows.vhf.run_vhf_plain`).

Latency is from the alert message (the process start, or the message parsed) to the return
of the run, when its last product and its database row are written. Median and 95th
percentile over N alerts (default 20; ``--alerts N`` for fewer on a loaded machine, which
the output says). Target (issue 14): warm under 5 s for the 1e6-event burst on 2 cores.

Run: ``python -m benchmarks.bench_alert_latency [--alerts N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import load, result

SCENARIO = ("bright_long_grb", ["time.start_s=-40", "time.stop_s=110"])
TARGET_S = 5.0


def _alert(k: int) -> str:
    """Return alert message ``k`` (JSON, as the listener receives it)."""
    return json.dumps(
        {
            "id": f"bench-{k}",
            "trigger_id": f"sb9{k:07d}",
            "trigger_time": "2026-11-23T04:00:00Z",
            "ra_deg": 187.25,
            "dec_deg": -12.5,
            "error_deg": 0.15,
        }
    )


def _cold(files: list[str], out: Path, k: int) -> float:
    """Return the wall time of one fresh ``svomflow vhf --no-prefect`` process."""
    exe = Path(sys.executable).with_name("svomflow")
    cmd = [str(exe), "vhf", "--no-prefect", "--json", "--obs-id", f"sbcold{k:04d}"]
    cmd += ["--out", str(out)] + [a for f in files for a in ("--events", f)]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"cold run {k} failed: {done.stderr.strip()[-500:]}")
    return wall


def _warm(files: list[str], out: Path, k: int) -> float:
    """Return the time from alert message ``k`` to the end of its run in this process."""
    from svomflow.flows.vhf import run_vhf_plain
    from svomflow.products.alert_messages import parse_alert

    t = time.perf_counter()
    alert = parse_alert(_alert(k))
    run_vhf_plain(files, alert.trigger_id, out_dir=str(out))
    return time.perf_counter() - t


def _stats(x: list[float]) -> tuple[float, float]:
    return float(np.median(x)), float(np.percentile(x, 95))


def main(argv: list[str] | None = None) -> None:
    """Simulate once, time N alerts each way, print median, p95 and the cold/warm ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20, help="alerts per way (default 20)")
    n = max(1, parser.parse_args(argv).alerts)
    from svomflow.paths import data_home

    # the kernel cache of the installation (filled by `make warm`), shared by both ways
    cache = os.environ.get("NUMBA_CACHE_DIR") or str(data_home() / "numba_cache")
    os.environ["NUMBA_CACHE_DIR"] = cache
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["SVOMFLOW_HOME"] = str(root / "home")  # its CALDB gets the simulation's
        from svomflow.flows.vhf import run_vhf_plain
        from svomflow.simulation.scenario import load_scenario, run_scenario

        truth = run_scenario(load_scenario(SCENARIO[0], SCENARIO[1]), root / "sim", 1)
        files = [str(root / "sim" / truth["instruments"][i]["files"]["events"]) for i in
                 ("eclairs", "grm")]  # fmt: skip
        n_ev = truth["instruments"]["eclairs"]["n_events"] + sum(
            v["n_events"] for v in truth["instruments"]["grm"]["detectors"].values()
        )
        print(f"input: {n_ev:,} events (ECLAIRs + GRM); {n} alerts each way; {load()} at start")
        if n < 20:
            print(f"note: {n} alerts instead of 20 (--alerts): the percentiles are rougher")
        run_vhf_plain(files, "warmup", out_dir=str(root / "warmup"))  # fills the cache too
        cold: list[float] = []
        warm: list[float] = []
        for k in range(n):  # alternate, so that both ways see the same load
            cold.append(_cold(files, root / "cold", k))
            warm.append(_warm(files, root / "warm", k))
            print(
                f"  alert {k + 1}/{n}: cold {cold[-1]:6.2f} s   warm {warm[-1]:6.2f} s", flush=True
            )
    (cm, cp), (wm, wp) = _stats(cold), _stats(warm)
    print(f"cold process (peer): median {cm:6.2f} s, p95 {cp:6.2f} s")
    print(f"warm process       : median {wm:6.2f} s, p95 {wp:6.2f} s")
    print(f"ratio cold/warm    : median {cm / wm:.2f}x, p95 {cp / wp:.2f}x; {load()} at end")
    result(
        f"alert to last VHF product, 1e6 events, warm process, under {TARGET_S:.0f} s "
        f"(median, p95 over {n})",
        f"{wm:.2f} s, p95 {wp:.2f} s",
        f"cold fresh process {cm:.2f} s, p95 {cp:.2f} s: {cm / wm:.2f}x the warm",
        wm < TARGET_S,
    )


if __name__ == "__main__":
    main()
