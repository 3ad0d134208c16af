"""The alert loop's chain driver (operations) on a stand-in for the flows: order, choices, file.

The real chain (flows, NATS, GP1) is ``tests/simulation/test_alert_loop.py``; here the links
are a recording object, so what is checked is the driver itself: the MXT position is awaited
after ``better_position_after`` images as the scenario's options say, each GP1 choice is
named after the injected source it lies on, and the chain is kept beside the data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from svomflow.operations.alert_loop import chain_summary, run_scenario_chain, wants_chain

SOURCES = [
    {"name": "afterglow", "ra_deg": 150.0, "dec_deg": 20.0},
    {"name": "constant_variable", "ra_deg": 150.01, "dec_deg": 20.005},
]


class _Position:
    def __init__(self, source: str):
        self.source = source

    def label(self) -> str:
        return f"{self.source} v1"

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return {"source": self.source}


class RecordingStages:
    """Links that record their calls; GP1 picks the variable on QPO, the afterglow on MXT."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.position = "QPO_ECL"

    def start(self, burst_id: str) -> None:
        self.calls.append(f"start {burst_id}")

    def vhf(self, event_files: list[str], burst_id: str) -> dict[str, Any]:
        self.calls.append(f"vhf {Path(event_files[0]).name}")
        return {"products": {"QPO": "x"}}

    def mxt(self, files: dict[str, Any], mxt_dir: Path, burst_id: str) -> dict[str, Any]:
        self.calls.append("mxt")
        self.position = "SRCLIST_MXT"
        return {"sources": [1]}

    def wait_position(self, burst_id: str, source_prefix: str, timeout_s: float) -> Any:
        self.calls.append(f"wait {source_prefix}")
        return _Position(source_prefix)

    def gp1(self, image: str, truth: dict[str, Any], index: int) -> dict[str, Any]:
        self.calls.append(f"gp1 {index}")
        src = SOURCES[0] if self.position == "SRCLIST_MXT" else SOURCES[1]
        pos = {"source": self.position, "confidence": 0.9, "error_radius_arcmin": 1.0}
        cand = {
            "ra_deg": src["ra_deg"] + 1e-4,  # 0.34": within the 2" naming tolerance
            "dec_deg": src["dec_deg"],
            "probability": 0.9,
            "in_region": True,
            "separation_arcmin": 0.1,
            "decay_index": 1.2,
            "snr": 20.0,
        }
        transient = {"ALPHA_J2000": cand["ra_deg"], "DELTA_J2000": cand["dec_deg"]}
        seq = {"alert_position": pos, "transient": transient, "candidates": [cand]}
        return {"sequences": {"b_r": seq}}

    def deliver(self, burst_id: str) -> dict[str, Any] | None:
        self.calls.append("deliver")
        return None

    def stop(self) -> None:
        self.calls.append("stop")


def _truth(better_after: int, run_chain: bool = True) -> dict[str, Any]:
    loop = {
        "burst_id": "e2e_alert_loop_0",
        "science_frames": [f"/raw/img{k}.fits" for k in range(3)],
        "sources": SOURCES,
        "options": {"better_position_after": better_after, "run_chain": run_chain},
    }
    return {
        "instruments": {
            "eclairs": {"files": {"events": "eclairs_l1_events.fits"}},
            "mxt": {"files": {"l1": [], "attitude": "a", "saa": "s"}},
            "alert_loop": loop,
        }
    }


def test_the_chain_waits_for_mxt_after_the_configured_images(tmp_path: Path) -> None:
    stages = RecordingStages()
    lines: list[str] = []
    chain = run_scenario_chain(tmp_path, _truth(1), stages, report=lines.append)
    assert stages.calls == [
        "start e2e_alert_loop_0",
        "vhf eclairs_l1_events.fits",
        "wait QPO_ECL",
        "gp1 0",
        "mxt",
        "wait SRCLIST_MXT",
        "gp1 1",
        "gp1 2",
        "deliver",
        "stop",
    ]
    names = [c["chosen"] for c in chain["choices"]]
    assert names == ["constant_variable", "afterglow", "afterglow"]
    assert chain["right_transient"] and chain["first_position"] == {"source": "QPO_ECL"}
    kept = json.loads((tmp_path / "alert_loop_chain.json").read_text())
    assert kept["choices"][0]["position_source"] == "QPO_ECL"
    assert lines[-len(chain_summary(chain)) :] == chain_summary(chain)
    assert "science database: delivery flow not installed" in "\n".join(lines)


def test_with_mxt_after_two_images_the_second_image_keeps_the_wide_position(
    tmp_path: Path,
) -> None:
    stages = RecordingStages()
    chain = run_scenario_chain(tmp_path, _truth(2), stages)
    assert stages.calls.index("mxt") == stages.calls.index("gp1 1") + 1
    assert [c["position_source"] for c in chain["choices"]] == [
        "QPO_ECL",
        "QPO_ECL",
        "SRCLIST_MXT",
    ]


def test_only_scenarios_that_ask_run_the_chain() -> None:
    assert wants_chain(_truth(2, run_chain=True))
    assert not wants_chain(_truth(2, run_chain=False))
    assert not wants_chain({"instruments": {"eclairs": {}}})
