"""Scenarios and the ``svomflow simulate`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from svomflow.cli.main import app
from svomflow.errors import ConfigError
from svomflow.simulation.scenario import available_scenarios, load_scenario
from typer.testing import CliRunner

runner = CliRunner()


def test_packaged_scenarios_validate() -> None:
    names = available_scenarios()
    for required in (
        "bright_long_grb",
        "faint_long_grb",
        "short_grb",
        "offaxis_grb",
        "mxt_one_source",
        "mxt_three_sources",
        "colibri_night",
    ):
        assert required in names
    for name in names:
        assert load_scenario(name).name == name


def test_set_overrides_reach_list_items_and_bad_keys_fail() -> None:
    sc = load_scenario("short_grb", ["grbs.0.peak_flux=3.5", "time.stop_s=5"])
    assert sc.grbs[0].peak_flux == 3.5 and sc.time.stop_s == 5
    with pytest.raises(ConfigError, match=r"grbs\.0\.nope"):
        load_scenario("short_grb", ["grbs.0.nope=1"])


def test_simulate_cli_round_trip_is_reproducible(tmp_path) -> None:
    args = ["simulate", "grm_only_grb", "--seed", "3", "--set", "time.stop_s=40"]
    r1 = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert r2.exit_code == 0
    truth = json.loads((tmp_path / "a" / "truth.json").read_text())
    src = truth["sources"][0]
    assert src["bands"]["10-1000"]["t90"] == pytest.approx(20.0, rel=1e-3)
    assert src["offaxis_deg"] == pytest.approx(50.0, abs=1e-6)
    assert truth["instruments"]["grm"]["files"]["events"] == "grm_l1_events.fits"
    with (
        fits.open(tmp_path / "a" / "grm_l1_events.fits") as a,
        fits.open(tmp_path / "b" / "grm_l1_events.fits") as b,
    ):
        for k in (1, 2, 3):
            assert np.array_equal(a["EVENTS", k].data["TIME"], b["EVENTS", k].data["TIME"])
        assert a[0].header["TRIGTIME"] == pytest.approx(truth["t0"])


@pytest.mark.parametrize(
    "args",
    [["simulate", "no_such_scenario"], ["simulate", "short_grb", "--set", "grbs.0.peak_flux=abc"]],
)
def test_simulate_user_errors_are_one_line(tmp_path, args) -> None:
    r = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert r.exit_code != 0
    assert "Traceback" not in r.output
    assert len([ln for ln in r.output.splitlines() if ln.strip()]) == 1


def test_eclairs_and_grm_scenario_writes_both_files(tmp_path) -> None:
    r = runner.invoke(
        app,
        [
            "simulate",
            "short_grb",
            "--out",
            str(tmp_path),
            "--seed",
            "1",
            "--set",
            "time.start_s=-5",
            "--set",
            "time.stop_s=5",
            "--set",
            "bright_sources=false",
        ],
    )
    assert r.exit_code == 0, r.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert (tmp_path / truth["instruments"]["eclairs"]["files"]["events"]).is_file()
    assert (tmp_path / truth["instruments"]["grm"]["files"]["events"]).is_file()
