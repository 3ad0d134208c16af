"""The vhf_quick_analysis flow as a real Prefect flow on a simulated short GRB (ECLAIRs + GRM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from astropy.io import fits
from svomflow.config import load_instrument
from svomflow.instruments.attitude import angular_separation_deg
from svomflow.products import ProductStore
from svomflow.simulation.calibration import register_calibration
from svomflow.simulation.scenario import load_scenario, run_scenario


@pytest.fixture(scope="module")
def short_grb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("short_grb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SVOMFLOW_CALDB", str(out / "caldb"))  # not the home of whichever test
        truth = run_scenario(load_scenario("short_grb"), out, seed=3)
    return out, truth


@pytest.fixture
def caldb(short_grb: tuple[Path, dict]) -> None:
    """The simulator's calibration registered in this test's CALDB, where the flow selects it."""
    sim, truth = short_grb
    for name, v in truth["instruments"].items():
        files = {code: sim / f for code, f in v["files"]["calibration"].items()}
        register_calibration(files, load_instrument(name))


@pytest.mark.integration
@pytest.mark.usefixtures("caldb")
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
    } | {"QSP_GRM", "QHR_ECLGRM", "CRCLASS_ECLGRM", "QPOPLOT_ECL", "RSP_GRM-GRD01"}
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
    # the calibration came from the CALDB: every product records the files of its step
    qpo = next(
        r
        for r in ProductStore(out).list(obs_id="grb_short_3")
        if r.type_code == "QPO" and r.instrument == "ECL"
    )
    assert {c["codename"] for c in qpo.provenance["calibration"]} == {"BADPIX", "EBOUNDS"}
    store = ProductStore(out)
    rows = store.statuses("grb_short_3")
    assert [r.state for r in rows] == ["done"] and rows[0].flow_run_id == res["flow_run_id"]
    assert json.dumps(res, default=str)


@pytest.mark.integration
def test_missing_calibration_fails_the_first_task_naming_every_file(
    prefect_harness, short_grb, tmp_path
) -> None:
    """No CALDB entry in this test's home: the run fails at once, nothing is published."""
    from svomflow.flows.vhf import vhf_quick_analysis

    sim, _ = short_grb
    files = [str(sim / "eclairs_l1_events.fits"), str(sim / "grm_l1_events.fits")]
    out = tmp_path / "products"
    state = vhf_quick_analysis(
        event_files=files, obs_id="no_caldb", out_dir=str(out), return_state=True
    )
    assert state.is_failed()
    rows = ProductStore(out).statuses("no_caldb")
    reason = rows[-1].reason or ""
    assert rows[-1].state == "failed"
    assert all(f"{i}:{c}" in reason for i in ("eclairs", "grm") for c in ("EBOUNDS", "DEADTIME"))
    assert "RSPPAR" not in reason  # optional in a quick analysis
    assert ProductStore(out).list(obs_id="no_caldb") == []


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
