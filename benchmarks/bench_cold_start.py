"""Benchmark: the first VHF run of a fresh process, kernel cache empty vs warmed at install.

A fresh process compiles every numba kernel it calls unless the kernel cache holds it
(``svomflow warm``, run by ``make venv``/``make warm``). Three figures on the same simulated
burst (about 1e6 events), each process fresh:

* cold: first run with an empty cache (compiles, then writes the cache);
* warmed: first run with the cache filled by ``svomflow warm`` (a separate process);
* warm: the second run in that same process (peer: nothing left to load or compile).

Target: warmed first run within 20 % of the warm one. CPU seconds are printed next to wall
seconds (the machine is shared: CPU time is what compiling costs).

Run ``python -m benchmarks.bench_cold_start``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._report import load, result

SCENARIO = ("bright_long_grb", ["time.start_s=-40", "time.stop_s=110"])

_CHILD = """
import json, sys, time
wall, cpu = time.perf_counter(), time.process_time()
from svomflow.flows.vhf import run_vhf_plain
out, files = sys.argv[1], sys.argv[2:]
runs = []
for k in range(2):
    w, c = time.perf_counter(), time.process_time()
    run_vhf_plain(files, f"cold{k}", out_dir=f"{out}/{k}", database_url=f"sqlite:///{out}/p{k}.db")
    runs.append((time.perf_counter() - w, time.process_time() - c))
print(json.dumps({"runs": runs}))
"""


def _child(env: dict[str, str], out: Path, files: list[str]) -> list[tuple[float, float]]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(out), *files],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return [tuple(r) for r in json.loads(proc.stdout.strip().splitlines()[-1])["runs"]]


def main() -> None:
    """Simulate once, then time the first and second runs of fresh processes."""
    from svomflow.simulation.scenario import load_scenario, run_scenario

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = dict(
            os.environ, SVOMFLOW_HOME=str(root / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false"
        )
        os.environ["SVOMFLOW_HOME"] = env["SVOMFLOW_HOME"]  # the simulation's CALDB
        truth = run_scenario(load_scenario(*SCENARIO), root / "sim", 1)
        files = [str(root / "sim" / v["files"]["events"]) for v in truth["instruments"].values()]
        cold_env = dict(env, NUMBA_CACHE_DIR=str(root / "cache_cold"))
        cold = _child(cold_env, root / "cold", files)
        warm_env = dict(env, NUMBA_CACHE_DIR=str(root / "cache_warm"))
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from svomflow.cli.warm_cmd import warm_kernels; warm_kernels()",
            ],
            env=warm_env,
            check=True,
            capture_output=True,
        )
        warmed = _child(warm_env, root / "warmed", files)
    (cw, cc), (ww, wc), (sw, sc) = cold[0], warmed[0], warmed[1]
    print(f"{load()}; {sum(int(v['n_events']) for v in _counts(truth))} events")
    print(f"first run, empty cache   : {cw:6.2f} s wall {cc:6.2f} s CPU")
    print(f"first run, warmed cache  : {ww:6.2f} s wall {wc:6.2f} s CPU")
    print(f"second run (warm, peer)  : {sw:6.2f} s wall {sc:6.2f} s CPU")
    print(
        f"warmed/warm: {ww / sw:.2f} wall, {wc / sc:.2f} CPU (target <= 1.2); cold/warm {cw / sw:.2f}"
    )
    result("cold start: first VHF run, warmed cache, within 20 % of a warm run",
           f"{ww:.1f} s wall, {wc:.1f} s CPU", f"{wc / sc:.2f}x CPU of the warm run ({ww / sw:.2f}x wall)",
           wc / sc <= 1.2)  # fmt: skip
    result("cold start: first VHF run, empty cache (information)",
           f"{cw:.1f} s wall, {cc:.1f} s CPU", f"{cc / sc:.2f}x CPU of the warm run")  # fmt: skip


def _counts(truth: dict) -> list[dict]:
    out = []
    for v in truth["instruments"].values():
        if "n_events" in v:
            out.append(v)
        out.extend(d for d in v.get("detectors", {}).values() if "n_events" in d)
    return out


if __name__ == "__main__":
    main()
