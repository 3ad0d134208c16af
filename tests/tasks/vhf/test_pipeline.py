"""The VHF steps end to end without Prefect: numbers against the injected burst, products."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from svomflow.instruments.attitude import angular_separation_deg
from svomflow.products.store import ProductStore
from svomflow.simulation.bench import _efficiencies, counts_durations, grb_model_from_truth
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.pipeline import analyse, summary
from svomflow.tasks.vhf.publish import publish_products


@pytest.fixture(scope="module")
def short_result(short_grb_files):
    files, truth = short_grb_files
    cfg = VHFConfig()
    cfg.durations.n_sims = 200
    return analyse(files, config=cfg), truth


def test_short_grb_numbers(short_result) -> None:
    res, truth = short_result
    s = summary(res)
    src = truth["sources"][0]
    model = grb_model_from_truth(src)
    shift = s["t0"] - src["t0"]
    for name, (eff, _) in _efficiencies(truth).items():
        per = s["per_instrument"][name]
        true = counts_durations(model, tuple(per["band_kev"]), eff)
        # 0.5 s burst: the T90 clock is chosen from its extent (<= extent / 64 within
        # [1 ms, 1 s], so at most ~16 ms here); T90 / start inside 3 of their own errors
        assert 0.001 <= per["t90_dt_s"] <= 0.016, per["t90_dt_s"]
        assert per["t90_quality"] in ("GOOD", "FLAGGED")
        assert abs(per["t90"] - true["t90"]) < 3 * per["t90_err"], name
        assert abs(per["t90_start"] + shift - true["t90_start"]) < 3 * per["t90_start_err"] + 0.02
    assert s["classification"]["class"] == "short"
    p = s["positions"]["ECLAIRS"]
    sep = float(angular_separation_deg(p["ra_deg"], p["dec_deg"], src["ra_deg"], src["dec_deg"]))
    assert sep * 60 < 2 * p["r90_arcmin"]
    g = s["positions"]["GRM"]
    sep = float(angular_separation_deg(g["ra_deg"], g["dec_deg"], src["ra_deg"], src["dec_deg"]))
    assert sep < 2 * g["error_radius_90_deg"]
    # peak flux: the 64 ms window sits on the burst and its rate exceeds the 1 s one
    pf = s["peak_flux"]
    assert -0.5 < pf["0.064"]["start"] + shift < 1.0
    assert pf["0.064"]["rate"] > pf["1.024"]["rate"] > 0
    assert s["spectrum"]["GRM"]["converged"]


def test_products_written_once_and_readable(short_result, tmp_path) -> None:
    res, _ = short_result
    store = ProductStore(tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}")
    cfg = VHFConfig()
    cfg.previews = False
    refs = publish_products(res, store=store, obs_id="s4", config=cfg, flow_name="test")
    names = {f"{r.type_code}_{r.instrument}" for r in refs}
    assert {"QT90_GRM", "QT90_ECL", "QPO_ECL", "QPO_GRM", "QSP_GRM", "CRCLASS_ECLGRM"} <= names
    # idempotent: the same inputs and configuration give the same product identities
    again = publish_products(res, store=store, obs_id="s4", config=cfg, flow_name="test")
    assert [r.id for r in again] == [r.id for r in refs] and not any(r.created_new for r in again)
    by = {f"{r.type_code}_{r.instrument}": r.path for r in refs}
    with fits.open(by["QPF_GRM"]) as h:
        assert list(h[1].data["TIMESCALE"]) == [0.064, 0.256, 1.024]
        assert h[1].columns["RATE"].unit == "count/s" and h[1].header["E_MIN"] == 50.0
    with fits.open(by["QPO_ECL"]) as h:
        assert h[1].columns["ERR_RAD"].unit == "arcmin" and np.isfinite(h[1].data["RA"][0])
    with fits.open(by["RSP_GRM_GRD01"]) as h:
        assert h["SPECRESP MATRIX"].header["HDUCLAS3"] == "FULL"


def test_grm_only_counts_path(grm_only_files) -> None:
    files, truth = grm_only_files
    s = summary(analyse(files))
    src = truth["sources"][0]
    assert s["instruments"] == ["GRM"] and s["position"]["instrument"] == "GRM"
    g = s["positions"]["GRM"]
    sep = float(angular_separation_deg(g["ra_deg"], g["dec_deg"], src["ra_deg"], src["dec_deg"]))
    assert sep < 2 * g["error_radius_90_deg"]
    assert s["classification"]["class"] == "long"
    assert "ECLAIRS" not in s["per_instrument"]


def test_tail_at_the_end_of_the_data_gives_a_flagged_t90_product(tmp_path) -> None:
    """A 20 s burst whose data stop 8 s after T0: no post-burst plateau, so no T90 number.

    The flow must not fail nor report a duration: QT90 is published with QUALITY
    TAIL_AT_DATA_END, a reason, NaN durations and an excess interval reaching the data end.
    """
    from svomflow.simulation.scenario import load_scenario, run_scenario

    truth = run_scenario(load_scenario("grm_only_grb", ["time.stop_s=8"]), tmp_path / "s", seed=2)
    res = analyse([str(tmp_path / "s" / "grm_l1_events.fits")])
    s = summary(res)
    per = s["per_instrument"]["GRM"]
    assert per["t90"] is None and per["t90_quality"] == "TAIL_AT_DATA_END"
    assert "end of the data" in per["t90_quality_reason"]
    assert any("TAIL_AT_DATA_END" in f for f in s["flags"])
    assert s["classification"] is None  # no T90, no class
    cfg = VHFConfig()
    cfg.previews = False
    store = ProductStore(tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}")
    refs = publish_products(res, store=store, obs_id="trunc", config=cfg, flow_name="test")
    by = {f"{r.type_code}_{r.instrument}": r.path for r in refs}
    with fits.open(by["QT90_GRM"]) as h:
        assert h[0].header["QUALITY"] == "TAIL_AT_DATA_END"
        assert "no post-burst" in h[0].header["QUALREAS"]
        row = h["T90"].data[0]
        assert np.isnan(row["T90"]) and np.isnan(row["T90_ERR"])
        stop = truth["t_stop"] - res.inputs.t0
        assert row["SRC_STOP"] == pytest.approx(row["DATA_STOP"]) and row["SRC_START"] < 0.5
        assert row["DATA_STOP"] == pytest.approx(stop, abs=0.01)
    # the untruncated products of the same flow keep QUALITY GOOD/FLAGGED
    with fits.open(by["QLC_GRM"]) as h:
        assert h[0].header["QUALITY"] in ("GOOD", "FLAGGED")


def test_burst_outside_the_eclairs_field_with_eclairs_data(tmp_path) -> None:
    """ECLAIRs data without the burst (50 deg off axis), the GRM with it: a GRM-only result.

    ECLAIRs finds no burst, but its image-trigger search still ran: the summary must carry
    it without ECLAIRs timing (it raised KeyError before), and the one GRM detector facing
    the burst must not make a 20 s GRB a particle hit.
    """
    from svomflow.simulation.scenario import load_scenario, run_scenario

    scen = load_scenario("grm_only_grb", ["instruments=[eclairs, grm]", "bright_sources=false"])
    out = tmp_path / "s"
    run_scenario(scen, out, seed=2)
    res = analyse([str(out / "eclairs_l1_events.fits"), str(out / "grm_l1_events.fits")])
    s = summary(res)
    ecl = s["per_instrument"]["ECLAIRS"]
    assert ecl["t90"] is None and "no burst" in ecl["failed"]
    assert "image_trigger" in ecl
    assert s["per_instrument"]["GRM"]["t90"] is not None
    assert s["classification"]["class"] == "long", s["classification"]
