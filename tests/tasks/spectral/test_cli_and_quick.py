"""The `svomflow spectrum fit` command and the GRM quick-spectrum step."""

from __future__ import annotations

import json

import numpy as np
import pytest
from svomflow.cli.main import app
from svomflow.tasks.spectral import QuickSpectrumConfig, quick_spectrum
from svomflow.tasks.spectral.models import EnergyGrid, make_model
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.realdata
def test_cli_json_asca_and_frozen_statistic(shared_data):
    pha = str(shared_data / "xray/asca/s0_mar24_bin.pha")
    args = [
        "spectrum",
        "fit",
        "--pha",
        pha,
        "--model",
        "pl",
        "--pivot",
        "1",
        "--stat",
        "chi2-gehrels",
        "--channels",
        "41-167",
        "--json",
    ]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    obj = json.loads(out.stdout.strip().splitlines()[-1])
    assert obj["statistic"] == "chi2-gehrels" and obj["dof"] == 44
    assert obj["stat"] == pytest.approx(19.0311, abs=2e-4)
    assert set(obj["parameters"]["index"]) == {"value", "error_low", "error_high", "frozen"}
    frozen = runner.invoke(app, [*args, "--freeze", "K=3.02545e-4", "--freeze", "index=-1.83531"])
    obj2 = json.loads(frozen.stdout.strip().splitlines()[-1])
    assert obj2["stat"] == pytest.approx(19.0311, abs=2e-4)
    assert obj2["dof"] == 46 and obj2["parameters"]["K"]["frozen"] is True


@pytest.mark.realdata
def test_cli_user_errors_are_one_line(shared_data):
    pha = str(shared_data / "xray/asca/s0_mar24_bin.pha")
    rsp = str(shared_data / "gbm/bn090217206/bn090217206_n6_weightedrsp.rsp")
    out = runner.invoke(app, ["spectrum", "fit", "--pha", pha, "--rsp", rsp])
    assert out.exit_code != 0
    assert "512 channels" in out.output and "128" in out.output
    out = runner.invoke(
        app,
        [
            "spectrum",
            "fit",
            "--pha",
            pha,
            "--pha",
            pha,
            "--bak",
            "none",
            "--bak",
            "none",
            "--bak",
            "none",
        ],
    )
    assert out.exit_code != 0 and "--bak given 3 times for 2" in out.output


def test_quick_spectrum_recovers_cpl(synth):
    rng = np.random.default_rng(5)
    truth = {"K": 0.08, "index": -0.9, "epeak": 400.0}
    model = make_model("cpl")
    counts, bkgs, resps = [], [], []
    for area in (120.0, 80.0, 40.0):  # three GRDs seeing the burst at different angles
        resp = synth.gaussian_response(area=area, lo=15.0, hi=5000.0)
        grid = EnergyGrid(resp.energ_lo, resp.energ_hi, 3)
        mu = model.integrate(grid, truth) @ resp.matrix * 8.0
        bkg = np.full(mu.size, 15.0)
        counts.append(rng.poisson(mu + bkg).astype(float))
        bkgs.append((bkg, np.full(mu.size, 1.0)))
        resps.append(resp)
    q = quick_spectrum(
        counts, bkgs, resps, 8.0, config=QuickSpectrumConfig(model="cpl", n_flux_samples=200)
    )
    ep = q.parameters["epeak"]
    assert q.converged and q.statistic == "pgstat"
    assert ep["error_low"] * 3 <= truth["epeak"] - ep["value"] <= ep["error_high"] * 3
    true_flux = model.flux(truth, (10.0, 1000.0), "energy")
    ef = q.energy_flux
    assert ef["error_low"] * 3 <= true_flux - ef["value"] <= ef["error_high"] * 3
    assert json.dumps(q.to_dict())
