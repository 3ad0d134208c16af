"""``svomflow mxt`` and ``svomflow calib nightly``: argument checks and a small nightly run."""

from __future__ import annotations

import json

import pytest
from svomflow.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


def test_mxt_bad_arguments_are_one_line_errors(tmp_path) -> None:
    f = tmp_path / "a.fits"
    f.write_bytes(b"x")
    base = ["mxt", "--events", str(f), "--attitude", str(f), "--saa", str(f)]
    r = runner.invoke(app, [*base[:2], str(tmp_path / "missing.fits"), *base[3:]])
    assert r.exit_code != 0 and "missing.fits" in r.output
    r = runner.invoke(app, [*base, "--prior-ra", "10"])
    assert r.exit_code != 0 and "--prior-dec" in r.output
    r = runner.invoke(app, [*base, "--calib", "psf"])
    assert r.exit_code != 0 and "NAME=PATH" in r.output
    r = runner.invoke(app, [*base, "--set", "detect.nope=1"])
    assert r.exit_code != 0 and "nope" in r.output


def test_calib_nightly_bad_night_and_raw(tmp_path) -> None:
    r = runner.invoke(app, ["calib", "nightly", "--night", "23/11/2026", "--raw", str(tmp_path)])
    assert r.exit_code != 0 and "YYYY-MM-DD" in r.output
    r = runner.invoke(
        app, ["calib", "nightly", "--night", "2026-11-23", "--raw", str(tmp_path / "no")]
    )
    assert r.exit_code != 0 and "not a directory" in r.output


@pytest.mark.integration
def test_calib_nightly_empty_night_says_so(prefect_harness, tmp_path) -> None:
    r = runner.invoke(
        app,
        ["calib", "nightly", "--night", "2026-11-23", "--raw", str(tmp_path), "--caldb",
         str(tmp_path / "caldb"), "--out", str(tmp_path / "out"), "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    line = next(ln for ln in reversed(r.stdout.splitlines()) if ln.startswith("{"))
    s = json.loads(line)
    assert s["status"] == "empty" and s["night"] == "2026-11-23"


def test_mxt_unknown_calibration_name_is_a_one_line_error(tmp_path) -> None:
    f = tmp_path / "a.fits"
    f.write_bytes(b"x")
    base = ["mxt", "--events", str(f), "--attitude", str(f), "--saa", str(f)]
    r = runner.invoke(app, [*base, "--calib", f"saa={f}"])
    assert r.exit_code != 0 and "gain, cti, pattern, psf" in r.output


@pytest.mark.integration
def test_mxt_missing_calibration_fails_once_in_one_line(prefect_harness, tmp_path) -> None:
    """An empty CALDB: the first task fails naming all four files, once, without a traceback.

    Run as a real process so that Prefect's own console output is part of what is checked.
    """
    import os
    import subprocess
    import sys

    import numpy as np
    from prefect.settings import get_current_settings
    from svomflow.simulation.mxt import simulate_scenario

    sim = tmp_path / "sim"
    spec = {"duration_s": 300.0, "n_passes": 2, "sources": [], "caldb": False}
    files = simulate_scenario(spec, sim, np.random.default_rng(4))["files"]
    env = {k: v for k, v in os.environ.items() if k != "SVOMFLOW_CALDB"}
    env.update(
        SVOMFLOW_HOME=str(tmp_path / "home"),  # its CALDB is empty
        PREFECT_API_URL=str(get_current_settings().api.url),  # the session's test server
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    args = ["mxt", "--events", *[str(sim / p) for p in files["l1"]], "--attitude",
            str(sim / files["attitude"]), "--saa", str(sim / files["saa"]), "--out",
            str(tmp_path / "out"), "--obs-id", "nocal"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "svomflow.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    errors = [ln for ln in proc.stderr.splitlines() if "calibration file(s) unavailable" in ln]
    assert len(errors) == 1 and errors[0].startswith("svomflow: error: 4 of 4"), output
    assert all(f"mxt:{code}" in errors[0] for code in ("GAIN", "CTI", "PATTERN", "PSF"))
    assert output.count("calibration file(s) unavailable") == 1, output
    assert "Traceback" not in output and "Retrying" not in output, output
