"""Benchmark: scale. Reprocessing many bursts on Dask vs threads; VHF time and memory vs events.

Two parts (issue 16, "Scale"), each point in fresh processes so peak memory is its own:

* **reprocess** - ``svomflow reprocess`` of the VHF flow over 100 small simulated bursts
  (short GRB, a 15 s data run: ~7e4 ECLAIRs + GRM events each), once on the thread runner of
  one process (2 threads) and once on a Dask ``LocalCluster`` of 2 worker processes (1
  thread each), both through :func:`svomflow.operations.reprocess.run_plans` and a
  temporary Prefect server. Prints the throughput (bursts per minute) of each and their
  ratio, the CPU time per burst, and the peak RSS of the thread runner's process vs each
  Dask worker's (and the Dask client process's). The 100 bursts are 4 simulations (4 seeds)
  copied under 100 burst ids: every burst is processed in full, only the simulation is
  shared. Their first products are made without Prefect (2 processes), then each pass
  reprocesses all 100 with a changed ``oblc_dt_s`` (a new version of every product).
* **curve** - the VHF pipeline (``run_vhf_plain``: the flow's steps and product writing,
  without Prefect, whose overhead is constant per run: see bench_vhf_flow) on 1e5 to 1e7
  events: one short GRB in a data run whose length sets the number of events
  (~4800 events/s of background). The simulation runs in its own process (its peak RSS is
  printed too), the VHF run in a fresh one (peak RSS from ``getrusage``, the import
  baseline subtracted). Prints the growth exponent of wall time and memory above the
  baseline (least-squares slope in log-log), the memory each added event costs at the
  large end, and the ratio of each point to the 1e6 one. Target ("met"): CPU time and
  memory grow no faster than linearly (exponents below 1.2) up to 1e7 events.

Run: ``python -m benchmarks.bench_scale [reprocess] [curve] [--bursts N] [--max-events N]``
(both parts by default; about 12 minutes on an idle 2-core machine by the CPU times measured
under load, 10 s of CPU per burst over the three passes; the large points run at
``nice -n 5``; ``--bursts 20`` for a shorter run). Without prefect-dask (the ``dask``
extra, installed by ``make install``) the reprocess part is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._report import load, result

# events per second of data in the short_grb scenario (ECLAIRs + GRM background); the data
# run is sized from it and the measured count is what is reported
EVENTS_PER_S = 4800.0
CURVE_EVENTS = (1e5, 3e5, 1e6, 3e6, 1e7)
TINY = ["time.start_s=-5", "time.stop_s=10"]
N_SIMULATIONS = 4


def _child(args: list[str], *, nice: int = 0) -> dict[str, Any]:
    """Run this module in a fresh interpreter; return the JSON it prints last."""
    cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--child", *args]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _n_events(truth: dict[str, Any]) -> int:
    inst = truth["instruments"]
    return int(
        inst["eclairs"]["n_events"] + sum(d["n_events"] for d in inst["grm"]["detectors"].values())
    )


def _files(folder: Path) -> list[str]:
    return [str(folder / "eclairs_l1_events.fits"), str(folder / "grm_l1_events.fits")]


# ----------------------------------------------------------------------------- children


def child_simulate(out: str, seed: str, *sets: str) -> dict[str, Any]:
    """Simulate the short GRB scenario with ``sets``; return events, times and peak RSS."""
    from svomflow.simulation.scenario import load_scenario, run_scenario

    base = _peak_mb()
    t, c = time.perf_counter(), time.process_time()
    truth = run_scenario(load_scenario("short_grb", list(sets)), Path(out), int(seed))
    return {
        "events": _n_events(truth),
        "wall_s": time.perf_counter() - t,
        "cpu_s": time.process_time() - c,
        "peak_mb": _peak_mb(),
        "base_mb": base,
    }


def child_vhf(folder: str, out: str) -> dict[str, Any]:
    """Run the VHF pipeline once on a simulation folder; return times and peak RSS."""
    from svomflow.flows.vhf import run_vhf_plain

    base = _peak_mb()
    t, c = time.perf_counter(), time.process_time()
    res = run_vhf_plain(_files(Path(folder)), "scale", out_dir=out)
    return {
        "wall_s": time.perf_counter() - t,
        "cpu_s": time.process_time() - c,
        "peak_mb": _peak_mb(),
        "base_mb": base,
        "products": len(res["products"]),
    }


def child_first_products(root: str, *keys: str) -> dict[str, Any]:
    """Make the first VHF products of some bursts, without Prefect."""
    from svomflow.flows.vhf import run_vhf_plain

    for key in keys:
        run_vhf_plain(_files(Path(root) / "bursts" / key), key)
    return {"done": len(keys)}


def _reprocess(keys: list[str], sets: list[str], dask: str | None) -> tuple[float, list[Any]]:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from svomflow.operations.reprocess import plan_reprocess, run_plans

    plans = plan_reprocess("vhf", keys, sets=sets)
    # the heartbeat thread adds ~1 s to each flow run's exit (tests/conftest.py does the same)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        t = time.perf_counter()
        results = run_plans(plans, concurrency=2, dask=dask)
        return time.perf_counter() - t, results


def _summary(results: list[Any]) -> dict[str, int]:
    return {
        "completed": sum(r.state == "completed" for r in results),
        "new_versions": sum(len(r.new_versions) > 0 for r in results),
    }


def child_reprocess_threads(keys_file: str, *sets: str) -> dict[str, Any]:
    """Reprocess the bursts on 2 threads of this process; return wall, CPU and peak RSS."""
    import svomflow.flows.vhf  # noqa: F401 - imported before timing, as the Dask workers are

    keys = json.loads(Path(keys_file).read_text())
    c = time.process_time()
    wall, results = _reprocess(keys, list(sets), None)
    return {
        "wall_s": wall,
        "cpu_s": time.process_time() - c,
        "peak_mb": _peak_mb(),
        **_summary(results),
    }


def child_reprocess_dask(keys_file: str, *sets: str) -> dict[str, Any]:
    """Reprocess the bursts on a LocalCluster of 2 worker processes; wall, CPU, RSS each."""
    import importlib

    from distributed import Client, LocalCluster

    keys = json.loads(Path(keys_file).read_text())
    t = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    # the workers import the flow before timing, as the thread runner's process does
    client.run(importlib.import_module, "svomflow.flows.vhf")
    start_s = time.perf_counter() - t

    def usage() -> tuple[float, float]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0

    before = client.run(usage)
    c = time.process_time()
    wall, results = _reprocess(keys, list(sets), cluster.scheduler_address)
    client_cpu = time.process_time() - c
    after = client.run(usage)
    client.close()
    cluster.close()
    return {
        "wall_s": wall,
        "start_s": start_s,
        "client_cpu_s": client_cpu,
        "worker_cpu_s": sum(after[w][0] - before[w][0] for w in after),
        "worker_peak_mb": sorted(v[1] for v in after.values()),
        "client_peak_mb": _peak_mb(),
        **_summary(results),
    }


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "simulate": child_simulate,
    "vhf": child_vhf,
    "first": child_first_products,
    "threads": child_reprocess_threads,
    "dask": child_reprocess_dask,
}


# ----------------------------------------------------------------------------- parts


def _slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): the growth exponent."""
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    num = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
    return num / sum((a - mx) ** 2 for a in lx)


