"""Benchmark: simulate a 100 s bright GRB with ECLAIRs + GRM events (about 1e6 events).

Prints the wall time per stage and the events per second, and the ratio of the vectorised
photon sampler against a plain per-photon Python loop (the peer) on a subsample.
Run: ``python -m benchmarks.bench_simulation``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from svomflow.simulation.scenario import load_scenario, run_scenario


def _python_loop_sampler(n: int, rng: np.random.Generator) -> float:
    """Per-photon inverse CDF in pure Python (what we avoid): seconds for n photons."""
    import bisect

    grid = list(np.geomspace(10, 1e4, 2000))
    cdf = list(np.linspace(0, 1, 2000))
    t = time.perf_counter()
    for _ in range(n):
        u = rng.random()
        i = bisect.bisect_left(cdf, u)
        _ = grid[min(i, 1999)]
    return time.perf_counter() - t


def main() -> None:
    sc = load_scenario(
        "bright_long_grb",
        ["time.start_s=-10", "time.stop_s=90", "grbs.0.peak_flux=60", "grbs.0.t90_s=60"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_scenario(load_scenario("grm_only_grb", ["time.stop_s=1"]), Path(tmp) / "warm", 0)
        t = time.perf_counter()
        truth = run_scenario(sc, Path(tmp) / "run", 1)
        wall = time.perf_counter() - t
    n_ecl = truth["instruments"]["eclairs"]["n_events"]
    n_grm = sum(d["n_events"] for d in truth["instruments"]["grm"]["detectors"].values())
    total = n_ecl + n_grm
    print(
        f"100 s bright GRB: ECLAIRs {n_ecl} + GRM {n_grm} = {total} events in {wall:.2f} s "
        f"({total / wall:.3g} events/s, including FITS writing and truth)"
    )
    rng = np.random.default_rng(0)
    n = 200_000
    loop = _python_loop_sampler(n, rng)
    from svomflow.instruments.spectra import Spectrum, sample_energies

    t = time.perf_counter()
    sample_energies(rng, Spectrum("band"), n, e_min=10, e_max=1e4)
    vec = time.perf_counter() - t
    print(
        f"energy sampling of {n} photons: vectorised {vec * 1e3:.1f} ms, Python loop "
        f"{loop * 1e3:.1f} ms, ratio {loop / vec:.1f}x"
    )


if __name__ == "__main__":
    main()
