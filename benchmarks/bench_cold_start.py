"""Benchmark: the first VHF run of a fresh process, kernel cache empty vs warmed at install.

A fresh process compiles every numba kernel it calls unless the kernel cache holds it, and
derives the GRM band responses of the localisation sky grid unless the home's array cache
holds them (``svomflow warm``, run by ``make venv``/``make warm``, fills both). Figures on
the same simulated burst (about 1e6 events), each process fresh:

* cold: first run with empty caches (compiles and derives, then writes the caches);
* warmed: first run with the caches filled by ``svomflow warm`` (a separate process);
* warm: the second run in that same process (peer: nothing left to load or compile);
* command: the whole CPU of a fresh ``svomflow vhf --no-prefect`` process (interpreter,
  imports, the run and the exit: what a user waits for), twice, against the warm run; and
  once with Python's default garbage-collector settings (:mod:`svomflow.collector`'s
  policy switched off), to show what that policy saves.

A process's runs start after ``import svomflow.flows.vhf_plain``, which loads once what
every run needs: numba's code-generation context, with the one kernel of declared types
(:mod:`svomflow.numba_policy`), and matplotlib's renderer. A served deployment or a
listener imports its flow when it starts, so it pays them before the alert; the import's
CPU is printed next to the runs, and the whole-command row counts everything.

Targets: the warmed first run within 20 % of the warm one, and the whole command process
(import included) too. CPU seconds are printed next to wall seconds (the machine is shared:
CPU time is what compiling costs). A last fresh process breaks its one-time CPU down: the
imports in four parts, astropy's leap-second table, and what the first run still costs
more than the second.

Run ``python -m benchmarks.bench_cold_start``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._burst import simulate_burst
from benchmarks._report import load, result

_CHILD = """
import json, sys, time
from svomflow.flows.vhf_plain import run_vhf_plain
import_cpu = time.process_time()  # the interpreter's start and the imports
out, files = sys.argv[1], sys.argv[2:]
runs = []
for k in range(2):
    w, c = time.perf_counter(), time.process_time()
    run_vhf_plain(files, f"cold{k}", out_dir=f"{out}/{k}", database_url=f"sqlite:///{out}/p{k}.db")
    runs.append((time.perf_counter() - w, time.process_time() - c))
    if k == 0:  # the process's CPU so far: interpreter, imports and the first run
        process_cpu = time.process_time()
print(json.dumps({"runs": runs, "import_cpu": import_cpu, "process_cpu": process_cpu}))
"""

# where a fresh process's one-time CPU goes (warmed cache): the imports of
# svomflow.flows.vhf_plain in four parts, each done alone and in this order, then the first
# UTC time, then what the first run still costs more than the second (kernels loaded on
# their first call, the steps' in-process caches, first FITS writes)
_BREAKDOWN = """
import json, sys, time
T = time.process_time
out, files = sys.argv[1], sys.argv[2:]
parts = {}
c = T()
import numpy
parts["interpreter start and numpy"] = T()
c = T()
import svomflow.tasks.coded_mask._kernels
parts["numba, its code-generation context and the declared kernel"] = T() - c
c = T()
import matplotlib.figure, matplotlib.backends.backend_agg
parts["matplotlib's Figure and Agg canvas"] = T() - c
c = T()
from svomflow.flows.vhf_plain import run_vhf_plain
parts["the rest of import svomflow.flows.vhf_plain (scipy, astropy, sqlmodel, the steps)"] = (
    T() - c
)
c = T()
from astropy.time import Time
Time(60000.0, format="mjd", scale="tt").utc.isot
parts["astropy leap-second table (first UTC time)"] = T() - c
runs = []
for k in range(2):
    c = T()
    run_vhf_plain(files, f"b{k}", out_dir=f"{out}/{k}", database_url=f"sqlite:///{out}/p{k}.db")
    runs.append(T() - c)