def part_curve(root: Path, max_events: float) -> None:
    """VHF wall time and peak memory against the number of events, each point fresh."""
    points = []
    for target in [n for n in CURVE_EVENTS if n <= max_events * 1.0001]:
        length = target / EVENTS_PER_S
        sets = [f"time.start_s={-0.3 * length:.1f}", f"time.stop_s={0.7 * length:.1f}"]
        big = target >= 3e6  # the large points run once, niced (the machine is shared)
        folder = root / f"curve_{target:.0e}"
        sim = _child(["simulate", str(folder), "1", *sets], nice=5 if big else 0)
        try:
            vhf = _child(["vhf", str(folder), str(root / "curve_products")], nice=5 if big else 0)
        except subprocess.CalledProcessError:
            print(f"VHF failed on {sim['events']:,d} events (traceback above): point left out")
            continue
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        points.append((sim, vhf))
        print(
            f"{sim['events']:>10,d} events ({sets[0]}, {sets[1]}): simulation "
            f"{sim['wall_s']:6.1f} s wall {sim['cpu_s']:6.1f} s CPU peak {sim['peak_mb']:6.0f} MB; "
            f"VHF {vhf['wall_s']:6.1f} s wall {vhf['cpu_s']:6.1f} s CPU peak {vhf['peak_mb']:6.0f} MB "
            f"(+{vhf['peak_mb'] - vhf['base_mb']:.0f} MB over imports), {load()}",
            flush=True,
        )
    if len(points) < 2:
        return
    n = [float(s["events"]) for s, _ in points]
    wall = [v["wall_s"] for _, v in points]
    cpu = [v["cpu_s"] for _, v in points]
    mem = [max(v["peak_mb"] - v["base_mb"], 1.0) for _, v in points]
    sim_mem = [max(s["peak_mb"] - s["base_mb"], 1.0) for s, _ in points]
    k_wall, k_cpu, k_mem, k_sim = (
        _slope(n, wall),
        _slope(n, cpu),
        _slope(n, mem),
        _slope(n, sim_mem),
    )
    print(
        f"growth exponents over {n[0]:.2g}-{n[-1]:.2g} events: VHF wall {k_wall:.2f}, CPU "
        f"{k_cpu:.2f}, memory above imports {k_mem:.2f}; simulation memory {k_sim:.2f}"
    )
    # what each further event costs at the large end (the fixed part dominates small runs)
    per_event = (points[-1][1]["peak_mb"] - points[-2][1]["peak_mb"]) * 2**20 / (n[-1] - n[-2])
    print(f"VHF peak memory per added event, {n[-2]:.2g} to {n[-1]:.2g}: {per_event:.0f} bytes")
    ref = min(range(len(n)), key=lambda i: abs(math.log(n[i] / 1e6)))
    for (sim, vhf), events in zip(points, n, strict=True):
        result(
            f"VHF pipeline on {events:.2g} events (fresh process)",
            f"{vhf['wall_s']:.1f} s wall, {vhf['cpu_s']:.1f} s CPU, peak {vhf['peak_mb']:.0f} MB "
            f"(+{vhf['peak_mb'] - vhf['base_mb']:.0f} MB over imports); simulation peak "
            f"{sim['peak_mb']:.0f} MB",
            f"CPU {vhf['cpu_s'] / points[ref][1]['cpu_s']:.2f}x, memory "
            f"{(vhf['peak_mb'] - vhf['base_mb']) / mem[ref]:.2f}x the {n[ref]:.2g}-event point",
        )
    result(
        "VHF growth exponent vs events, 1e5-1e7 (1 = linear)",
        f"wall {k_wall:.2f}, CPU {k_cpu:.2f}, memory {k_mem:.2f} ({per_event:.0f} bytes per "
        f"added event at {n[-1]:.2g})",
        f"simulation memory exponent {k_sim:.2f}",
        met=k_cpu < 1.2 and k_mem < 1.2 if n[-1] >= 9e6 else None,
    )


