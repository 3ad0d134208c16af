"""The end-to-end alert loop's chain: VHF/MXT flows -> announcements -> GP1 -> science DB.

:func:`run_alert_loop` drives the chain with timings on the data of a simulated
``e2e_alert_loop`` scenario (written by the ``alert_loop`` simulator,
:mod:`svomflow.simulation.alert_loop`): the VHF flow on the ECLAIRs data (its QPO announced
on NATS), GP1 on the first images guided by the best announced position, the MXT flow (its
source list announced), GP1 on the remaining images with the better position, then the
delivery to the science database; it says at each image which candidate GP1 took and
whether it is the injected afterglow.

The simulator only simulates; the ``svomflow simulate`` command composes the two (the
scenario's ``instrument_options.alert_loop.run_chain``): it reads the scenario's truth, so
this module imports nothing from the simulator. The links are an object
(:class:`AlertLoopStages`), by default :class:`~svomflow.operations.position_feed.FlowStages`
(the real flows, the long-lived Prefect server, NATS).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "AlertLoopStages",
    "ChainStep",
    "GP1Choice",
    "chain_summary",
    "gp1_choice",
    "run_alert_loop",
    "run_scenario_chain",
    "wants_chain",
]

#: GP1 images processed before the MXT position is awaited, when the scenario does not say
#: (the simulator's ``AlertLoopOptions.better_position_after``).
_BETTER_POSITION_AFTER = 2


def chain_summary(chain: dict[str, Any]) -> list[str]:
    """Return the closing lines of a chain run: links with timings, choices, latency."""
    lines = [f"alert loop of {chain['burst_id']}:"]
    for s in chain["steps"]:
        lines.append(f"  {s['start_s']:7.1f} -> {s['end_s']:7.1f} s  {s['name']}: {s['detail']}")
    verdict = "the afterglow" if chain["right_transient"] else "NOT the afterglow"
    lines.append(f"GP1's final choice: {verdict}")
    if chain["delivered"] is None:
        lines.append("science database: delivery flow not installed (chain stopped at GP1)")
    lines.append(f"end-to-end latency (alert data -> last product): {chain['end_to_end_s']:.1f} s")
    return lines


@dataclass
class GP1Choice:
    """What GP1 chose after one image: the position used and the transient taken."""

    image: str
    position_source: str | None
    position_r90_arcmin: float | None
    chosen: str | None
    probability: float | None
    candidates: list[dict[str, Any]]


@dataclass
class ChainStep:
    """One link of the chain: what ran, when it started and ended (s after the start)."""

    name: str
    start_s: float
    end_s: float
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class AlertLoopStages(Protocol):
    """What runs the chain's links (flows, the bus, the science database)."""

    def start(self, burst_id: str) -> None:
        """Prepare: Prefect server, the position feed subscribed to the bus."""

    def vhf(self, event_files: list[str], burst_id: str) -> dict[str, Any]:
        """Run the VHF quick analysis; its products are announced."""

    def mxt(self, files: dict[str, Any], mxt_dir: Path, burst_id: str) -> dict[str, Any]:
        """Run the MXT analysis; its source list is announced."""

    def wait_position(self, burst_id: str, source_prefix: str, timeout_s: float) -> Any:
        """Wait until the feed holds a position of the burst from ``source_prefix``; return it."""

    def gp1(self, image: str, truth: dict[str, Any], index: int) -> dict[str, Any]:
        """Run GP1 on one image with the burst's best position so far; return its result."""

    def deliver(self, burst_id: str) -> dict[str, Any] | None:
        """Deliver the burst's products to the science database (None: not available)."""

    def stop(self) -> None:
        """Stop the feed."""


def _sep_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    dra = (ra1 - ra2 + 180.0) % 360.0 - 180.0
    return math.hypot(dra * math.cos(math.radians(dec2)), dec1 - dec2) * 3600.0


def _name_of(ra: float, dec: float, sources: list[dict[str, Any]], tol_arcsec: float) -> str:
    """Return the injected source at (ra, dec) (within ``tol_arcsec``), else 'unknown'."""
    best = min(sources, key=lambda s: _sep_arcsec(ra, dec, s["ra_deg"], s["dec_deg"]))
    if _sep_arcsec(ra, dec, best["ra_deg"], best["dec_deg"]) <= tol_arcsec:
        return str(best["name"])
    return "unknown"


def gp1_choice(result: dict[str, Any], image: str, truth: dict[str, Any]) -> GP1Choice:
    """Return what a GP1 run chose for the burst's sequence, named after the injected sources."""
    seq = next(iter(result.get("sequences", {}).values()), None)
    if seq is None:
        return GP1Choice(Path(image).name, None, None, None, None, [])
    pos = seq.get("alert_position") or {}
    t = seq.get("transient")
    srcs = truth["alert_loop"]["sources"]
    cands = [
        {
            "name": _name_of(c["ra_deg"], c["dec_deg"], srcs, 2.0),
            "probability": c["probability"],
            "in_region": c["in_region"],
            "separation_arcmin": c["separation_arcmin"],
            "decay_index": c["decay_index"],
            "snr": c["snr"],
        }
        for c in seq.get("candidates", [])
    ]
    chosen = None if not t else _name_of(t["ALPHA_J2000"], t["DELTA_J2000"], srcs, 2.0)
    prob = next((c["probability"] for c in cands if c["name"] == chosen), None)
    r90 = None
    if pos:
        k = math.sqrt(-2 * math.log1p(-pos["confidence"]))
        sig = math.hypot(pos["error_radius_arcmin"] / k, pos.get("systematic_arcmin", 0.0))
        r90 = sig * math.sqrt(-2 * math.log(0.1))
    return GP1Choice(Path(image).name, pos.get("source"), r90, chosen, prob, cands)


