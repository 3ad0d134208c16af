"""Shared small simulated MXT observation for the xray tests (written once per session)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from svomflow.simulation.mxt import config_from_mapping, simulate, write_simulation

FIELD = {
    "duration_s": 3000.0,
    "n_passes": 3,
    "pass_overlap_s": 40.0,
    "corrupt_rows": 12,
    "attitude_gaps": [[1.0e8 + 2400.0, 1.0e8 + 2500.0]],
    "sources": [
        {"offset_arcmin": [0.0, 0.0], "flux_ph_cm2_s": 0.05, "name": "bright"},
        {"offset_arcmin": [9.0, 4.0], "flux_ph_cm2_s": 0.01, "name": "mid"},
    ],
}


@pytest.fixture(scope="session")
def mxt_obs(tmp_path_factory):
    """(directory, truth, in-memory result) of a small simulated MXT observation."""
    out = tmp_path_factory.mktemp("mxt_obs")
    result = simulate(config_from_mapping(FIELD), np.random.default_rng(11))
    # session-wide, so outside any test's SVOMFLOW_HOME: the tests give the files directly
    truth = write_simulation(result, out, caldb=False)
    assert (
        json.loads((Path(out) / "truth.json").read_text())["n_pixel_rows"] == truth["n_pixel_rows"]
    )
    return Path(out), truth, result
