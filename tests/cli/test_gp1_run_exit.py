"""``svomflow gp1 run`` on a simulated night: calibration frames skipped, honest exit code."""

from __future__ import annotations

import shutil

import pytest
from svomflow.cli.main import app
from svomflow.simulation.colibri import ScienceSpec, simulate_colibri_night
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    out = tmp_path_factory.mktemp("night")
    truth = simulate_colibri_night(
        out,
        7,
        size=(256, 256),
        n_bias=3,
        n_dark=3,
        n_flat_per_filter=3,
        flat_filters=["r"],
        science=ScienceSpec(n_frames=3),
        star_density_per_arcmin2=20,
    )
    return out, truth


def _run(night_dir, out):
    return runner.invoke(
        app,
        [
            "gp1", "run", "--no-prefect", "--input", str(night_dir), "--output", str(out),
            "--set", "steps.reduction.cosmic_rays=false",
        ],
        env={"COLUMNS": "250"},  # the table on one line per row
    )  # fmt: skip


def test_gp1_run_on_a_night_skips_calibration_and_finds_the_catalogue(night, tmp_path):
    root, truth = night
    res = _run(root, tmp_path / "out")  # the night's directory, no other option
    assert res.exit_code == 0, res.output
    n_cal = len(truth["calibration_frames"])
    assert f"images processed: 3, failed: 0, skipped: {n_cal}" in res.output
    assert "OTPO:" in res.output  # transient products: the catalogue was found and used


def test_gp1_run_exits_non_zero_and_names_the_failed_image(night, tmp_path):
    root, truth = night
    raw = tmp_path / "raw"
    raw.mkdir()
    frames = [f["file"] for f in truth["science"]["frames"]]
    for f in frames[:2]:
        shutil.copy(root / "raw" / f, raw / f)
    bad = raw / "truncated.fits"
    bad.write_bytes((root / "raw" / frames[2]).read_bytes()[:20000])
    shutil.copytree(root / "refcat", tmp_path / "refcat")
    res = _run(raw, tmp_path / "out")
    assert res.exit_code == 1, res.output
    assert "images processed: 2, failed: 1" in res.output  # the good images went on
    assert "truncated.fits" in res.output and "not a readable FITS file" in res.output
