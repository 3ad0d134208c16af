"""Benchmark: one flow command in a fresh process, long-lived Prefect server vs a temporary one.

What issue 14 changed for every flow command (``svomflow vhf``, ``xband``, ``mxt``, ``gp1
run``, ``calib nightly``): the command used to run its flow with no ``PREFECT_API_URL``,
so Prefect started a temporary server inside the command ("Starting temporary server") and
stopped it at the end; now every command runs its flow against one long-lived server (the
one ``PREFECT_API_URL`` names, else the home's). The same simulated bright burst (about 1e6
events, ECLAIRs + GRM; simulated once) goes through the VHF quick analysis N times each way,
each time in a fresh process, the ways alternating so all see the same load:

* no Prefect (the peer): ``svomflow vhf --no-prefect``;
* long-lived server: ``svomflow vhf``, as users type it (the home's server, started once
  before the timings, as ``make demo`` leaves it);
* temporary server: the same flow function called in a fresh process with no
  ``PREFECT_API_URL`` and Prefect's ephemeral mode on, its ``PREFECT_HOME`` (and database)
  kept from one command to the next as a user's would be: what each command did before.

Prints the median and 95th percentile of each way's wall time and the seconds a command
saves with the long-lived server. The kernel cache is filled first (as after ``make warm``).

Run: ``python -m benchmarks.bench_command_server [--runs N]`` (default 5).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._burst import median_p95, simulate_burst
from benchmarks._report import load, result

# a fresh process that runs the VHF flow with whatever server Prefect finds (none: temporary)
_FLOW_SCRIPT = """
import sys
from svomflow.flows.vhf import vhf_quick_analysis
out, obs_id, *files = sys.argv[1:]
vhf_quick_analysis(files, obs_id, out_dir=out)
"""


def _timed(cmd: list[str], env: dict[str, str], what: str) -> float:
    """Return the wall time of one command (a fresh process); raise with its tail if it failed."""
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return wall


def main(argv: list[str] | None = None) -> None:
    """Simulate once, time N commands each way, print medians, p95 and the seconds saved."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="commands per way (default 5)")
    n = max(1, parser.parse_args(argv).runs)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "home"
        cache = os.environ.get("NUMBA_CACHE_DIR")
        base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        base |= {"SVOMFLOW_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        if cache:
            base["NUMBA_CACHE_DIR"] = cache
        os.environ.update(base)  # the simulation registers its calibration in this home
        from svomflow.operations.prefect_server import ensure_server

        files = simulate_burst(root / "sim").files
        exe = str(Path(sys.executable).with_name("svomflow"))
        events = [a for f in files for a in ("--events", f)]
        temporary = base | {
            "PREFECT_HOME": str(root / "prefect-temporary"),
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
        }
        print(f"{len(files)} event files; {n} commands each way; {load()} at start")
        # the kernel and array caches, and the home's server, as `make demo` leaves them
        _timed([exe, "vhf", "--no-prefect", "--obs-id", "sbwarm", "--out", tmp, *events],
               base, "warm-up")  # fmt: skip
        server = ensure_server()
        print(f"long-lived server: {server.api_url}")
        times: dict[str, list[float]] = {"no Prefect": [], "long-lived": [], "temporary": []}
        try:
            # the temporary way's database created once, outside the timings
            flow = [sys.executable, "-c", _FLOW_SCRIPT, str(root / "out")]
            _timed([*flow, "sbtmpwarm", *files], temporary, "temporary warm-up")
            for k in range(n):
                out = ["--out", str(root / "out")]
                times["no Prefect"].append(_timed(
                    [exe, "vhf", "--no-prefect", "--obs-id", f"sbplain{k}", *out, *events],
                    base, "svomflow vhf --no-prefect"))  # fmt: skip
                times["long-lived"].append(_timed(
                    [exe, "vhf", "--obs-id", f"sblong{k}", *out, *events], base,
                    "svomflow vhf"))  # fmt: skip
                times["temporary"].append(
                    _timed([*flow, f"sbtmp{k}", *files], temporary, "temporary server")
                )
                print("  command " + f"{k + 1}/{n}: " + "   ".join(
                    f"{w} {v[-1]:6.2f} s" for w, v in times.items()), flush=True)  # fmt: skip
        finally:  # the home's server and web site
            subprocess.run([exe, "server", "stop"], env=base, capture_output=True, check=False)
    stats = {w: median_p95(v) for w, v in times.items()}
    for w, (m, p) in stats.items():
        print(f"{w:11s}: median {m:6.2f} s, p95 {p:6.2f} s")
    (lm, lp), (tm, tp), (pm, _) = stats["long-lived"], stats["temporary"], stats["no Prefect"]
    print(f"seconds saved per command: {tm - lm:.2f} s (median); Prefect's share "
          f"{tm - pm:.2f} s before, {lm - pm:.2f} s after; {load()} at end")  # fmt: skip
    result(
        f"`svomflow vhf` in a fresh process, 1e6 events, long-lived server vs the temporary "
        f"server each command started before (median, p95 over {n})",
        f"{lm:.2f} s, p95 {lp:.2f} s ({tm - lm:.2f} s saved per command)",
        f"temporary server {tm:.2f} s, p95 {tp:.2f} s: {tm / lm:.2f}x; no Prefect {pm:.2f} s",
    )


if __name__ == "__main__":
    main()