parts["first run - second run (kernels loaded on first call, caches, first writes)"] = (
    runs[0] - runs[1]
)
print(json.dumps({"parts": parts, "runs": runs}))
"""

# `svomflow vhf` with Python's default collector: svomflow.collector's policy not adopted
_DEFAULT_COLLECTOR = """
import sys
import svomflow.collector as policy
policy.adopt = lambda: None
from svomflow.cli.main import main
sys.argv[0] = "svomflow"
main()
"""


def _child(
    env: dict[str, str], out: Path, files: list[str], code: str = _CHILD
) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out), *files],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _command(
    env: dict[str, str], out: Path, files: list[str], default_collector: bool = False
) -> tuple[float, float]:
    """Run ``svomflow vhf --no-prefect`` in a fresh process; return its wall and CPU seconds.

    The CPU is the child's whole (user + system, from its resource usage): interpreter
    start, imports, the run and the exit. ``default_collector`` runs the same command with
    Python's default garbage-collector settings.
    """
    args = [
        "vhf",
        "--events",
        *files,
        "--obs-id",
        out.name,
        "--out",
        str(out),
        "--no-prefect",
        "--json",
    ]
    cmd = (
        [sys.executable, "-c", _DEFAULT_COLLECTOR, *args]
        if default_collector
        else [str(Path(sys.executable).with_name("svomflow")), *args]
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - w
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    """Simulate once, then time the first and second runs of fresh processes."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = dict(
            os.environ, SVOMFLOW_HOME=str(root / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false"
        )
        os.environ["SVOMFLOW_HOME"] = env["SVOMFLOW_HOME"]  # the simulation's CALDB
        burst = simulate_burst(root / "sim")
        files = burst.files
        cold_env = dict(env, NUMBA_CACHE_DIR=str(root / "cache_cold"))
        cold_child = _child(cold_env, root / "cold", files)
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
        warmed_child = _child(warm_env, root / "warmed", files)
        commands = [_command(warm_env, root / f"cmd{k}", files) for k in range(2)]
        default_gc = _command(warm_env, root / "cmd_gc", files, default_collector=True)
        parts = _child(warm_env, root / "parts", files, _BREAKDOWN)["parts"]
    cold, warmed = cold_child["runs"], warmed_child["runs"]
    assert isinstance(cold, list) and isinstance(warmed, list) and isinstance(parts, dict)
    imports = {"cold": cold_child["import_cpu"], "warmed": warmed_child["import_cpu"]}
    process_cpu = warmed_child["process_cpu"]
    assert isinstance(process_cpu, float) and all(isinstance(v, float) for v in imports.values())
    (cw, cc), (ww, wc), (sw, sc) = cold[0], warmed[0], warmed[1]
    print(f"{load()}; {burst.n_events} events")
    print(f"import, empty cache      :          {imports['cold']:6.2f} s CPU (compiles 1 kernel)")
    print(f"first run, empty cache   : {cw:6.2f} s wall {cc:6.2f} s CPU")
    print(f"import, warmed cache     :          {imports['warmed']:6.2f} s CPU")
    print(f"first run, warmed cache  : {ww:6.2f} s wall {wc:6.2f} s CPU")
    print(f"second run (warm, peer)  : {sw:6.2f} s wall {sc:6.2f} s CPU")
    print(
        f"warmed/warm: {ww / sw:.2f} wall, {wc / sc:.2f} CPU (target <= 1.2); cold/warm {cw / sw:.2f}"
    )
    print(f"fresh process to the end of its first run (imports included): {process_cpu:6.2f} s CPU")
    for k, (mw, mc) in enumerate(commands):
        print(f"svomflow vhf --no-prefect, fresh process {k + 1}: {mw:6.2f} s wall {mc:6.2f} s CPU")
    dw, dc = default_gc
    print(f"the same, Python's default collector: {dw:6.2f} s wall {dc:6.2f} s CPU")
    cmd_cpu = min(c for _, c in commands)
    print(f"whole command / warm run: {cmd_cpu / sc:.2f} CPU (target <= 1.2)")
    print("where a fresh process's one-time CPU goes (warmed cache, each part alone, CPU s):")
    for name, seconds in parts.items():
        print(f"  {seconds:6.2f}  {name}")
    extra = sum(v for k, v in parts.items())
    result("cold start: one-time CPU of a fresh process (information)",
           f"{extra:.2f} s CPU", "; ".join(f"{k} {v:.2f} s" for k, v in parts.items()))  # fmt: skip
    result("cold start: first VHF run, warmed cache, within 20 % of a warm run",
           f"{ww:.1f} s wall, {wc:.1f} s CPU (after a {imports['warmed']:.1f} s CPU import)",
           f"{wc / sc:.2f}x CPU of the warm run ({ww / sw:.2f}x wall)", wc / sc <= 1.2)  # fmt: skip
    result("cold start: whole fresh `svomflow vhf --no-prefect` process within 20 % of a warm run",
           f"{cmd_cpu:.1f} s CPU (best of 2 fresh processes)",
           f"{cmd_cpu / sc:.2f}x CPU of the warm run", cmd_cpu / sc <= 1.2)  # fmt: skip
    result("cold start: the same command with Python's default collector (information)",
           f"{default_gc[1]:.1f} s CPU",
           f"{default_gc[1] / sc:.2f}x CPU of the warm run; svomflow.collector saves "
           f"{default_gc[1] - cmd_cpu:.1f} s")  # fmt: skip
    result("cold start: first VHF run, empty cache (information)",
           f"{cw:.1f} s wall, {cc:.1f} s CPU (after a {imports['cold']:.1f} s CPU import)",
           f"{cc / sc:.2f}x CPU of the warm run")  # fmt: skip


if __name__ == "__main__":
    main()
