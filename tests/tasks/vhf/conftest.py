"""Simulated bursts shared by the VHF step tests (fixed seeds, simulated once per session).

The simulator registers its true calibration in a CALDB; here that CALDB is the
simulation's own folder (a session fixture runs outside any test's SVOMFLOW_HOME), and the
tests give the pipeline the simulator's files as its calibration set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.simulation.scenario import load_scenario, run_scenario


@dataclass
class Simulated:
    """A simulated burst: its folder, its truth and the calibration it was made with."""

    out: Path
    truth: dict

    @property
    def files(self) -> list[str]:
        """The L1 event files, one per instrument."""
        return [str(self.out / v["files"]["events"]) for v in self.truth["instruments"].values()]

    @property
    def calibration(self) -> CalibrationSet:
        """The simulator's calibration files as a calibration set (``eclairs:EBOUNDS``...)."""
        return CalibrationSet.from_files(
            {
                f"{name}:{code}": self.out / f
                for name, v in self.truth["instruments"].items()
                for code, f in v["files"].get("calibration", {}).items()
            }
        )


def simulate(out: Path, scenario: str, seed: int, overrides: tuple[str, ...] = ()) -> Simulated:
    """Run a scenario into ``out``, registering its calibration in ``out/caldb`` only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SVOMFLOW_CALDB", str(out / "caldb"))
        truth = run_scenario(load_scenario(scenario, list(overrides)), out, seed=seed)
    return Simulated(out, truth)


@pytest.fixture(scope="session")
def short_grb(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    """A 0.5 s GRB seen by ECLAIRs and the GRM (40 s of data)."""
    return simulate(tmp_path_factory.mktemp("vhf_short_grb"), "short_grb", 4)


@pytest.fixture(scope="session")
def grm_only(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    """A long GRB 50 deg off-axis, GRM only (no imaging instrument)."""
    return simulate(tmp_path_factory.mktemp("vhf_grm_only"), "grm_only_grb", 2)


@pytest.fixture(scope="session")
def sim_factory(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Simulate a scenario with overrides into a new folder (for one test)."""

    def make(scenario: str, seed: int, *overrides: str) -> Simulated:
        return simulate(tmp_path_factory.mktemp(scenario), scenario, seed, overrides)

    return make
