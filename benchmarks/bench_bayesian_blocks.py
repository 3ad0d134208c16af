"""Benchmark svomflow's Bayesian blocks against astropy in the same run (ratios printed).

Cases (seeded):

* 2e4 events, ``events`` fitness: a burst (background + pulses) and signal-free data (the
  worst case: nothing is pruned, the full O(N^2) scan runs). Target >= 5x.
* 2e4 bins, ``measures`` fitness: a binned burst and signal-free bins. Target >= 10x.
* the tick fast path on 1e6 events (10 ms ticks), target < 2 s, and the agreement of its
  change points with the exact ones on the 2e4-event burst.

Run ``python -m benchmarks.bench_bayesian_blocks`` (or the file directly).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from astropy.stats import bayesian_blocks as astropy_bb
from svomflow.tasks.timing import bayesian_blocks, bayesian_blocks_fast


def _best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _burst(rng: np.random.Generator, n: int, span: float = 300.0) -> np.ndarray:
    nb = int(0.6 * n)
    pulses = [(20.0, 3.0, 0.25), (35.0, 1.0, 0.1), (60.0, 8.0, 0.05)]
    parts = [rng.uniform(-25.0, span - 25.0, nb)]
    rest = n - nb
    for i, (mu, sig, frac) in enumerate(pulses):
        k = int(frac / 0.4 * rest) if i < len(pulses) - 1 else rest - sum(p.size for p in parts[1:])
        parts.append(rng.normal(mu, sig, k))
    return np.sort(np.concatenate(parts))


def main() -> None:
    """Print timings and ratios against astropy."""
    rng = np.random.default_rng(2024)
    print(f"numba threads: {numba.get_num_threads()}")
    # warm up the compiled kernels (cached on disk after the first run)
    bayesian_blocks(np.sort(rng.uniform(0, 1, 300)))
    bayesian_blocks(np.arange(300.0), rng.normal(size=300), fitness="measures")
    bayesian_blocks_fast(np.sort(rng.uniform(0, 1, 3000)))

    rows = []
    n = 20000
    cases = {
        "events burst": (_burst(rng, n), None, "events"),
        "events signal-free": (np.sort(rng.uniform(0, 300, n)), None, "events"),
    }
    tb = np.arange(n) * 0.064
    lc = 100 + 400 * np.exp(-0.5 * ((tb - 400) / 20) ** 2)
    cases["measures burst"] = (tb, rng.normal(lc, np.sqrt(lc)), "measures")
    cases["measures signal-free"] = (tb, rng.normal(100.0, 10.0, n), "measures")
    for name, (t, x, fit) in cases.items():
        sigma = None if x is None else (np.sqrt(np.maximum(x, 1.0)))
        args = (t, x, sigma)
        t_ours, e_ours = _best_of(lambda a=args, f=fit: bayesian_blocks(*a, fitness=f), 3)
        t_ref, e_ref = _best_of(lambda a=args, f=fit: astropy_bb(*a, fitness=f), 1)
        same = e_ours.shape == e_ref.shape and bool(np.all(e_ours == e_ref))
        rows.append((name, n, t_ours, t_ref, t_ref / t_ours, e_ours.size - 1, same))

    print(
        f"{'case':24s} {'N':>8s} {'svomflow s':>11s} {'astropy s':>10s} {'ratio':>7s} "
        f"{'blocks':>6s} same"
    )
    for name, nn, a, b, r, nb, same in rows:
        print(f"{name:24s} {nn:8d} {a:11.3f} {b:10.3f} {r:7.1f} {nb:6d} {same}")

    # fast path: 1e6 events
    big = _burst(rng, 1_000_000)
    t_fast, (e_fast, res) = _best_of(lambda: bayesian_blocks_fast(big, resolution=0.01), 2)
    print(
        f"fast path 1e6 events burst: {t_fast:.3f} s, tick {res * 1e3:.1f} ms, "
        f"{e_fast.size - 1} blocks (target < 2 s)"
    )
    flat = np.sort(rng.uniform(-25, 275, 1_000_000))
    t_flat, (e_flat, res) = _best_of(lambda: bayesian_blocks_fast(flat, resolution=0.01), 1)
    print(
        f"fast path 1e6 events signal-free: {t_flat:.3f} s, tick {res * 1e3:.1f} ms, "
        f"{e_flat.size - 1} blocks"
    )

    # agreement of the tick path with the exact partition on the 2e4-event burst
    t = cases["events burst"][0]
    for res in (0.001, 0.01):
        exact = bayesian_blocks(t, ncp_prior=8.0)
        fast, used = bayesian_blocks_fast(t, resolution=res, ncp_prior=8.0)
        inner = exact[1:-1]
        dist = np.array([np.min(np.abs(fast - e)) for e in inner]) if inner.size else np.zeros(0)
        print(
            f"tick {used * 1e3:.0f} ms vs exact (2e4-event burst, ncp_prior=8): exact "
            f"{exact.size - 1} blocks, tick {fast.size - 1}; exact change points with a tick "
            f"one within 1 tick: {np.mean(dist <= used):.2f}, within 3 ticks: "
            f"{np.mean(dist <= 3 * used):.2f}, median offset {np.median(dist) * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