def _make_bursts(root: Path, n_bursts: int) -> list[str]:
    """Simulate a few tiny bursts, copy them under ``n_bursts`` ids, make first products."""
    from concurrent.futures import ThreadPoolExecutor

    sims = []
    for seed in range(N_SIMULATIONS):
        sim = _child(["simulate", str(root / f"sim{seed}"), str(seed + 1), *TINY])
        sims.append(sim["events"])
    print(f"{N_SIMULATIONS} simulations of {min(sims):,}-{max(sims):,} events (short GRB {TINY})")
    keys = [f"sb261205{i:04d}" for i in range(n_bursts)]
    for i, key in enumerate(keys):
        dst = root / "bursts" / key
        dst.mkdir(parents=True)
        for f in _files(root / f"sim{i % N_SIMULATIONS}"):
            shutil.copy2(f, dst)
    t = time.perf_counter()
    # first products without Prefect, in 2 processes (the setup, not measured)
    halves = [keys[0::2], keys[1::2]]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda ks: _child(["first", str(root), *ks]), halves))
    print(f"first products of {n_bursts} bursts in {time.perf_counter() - t:.0f} s (2 processes)")
    return keys


def part_reprocess(root: Path, n_bursts: int) -> None:
    """Reprocess ``n_bursts`` bursts on threads, then on Dask worker processes."""
    try:
        import prefect_dask  # noqa: F401
    except ImportError:
        print(
            "prefect-dask is not installed (pip install 'svomflow[dask]'): reprocess part skipped"
        )
        result("reprocess 100 bursts, Dask vs threads", "skipped", "prefect-dask not installed")
        return
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    keys = _make_bursts(root, n_bursts)
    keys_file = root / "keys.json"
    keys_file.write_text(json.dumps(keys))
    with prefect_test_harness(server_startup_timeout=120):
        # the children (and their Dask workers) talk to this temporary server
        os.environ["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
        thr = _child(["threads", str(keys_file), "oblc_dt_s=0.5"])
        print(
            f"threads (1 process, 2 threads): {thr['wall_s']:.1f} s for {n_bursts} bursts, "
            f"{thr['completed']} completed, {thr['new_versions']} with new versions; CPU "
            f"{thr['cpu_s']:.1f} s; peak RSS {thr['peak_mb']:.0f} MB ({load()})",
            flush=True,
        )
        dsk = _child(["dask", str(keys_file), "oblc_dt_s=0.25"])
        os.environ.pop("PREFECT_API_URL")
    print(
        f"Dask (2 worker processes x 1 thread): {dsk['wall_s']:.1f} s for {n_bursts} bursts "
        f"(+{dsk['start_s']:.1f} s to start the cluster and import), {dsk['completed']} "
        f"completed, {dsk['new_versions']} with new versions; CPU workers "
        f"{dsk['worker_cpu_s']:.1f} s + client {dsk['client_cpu_s']:.1f} s; peak RSS per "
        f"worker {', '.join(f'{m:.0f}' for m in dsk['worker_peak_mb'])} MB, client "
        f"{dsk['client_peak_mb']:.0f} MB ({load()})"
    )
    rate_t = 60.0 * n_bursts / thr["wall_s"]
    rate_d = 60.0 * n_bursts / dsk["wall_s"]
    rate_d_start = 60.0 * n_bursts / (dsk["wall_s"] + dsk["start_s"])
    worker_mb = max(dsk["worker_peak_mb"])
    print(
        f"throughput: threads {rate_t:.1f} bursts/min, Dask {rate_d:.1f} bursts/min "
        f"({rate_d_start:.1f} with the cluster start): ratio Dask/threads {rate_d / rate_t:.2f}"
    )
    ok = thr["completed"] == dsk["completed"] == n_bursts
    result(
        f"reprocess {n_bursts} small bursts (VHF, ~7e4 events each): Dask 2 worker processes",
        f"{rate_d:.1f} bursts/min ({rate_d_start:.1f} with cluster start); "
        f"{dsk['completed']}/{n_bursts} completed",
        f"{rate_d / rate_t:.2f}x the thread runner (2 threads, 1 process: {rate_t:.1f} "
        f"bursts/min, {thr['completed']}/{n_bursts} completed)",
        met=None if ok else False,
    )
    result(
        f"reprocess {n_bursts} small bursts: peak memory per worker",
        f"Dask worker {worker_mb:.0f} MB (client process {dsk['client_peak_mb']:.0f} MB)",
        f"{worker_mb / thr['peak_mb']:.2f}x the thread runner's process ({thr['peak_mb']:.0f} MB); "
        f"Dask total {(sum(dsk['worker_peak_mb']) + dsk['client_peak_mb']) / thr['peak_mb']:.2f}x",
    )
    result(
        f"reprocess {n_bursts} small bursts: CPU per burst",
        f"Dask {(dsk['worker_cpu_s'] + dsk['client_cpu_s']) / n_bursts:.2f} s (workers + client)",
        f"{(dsk['worker_cpu_s'] + dsk['client_cpu_s']) / thr['cpu_s']:.2f}x threads "
        f"({thr['cpu_s'] / n_bursts:.2f} s)",
    )


def main(argv: list[str]) -> None:
    """Run the selected parts (both by default), or one child step (``--child``)."""
    if argv and argv[0] == "--child":
        out = CHILDREN[argv[1]](*argv[2:])
        print(json.dumps(out), flush=True)
        return
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_scale")
    ap.add_argument("parts", nargs="*", help="reprocess, curve (default: both)")
    ap.add_argument("--bursts", type=int, default=100)
    ap.add_argument("--max-events", type=float, default=1e7)
    args = ap.parse_args(argv)
    parts = args.parts or ["reprocess", "curve"]
    if set(parts) - {"reprocess", "curve"}:
        ap.error(f"unknown part(s): {', '.join(sorted(set(parts) - {'reprocess', 'curve'}))}")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # the kernel cache of the current home (make warm), kept when the home moves below
    from svomflow.numba_policy import cache_dir

    cache_dir()
    print(f"bench_scale: {', '.join(parts)} ({load()} at start)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["SVOMFLOW_HOME"] = str(root / "home")
        if "reprocess" in parts:
            part_reprocess(root, args.bursts)
        if "curve" in parts:
            part_curve(root, args.max_events)


if __name__ == "__main__":
    main(sys.argv[1:])