def _delivery_detail(result: dict[str, Any] | None) -> str:
    """Describe a delivery: counts per outcome and the reasons of refused/flagged products."""
    if result is None:
        return "not available"
    parts = []
    for key, value in result.items():
        n = value if isinstance(value, int) else len(value)
        parts.append(f"{n} {key}")
    for key in ("refused", "flagged"):
        for pid, why in list((result.get(key) or {}).items())[:3]:
            parts.append(f"{key} {pid}: {why}")
    return "; ".join(parts)


def run_alert_loop(
    sim_dir: str | Path,
    truth: dict[str, Any],
    stages: AlertLoopStages | None = None,
    *,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the chain on a simulated ``e2e_alert_loop`` scenario; return the steps and choices.

    Parameters
    ----------
    sim_dir
        The scenario's output directory (``svomflow simulate e2e_alert_loop -o DIR``).
    truth
        Its truth (``truth.json``); ``truth["instruments"]["alert_loop"]`` is the COLIBRI part.
    stages
        What runs the links (default: :class:`~svomflow.operations.position_feed.FlowStages`).
    report
        Told one line per link as the chain advances.
    """
    say = report or (lambda _line: None)
    sim = Path(sim_dir)
    loop = truth["instruments"]["alert_loop"]
    truth = {**truth, "alert_loop": loop}
    burst = loop["burst_id"]
    better_after = int(loop.get("options", {}).get("better_position_after", _BETTER_POSITION_AFTER))
    if stages is None:
        from svomflow.operations.position_feed import FlowStages

        stages = FlowStages()
    st = stages
    t0 = time.perf_counter()
    steps: list[ChainStep] = []
    choices: list[GP1Choice] = []

    def timed(name: str, fn: Callable[[], Any], detail: Callable[[Any], str]) -> Any:
        a = time.perf_counter() - t0
        value = fn()
        b = time.perf_counter() - t0
        steps.append(ChainStep(name, a, b, detail(value)))
        say(f"{b:8.1f} s  {name}: {steps[-1].detail}")
        return value

    st.start(burst)
    try:
        ecl = truth["instruments"]["eclairs"]["files"]["events"]
        timed("VHF flow (ECLAIRs)", lambda: st.vhf([str(sim / ecl)], burst),
              lambda r: f"{len(r.get('products', {}))} products")  # fmt: skip
        first = timed(
            "announcement -> feed (QPO_ECL)",
            lambda: st.wait_position(burst, "QPO_ECL", 60.0),
            lambda p: "no position" if p is None else p.label(),
        )
        frames = loop["science_frames"]
        mxt_done = False
        for k, image in enumerate(frames):
            if k == better_after and not mxt_done:
                mxt_files: dict[str, Any] = truth["instruments"]["mxt"]["files"]

                def run_mxt(files: dict[str, Any] = mxt_files) -> dict[str, Any]:
                    return st.mxt(files, sim / "mxt", burst)

                timed("MXT flow", run_mxt, lambda r: f"{len(r.get('sources', []))} sources")
                timed(
                    "announcement -> feed (SRCLIST_MXT)",
                    lambda: st.wait_position(burst, "SRCLIST_MXT", 60.0),
                    lambda p: "no position" if p is None else p.label(),
                )
                mxt_done = True

            def described(r: dict[str, Any], image: str = image) -> str:
                c = gp1_choice(r, image, truth)
                choices.append(c)
                return (
                    f"position {c.position_source or 'none'}"
                    + (f" (r90 {c.position_r90_arcmin:.2f}')" if c.position_r90_arcmin else "")
                    + f" -> {c.chosen or 'no transient'}"
                    + (f" P={c.probability:.3f}" if c.probability is not None else "")
                )

            def run_gp1(image: str = image, k: int = k) -> dict[str, Any]:
                return st.gp1(image, truth, k)

            timed(f"GP1 image {k + 1}/{len(frames)}", run_gp1, described)
        delivered = timed(
            "science database delivery",
            lambda: st.deliver(burst),
            _delivery_detail,
        )
    finally:
        st.stop()
    total = time.perf_counter() - t0
    final = choices[-1] if choices else None
    return {
        "burst_id": burst,
        "steps": [s.__dict__ for s in steps],
        "choices": [c.__dict__ for c in choices],
        "first_position": None if first is None else first.model_dump(mode="json"),
        "right_transient": final is not None and final.chosen == "afterglow",
        "delivered": delivered,
        "end_to_end_s": total,
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def wants_chain(truth: dict[str, Any]) -> bool:
    """Whether a scenario's truth asks for the chain (``alert_loop.run_chain``)."""
    loop = truth.get("instruments", {}).get("alert_loop") or {}
    return bool(loop.get("options", {}).get("run_chain"))


def run_scenario_chain(
    sim_dir: str | Path,
    truth: dict[str, Any],
    stages: AlertLoopStages | None = None,
    *,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the chain on a simulated scenario's output, print-ready; keep it in ``alert_loop_chain.json``.

    ``report`` is told each link as it ends, then the closing lines of :func:`chain_summary`.
    """
    say = report or (lambda _line: None)
    chain = run_alert_loop(sim_dir, truth, stages, report=say)
    for line in chain_summary(chain):
        say(line)
    out = Path(sim_dir) / "alert_loop_chain.json"
    out.write_text(json.dumps(chain, indent=1, default=str))
    return chain
