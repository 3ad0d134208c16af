"""The xband_analysis flow on a simulated burst: products recorded with provenance, idempotent."""

from __future__ import annotations

import pytest
from astropy.io import fits
from svomflow.instruments.attitude import angular_separation_deg
from svomflow.products import ProductStore

EXPECTED = {
    ("T90", "ECL"), ("T90", "GRM"), ("TINT", "ECLGRM"), ("PO", "ECL"), ("PO", "GRM"),
    ("RSP", "ECL"), ("RSP", "GRM-GRD01"), ("SP", "ECL"), ("SP", "GRM"), ("SP", "ECLGRM"),
    ("FLUENCE", "ECL"), ("FLUENCE", "GRM"), ("FLUENCE", "ECLGRM"), ("LC", "ECL"), ("LC", "GRM"),
    ("PF", "ECL"), ("PF", "GRM"), ("HR", "ECL"), ("HR", "GRM"), ("HR", "ECLGRM"),
    ("LAG", "ECL"), ("LAG", "GRM"), ("LAG", "ECLGRM"), ("SP-PREVIEW", "ECLGRM"),
    ("LC-PREVIEW", "ECL"), ("PHA", "ECL"), ("BAK", "GRM-GRD02"), ("MWLC", "ECL"),
}  # fmt: skip


@pytest.mark.integration
def test_xband_flow_products_provenance_and_rerun(prefect_harness, tmp_path) -> None:
    from svomflow.flows.xband import xband_analysis
    from svomflow.simulation.scenario import load_scenario, run_scenario
    from svomflow.tasks.xband.config import XbandAnalysisConfig

    sim = tmp_path / "sim"
    scen = load_scenario(
        "bright_long_grb",
        ["time.start_s=-20", "time.stop_s=50", "bright_sources=false", "grbs.0.t90_s=12"],
    )
    truth = run_scenario(scen, sim, seed=4)
    files = [str(sim / "eclairs_l1_events.fits"), str(sim / "grm_l1_events.fits")]
    out = tmp_path / "products"
    cfg = XbandAnalysisConfig.model_validate(
        {
            "intervals": {"max_resolved": 3},
            "spectral": {"flux_samples": 100},
            "temporal": {"lag_sims": 30},
        }
    )
    res = xband_analysis(
        events=files, obs_id="sb00000042", t0=truth["t0"], out_dir=str(out), config=cfg
    )
    got = {(p["type"], p["instrument"]) for p in res["products"]}
    assert EXPECTED <= got, EXPECTED - got
    assert all(p["new"] for p in res["products"])
    src = truth["sources"][0]
    pos = res["positions"]["eclairs"]
    sep = angular_separation_deg(pos["ra_deg"], pos["dec_deg"], src["ra_deg"], src["dec_deg"]) * 60
    assert sep < 2 * pos["r90_arcmin"]

    store = ProductStore(out)
    rows = store.list(obs_id="sb00000042")
    assert len(rows) == len(res["products"])
    sp = next(r for r in rows if r.type_code == "SP" and r.instrument == "ECLGRM")
    prov = sp.provenance
    assert prov["flow_name"] == "xband_analysis"
    assert {i["path"] for i in prov["inputs"]} == {
        str(p) for p in map(lambda f: __import__("pathlib").Path(f).resolve(), files)
    }
    # the CALDB files the fit depends on (the simulator registered them): responses,
    # channels, dead time, bad pixels
    assert {(c["codename"], c["override"]) for c in prov["calibration"]} == {
        (code, False) for code in ("RSPPAR", "EBOUNDS", "DEADTIME", "BADPIX")
    }
    assert len([c for c in prov["calibration"] if c["codename"] == "RSPPAR"]) == 2
    assert prov["config"]["intervals"]["max_resolved"] == 3
    with fits.open(sp.path) as hdul:
        tab = hdul["FITRESULT"].data
        assert "main" in list(tab["INTERVAL"])
        assert hdul["FITRESULT"].columns["FLUENCE_10-1000"].unit == "erg/cm2"
        assert hdul[0].header["PRODTYPE"] == "SP"
    statuses = store.statuses("sb00000042")
    assert statuses[0].state == "done"

    # the published spectrum names the published background and response (not work files),
    # so XSPEC, sherpa or our own loader find them next to it
    from pathlib import Path

    from svomflow.tasks import spectral as sp

    by_type = {(r.type_code, r.instrument): r for r in rows}
    pha, bak, rsp = (by_type[(t, "GRM-GRD01")].path for t in ("PHA", "BAK", "RSP"))
    with fits.open(pha) as hdul:
        spec = hdul["SPECTRUM"]
        assert spec.header["RESPFILE"] == Path(rsp).name
        assert list(spec.data["BACKFILE"]) == [
            f"{Path(bak).name}{{{k + 1}}}" for k in range(len(spec.data))
        ]
    ds = sp.load(pha, row=1)
    assert ds.background is not None and not ds.notes
    assert ds.background.path.resolve() == Path(bak).resolve()
    assert ds.response.path.resolve() == Path(rsp).resolve()

    # the same inputs and configuration: no new version of anything
    again = xband_analysis(
        events=files, obs_id="sb00000042", t0=truth["t0"], out_dir=str(out), config=cfg
    )
    assert not any(p["new"] for p in again["products"])
    assert {(p["type"], p["instrument"], p["version"]) for p in again["products"]} == {
        (p["type"], p["instrument"], p["version"]) for p in res["products"]
    }
    assert len(store.list(obs_id="sb00000042", include_superseded=True)) == len(rows)
