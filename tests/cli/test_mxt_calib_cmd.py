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
