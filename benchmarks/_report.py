"""Report benchmark results as table rows for ``docs/bench.md`` (collected by ``make bench``).

A benchmark prints its figures for people and calls :func:`result` for each target; the
line it prints (prefix :data:`PREFIX`) is picked up by ``python -m benchmarks``, which
writes the table with the load average at the time each figure was measured.
"""

from __future__ import annotations

import json
import os

__all__ = ["PREFIX", "load", "result"]

PREFIX = "@bench "


def load() -> str:
    """Return the one-minute load average and the core count, e.g. ``load 1.52 / 2 cores``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return f"load {os.getloadavg()[0]:.2f} / {cores} cores"


def result(target: str, figure: str, ratio: str, met: bool | None = None) -> None:
    """Print one table row: what is measured, the figure, the ratio to its peer, target met.

    Parameters
    ----------
    target : str
        The target in words (``"Bayesian blocks 1e4 events burst vs astropy, >= 10x"``).
    figure : str
        The measured figure with its unit.
    ratio : str
        The ratio against the peer measured in the same run, with the peer named.
    met : bool, optional
        Whether the target is met (None when the row is information only).
    """
    row = {"target": target, "figure": figure, "ratio": ratio, "met": met, "load": load()}
    print(PREFIX + json.dumps(row), flush=True)
