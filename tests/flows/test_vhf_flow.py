"""The vhf_quick_analysis flow as a real Prefect flow on a simulated short GRB (ECLAIRs + GRM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from astropy.io import fits
from svomflow.instruments.attitude import angular_separation_deg
from svomflow.products import ProductStore
from svomflow.simulation.scenario import load_scenario, run_scenario


@pytest.fixture(scope="module")
def short_grb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("short_grb")
    truth = run_scenario(load_scenario("short_grb"), out, seed=3)
    return out, truth


@pytest.mark.integration
def test_vhf_flow_products_status_and_numbers(prefect_harness, short_grb, tmp_path) -> None:
    from svomflow.flows.vhf import vhf_quick_analysis

    sim, truth = short_grb
    files = [str(sim / "eclairs_l1_events.fits"), str(sim / "grm_l1_events.fits")]
    out = tmp_path / "products"
    res = vhf_quick_analysis(event_files=files, obs_id="grb_short_3", out_dir=str(out))
    src = truth["sources"][0]
    # every product of the table, for both instruments and jointly
    want = {
        f"{t}_{i}"
        for t in ("TT", "QCL", "QPO", "OBLC", "QLC", "QPF", "QT90", "QHR", "QLCPLOT")
        for i in ("ECL", "GRM")
    } | {"QSP_GRM", "QHR_ECLGRM", "CRCLASS_ECLGRM", "QPOPLOT_ECL", "RSP_GRM_GRD01"}
    assert want <= set(res["products"])
    for path in res["products"].values():
        assert Path(path).is_file() and Path(path).stat().st_size > 0
    # T90 of a 0.5 s burst: short, within 3 sigma of the injected photon T90
    t90, err = res["t90"], res["t90_err"]
    assert err > 0 and abs(t90 - src["bands"]["50-300"]["t90"]) < 3 * err
    assert res["classification"]["class"] == "short" and res["classification"]["p_short"] > 0.5
    sep = (
        float(
            angular_separation_deg(
                res["position"]["ra_deg"], res["position"]["dec_deg"], src["ra_deg"], src["dec_deg"]
            )
        )
        * 60
    )
    assert sep < 3 * res["position"]["r90_arcmin"]
    assert set(res["peak_flux"]) == {"0.064", "0.256", "1.024"}
    # OGIP light curve with provenance and the band stated
    with fits.open(res["products"]["QLC_GRM"]) as h:
        assert h[1].header["HDUCLAS1"] == "LIGHTCURVE" and h[1].header["E_MIN"] == 50.0
        assert {"TIME", "RATE", "ERROR", "BKG_RATE"} <= set(h[1].columns.names)
        assert h[0].header["PRODTYPE"] == "QLC" and h[0].header["FLOWRUN"] != "none"
        assert h[0].header["T0"] == pytest.approx(res["t0"])
    with fits.open(res["products"]["QT90_GRM"]) as h:
        assert h[1].data["T90"][0] == pytest.approx(t90)
        assert h[1].columns["T90"].unit == "s"
    store = ProductStore(out)
    rows = store.statuses("grb_short_3")
    assert [r.state for r in rows] == ["done"] and rows[0].flow_run_id == res["flow_run_id"]
    assert json.dumps(res, default=str)


@pytest.mark.integration
def test_vhf_flow_failure_is_recorded(prefect_harness, tmp_path) -> None:
    from svomflow.flows.vhf import vhf_quick_analysis

    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    out = tmp_path / "products"
    state = vhf_quick_analysis(
        event_files=[str(empty)], obs_id="bad_input", out_dir=str(out), return_state=True
    )
    assert state.is_failed()
    rows = ProductStore(out).statuses("bad_input")
    assert rows[-1].state == "failed" and "empty" in (rows[-1].reason or "")
