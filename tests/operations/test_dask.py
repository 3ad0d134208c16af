"""Fan-out on Dask gives the same results as the thread pool (nightly per-group tasks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.flows.adapter import task_runner_for

pytestmark = pytest.mark.integration


def test_task_runner_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner

    monkeypatch.delenv("SVOMFLOW_DASK_ADDRESS", raising=False)
    r = task_runner_for(max_workers=3)
    assert isinstance(r, ThreadPoolTaskRunner) and r._max_workers == 3
    pytest.importorskip("prefect_dask")
    from prefect_dask import DaskTaskRunner

    monkeypatch.setenv("SVOMFLOW_DASK_ADDRESS", "tcp://10.0.0.5:8786")
    r = task_runner_for()
    assert isinstance(r, DaskTaskRunner) and r.address == "tcp://10.0.0.5:8786"
    local = task_runner_for("local")
    assert local.address is None and local.cluster_kwargs["dashboard_address"] is None


def test_nightly_on_dask_local_cluster_matches_threads(
    prefect_harness: None, tmp_path: Path
) -> None:
    pytest.importorskip("prefect_dask")
    from svomflow.flows.nightly_calibration import nightly_master_calibration
    from svomflow.simulation.colibri import simulate_colibri_night

    night = tmp_path / "night"
    simulate_colibri_night(
        night,
        seed=4,
        night="2026-11-23",
        size=(48, 48),
        n_bias=5,
        n_dark=5,
        dark_exposures=(60.0,),
        n_flat_per_filter=5,
        flat_filters=("r", "g"),
        science=False,
    )
    summaries = {}
    for name, runner in (("threads", task_runner_for("")), ("dask", task_runner_for("local"))):
        flow = nightly_master_calibration.with_options(task_runner=runner)
        summaries[name] = flow(
            "2026-11-23",
            str(night / "raw"),
            out_dir=str(tmp_path / name),
            caldb_root=str(tmp_path / f"caldb_{name}"),
        )
    a, b = summaries["threads"], summaries["dask"]
    assert a["status"] == b["status"] == "done"
    ga = {g["group"]: g for g in a["groups"]}
    gb = {g["group"]: g for g in b["groups"]}
    assert set(ga) == set(gb) and len(ga) == 4  # bias, dark, two flats: a real fan-out
    for key in ga:
        for field in ("passed", "reasons", "level", "noise", "fraction"):
            assert ga[key][field] == gb[key][field], (key, field)
        with fits.open(ga[key]["candidate"]) as fa, fits.open(gb[key]["candidate"]) as fb:
            np.testing.assert_array_equal(fa[0].data, fb[0].data)
