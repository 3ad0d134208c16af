"""Run every benchmark in this folder one after the other (``make bench``).

Each ``bench_*.py`` module prints its own figures as ratios against a peer measured in the
same run. Pass names to run a subset: ``python -m benchmarks bayesian_blocks spectral_fit``.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the selected benchmark modules in fresh interpreters; return non-zero on failure."""
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        wanted = {a.removeprefix("bench_") for a in argv}
        names = [n for n in names if n.removeprefix("bench_") in wanted]
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        # a fresh process per benchmark: no warm caches or threads shared between them
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{name}"], cwd=here.parent)
        print(f"=== {name}: exit {rc}, {time.perf_counter() - t0:.1f} s ===", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    importlib.invalidate_caches()
    sys.exit(main(sys.argv[1:]))
