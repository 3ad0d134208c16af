"""``calib nightly`` shows its progress: groups done of the night's groups, then the QC history."""

from __future__ import annotations

import pytest
from svomflow.cli.main import app
from svomflow.flows.nightly_calibration import nightly_master_calibration
from svomflow.simulation.colibri import simulate_colibri_night
from svomflow.tasks.progress import ProgressEvent, listening
from typer.testing import CliRunner

pytestmark = pytest.mark.integration

KW = dict(
    size=(96, 128), n_bias=5, n_dark=5, dark_exposures=(60.0,), n_flat_per_filter=5,
    flat_filters=("r",),
)  # fmt: skip


def test_nightly_reports_each_kind_then_history(prefect_harness, tmp_path) -> None:
    raw = tmp_path / "night"
    simulate_colibri_night(raw, seed=2, night="2026-11-23", science=False, **KW)
    events: list[ProgressEvent] = []
    with listening(events.append):
        summary = nightly_master_calibration(
            "2026-11-23",
            str(raw / "raw"),
            out_dir=str(tmp_path / "out"),
            caldb_root=str(tmp_path / "caldb"),
        )
    n_groups = len(summary["groups"]) + len(summary["refused"])
    assert n_groups == 3  # bias, dark 60 s, flat r
    assert [e.doing for e in events] == [
        "bias masters (1 groups)",
        "dark masters (1 groups)",
        "flat masters (1 groups)",
        "QC history",
        "done",
    ]
    assert [e.done for e in events] == [0, 1, 2, 3, 4]
    assert {e.total for e in events} == {n_groups + 1}
    assert all(e.flow == "nightly_master_calibration" for e in events)


def test_calib_nightly_command_prints_the_bar(prefect_harness, tmp_path) -> None:
    raw = tmp_path / "night"
    simulate_colibri_night(raw, seed=3, night="2026-11-23", science=False, **KW)
    r = CliRunner().invoke(
        app,
        ["calib", "nightly", "--night", "2026-11-23", "--raw", str(raw / "raw"),
         "--caldb", str(tmp_path / "caldb"), "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    # the last state of the bar: every item done, with its counts
    assert "calib nightly 2026-11-23: done" in r.stderr
    assert "4/4" in r.stderr
