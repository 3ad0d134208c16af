"""A simulated ECLAIRs + GRM burst written as L1 files, for the X-band tests.

The simulator lives in :mod:`svomflow.simulation.xband_mc` (shared with the Monte Carlo
benchmark ``benchmarks/mc_xband.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from svomflow.simulation.xband_mc import simulate_burst


@pytest.fixture
def burst_factory() -> Callable[..., dict[str, Any]]:
    """Return :func:`simulate_burst` (a callable, so tests choose seeds and options)."""
    return simulate_burst


@pytest.fixture(scope="module")
def bright_burst(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One bright simulated burst shared by a module's tests."""
    return simulate_burst(tmp_path_factory.mktemp("xband_burst"), seed=11)
