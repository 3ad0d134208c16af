"""Simulated bursts shared by the VHF step tests (fixed seeds, simulated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from svomflow.simulation.scenario import load_scenario, run_scenario


@pytest.fixture(scope="session")
def short_grb_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict]:
    """A 0.5 s GRB seen by ECLAIRs and the GRM (40 s of data)."""
    out = tmp_path_factory.mktemp("vhf_short_grb")
    truth = run_scenario(load_scenario("short_grb"), out, seed=4)
    return [str(out / "eclairs_l1_events.fits"), str(out / "grm_l1_events.fits")], truth


@pytest.fixture(scope="session")
def grm_only_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict]:
    """A long GRB 50 deg off-axis, GRM only (no imaging instrument)."""
    out = tmp_path_factory.mktemp("vhf_grm_only")
    truth = run_scenario(load_scenario("grm_only_grb"), out, seed=2)
    return [str(Path(out) / "grm_l1_events.fits")], truth
