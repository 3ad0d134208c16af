"""The benchmarks' bright burst (about 1e6 events, ECLAIRs + GRM) and their latency figures.

The VHF benchmarks (flow, cold start, alert latency, command server) time the same
simulated burst; :func:`simulate_burst` makes it once per benchmark in a folder of its own
(the simulation registers its calibration in the current ``SVOMFLOW_HOME``'s CALDB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SCENARIO", "Burst", "median_p95", "simulate_burst"]

SCENARIO = ("bright_long_grb", ["time.start_s=-40", "time.stop_s=110"])
"""The scenario and its overrides: a bright long burst, 150 s of data around it."""


@dataclass(frozen=True)
class Burst:
    """The simulated burst: its event files (ECLAIRs, GRM), event count and truth."""

    files: list[str]
    n_events: int
    truth: dict


def simulate_burst(sim_dir: Path, seed: int = 1) -> Burst:
    """Simulate :data:`SCENARIO` into ``sim_dir``; return its event files and event count."""
    from svomflow.simulation.scenario import load_scenario, run_scenario

    truth = run_scenario(load_scenario(*SCENARIO), sim_dir, seed)
    inst = truth["instruments"]
    files = [str(sim_dir / inst[i]["files"]["events"]) for i in ("eclairs", "grm")]
    n_events = inst["eclairs"]["n_events"] + sum(
        d["n_events"] for d in inst["grm"]["detectors"].values()
    )
    return Burst(files, int(n_events), truth)


def median_p95(x: list[float]) -> tuple[float, float]:
    """Return the median and the 95th percentile of ``x``."""
    return float(np.median(x)), float(np.percentile(x, 95))
