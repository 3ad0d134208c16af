"""The instrument-centre simulators run as ``svomflow simulate <scenario>`` like the others."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from svomflow.calibration.caldb import open_caldb
from svomflow.cli.main import app
from svomflow.products.eic_pixel_files import read_dead_time_fit
from svomflow.products.eic_saa_files import read_saa_contour
from typer.testing import CliRunner

runner = CliRunner()


def _simulate(name: str, out: Path, *extra: str) -> str:
    res = runner.invoke(app, ["simulate", name, "--out", str(out), "--seed", "3", *extra])
    assert res.exit_code == 0, res.output
    return res.output


def test_triggers_scenario_writes_the_day_and_registers_the_configuration(tmp_path):
    out = _simulate("eic_triggers", tmp_path / "sim")
    assert "sim/eic_triggers/ (5): catalogue.fits, day1_stream.fits, day1_triglog.fits" in out
    assert f"calibration registered in {os.environ['SVOMFLOW_HOME']}/caldb" in out
    db = open_caldb()
    for code in ("TRIGTHR", "OBSRCCAT"):
        entry = db.select(code, instrument="ECLAIRS", time="2023-01-01T00:10:00")
        assert Path(entry.path).read_bytes() == (tmp_path / "sim" / "eic_triggers" / (
            "thresholds.fits" if code == "TRIGTHR" else "catalogue.fits")).read_bytes()  # fmt: skip
    truth = json.loads((tmp_path / "sim" / "truth.json").read_text())
    day = truth["instruments"]["onboard_trigger"]
    assert len(day["missed_true_times"]) == 1 and len(day["spurious_ids"]) == 2


def test_pixels_scenario_registers_the_true_module_dead_times(tmp_path):
    out = _simulate(
        "eic_pixels",
        tmp_path / "sim",
        "--set",
        "instrument_options.eclairs_pixel_health.days=1",
        "--set",
        "instrument_options.eclairs_pixel_health.dead_time_model=paralyzable",
    )
    assert "pixhist_100000000.fits" in out and "dtrates.fits" in out
    entry = open_caldb().select("DEADTIME", instrument="ECLAIRS", time="2026-03-04T00:00:00")
    fit = read_dead_time_fit(entry.path)
    truth = json.loads((tmp_path / "sim" / "eic_pixels" / "truth.json").read_text())
    assert fit.model == "PARALYZABLE" and fit.tau.size == 200
    assert fit.tau.tolist() == pytest.approx(truth["dead_time"]["tau"])
    assert fit.plane_equivalent == pytest.approx(sum(truth["dead_time"]["tau"]) / 200 / 200)


def test_saa_scenario_registers_the_true_region_within_the_latitudes_reached(tmp_path):
    _simulate("eic_saa", tmp_path / "sim", "--set", "instrument_options.eclairs_orbit_rates.days=1")
    entry = open_caldb().select("SAACONT", instrument="ECLAIRS", time="2023-01-05T00:00:00")
    contour = read_saa_contour(entry.path)
    (poly,) = contour.polygons
    assert contour.lat_range_deg == (-30.0, 30.0)
    assert poly[:, 1].min() == pytest.approx(-30.0) and poly[:, 1].max() <= 0.0
    # the orbit's polygon (config/scenarios/_orbit.yaml) clipped at -30 deg: 2850 deg2
    assert contour.area_deg2 == pytest.approx(2850.0)
    assert sorted(p.name for p in (tmp_path / "sim" / "eic_saa").iterdir()) == [
        "eclairs_saacont.fits", "rates_w1.fits", "rates_w2.fits"]  # fmt: skip
