"""The mxt_analysis flow on a small simulated field (burst mode with an ECLAIRs prior)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.instruments.attitude import angular_separation_deg
from svomflow.products import ProductStore
from svomflow.simulation.mxt import simulate_scenario

SCENARIO = {
    "duration_s": 2500.0,
    "sources": [
        {
            "offset_arcmin": [2.0, -1.0],
            "flux_ph_cm2_s": 0.03,
            "decay_index": 1.0,
            "t0": 1.0e8 - 500.0,
            "name": "afterglow",
        },
    ],
}


@pytest.mark.integration
def test_mxt_analysis_flow_burst_mode(prefect_harness, tmp_path):
    from svomflow.flows.mxt import mxt_analysis

    sim = tmp_path / "sim"
    truth = simulate_scenario(SCENARIO, sim, np.random.default_rng(21))
    src = truth["sources"][0]
    cal = {k: str(sim / v) for k, v in truth["files"]["calibration"].items()}
    out = tmp_path / "out"
    l1 = [str(sim / f) for f in truth["files"]["l1"]]
    res = mxt_analysis(
        l1_files=l1,
        attitude_file=str(sim / truth["files"]["attitude"]),
        saa_file=str(sim / truth["files"]["saa"]),
        obs_id="sb26112401",
        out_dir=str(out),
        calibration_overrides=cal,
        trigger_time=1.0e8 - 500.0,
        prior_ra=src["ra_deg"] + 0.02,
        prior_dec=src["dec_deg"],
        # a plain mapping (what the CLI and reprocessing pass) is validated into the model
        config={"detect": {"ml_threshold": 12.0}},
    )
    assert res["mode"] == "burst"
    with fits.open(res["srclist"]) as hdul:
        tab = hdul["SRCLIST"].data
        h = hdul["SRCLIST"].header
        assert len(tab) >= 1
        sep = (
            angular_separation_deg(tab["RA"][0], tab["DEC"][0], src["ra_deg"], src["dec_deg"])
            * 3600
        )
        # within 3 x r90 (a single trial: a fixed 90 % test would fail 10 % of seeds)
        assert sep < 3 * tab["RADEC_ERR90"][0]
        assert h["NDUPLIC"] > 0
    prods = res["products"]
    assert res["srclist"].startswith(str(out / "sb26112401" / "MXT"))
    assert len(prods["previews"]) == 1 + len(tab) and all(
        Path(p).is_file() for p in prods["previews"]
    )
    with fits.open(prods["lightcurves"][0]) as hdul:
        lc = hdul["RATE"].data
        # the fading afterglow: later bins are fainter on average
        assert lc["RATE"][: len(lc) // 3].mean() > lc["RATE"][-len(lc) // 3 :].mean()
    with fits.open(prods["spectra"][0]) as hdul:
        # the responses are named relative to the spectrum's folder, under their product names
        spec = hdul["SPECTRUM"].header
        folder = Path(prods["spectra"][0]).parent
        assert (folder / spec["RESPFILE"]).resolve() == Path(prods["rmf"]).resolve()
        assert spec["ANCRFILE"] == Path(prods["arfs"][0]).name
        assert (folder / spec["ANCRFILE"]).is_file()
        assert hdul[0].header["PRODTYPE"] == "PHA"
    # every product is recorded with its provenance: inputs, merged config, calibration
    store = ProductStore(out)
    rows = store.list(obs_id="sb26112401")
    made = {(r.type_code, r.instrument) for r in rows}
    assert made >= {("EVT", "MXT"), ("SRCLIST", "MXT"), ("RMF", "MXT"), ("QIMG", "MXT")}
    assert made >= {("PHA", "MXT-S01"), ("LC", "MXT-S01"), ("ARF", "MXT-S01")}
    prov = next(r for r in rows if r.type_code == "SRCLIST").provenance
    assert {Path(i["path"]).name for i in prov["inputs"]} >= {Path(p).name for p in l1}
    assert {c["codename"] for c in prov["calibration"]} == {"GAIN", "CTI", "PATTERN", "PSF"}
    assert all(c["override"] for c in prov["calibration"])
    assert prov["config"]["detect"]["ml_threshold"] == res_cfg_ml(res) == 12.0
    assert store.statuses("sb26112401")[0].state == "done"


def res_cfg_ml(res):
    """The ML threshold the run used (written in the source list header)."""
    with fits.open(res["srclist"]) as hdul:
        return hdul["SRCLIST"].header["MLTHRESH"]


@pytest.mark.integration
def test_mxt_analysis_wrong_instrument_fails_and_is_recorded(prefect_harness, tmp_path):
    import shutil

    from prefect.states import State
    from svomflow.errors import InputDataError
    from svomflow.flows.mxt import mxt_analysis

    sim = tmp_path / "sim"
    truth = simulate_scenario({"duration_s": 600.0, "n_passes": 1, "sources": []}, sim,
                              np.random.default_rng(3))  # fmt: skip
    bad = tmp_path / "eclairs_pass.fits"
    shutil.copy(sim / truth["files"]["l1"][0], bad)
    with fits.open(bad, mode="update") as hdul:
        hdul["EVENTS"].header["INSTRUME"] = "ECLAIRS"
    out = tmp_path / "out"
    state = mxt_analysis(
        l1_files=[str(bad)],
        attitude_file=str(sim / truth["files"]["attitude"]),
        saa_file=str(sim / truth["files"]["saa"]),
        obs_id="badinst",
        out_dir=str(out),
        return_state=True,
    )
    assert isinstance(state, State) and state.is_failed()
    with pytest.raises(InputDataError, match="ECLAIRS"):
        state.result()
    # the on_failure hook recorded the reason for the observation
    st = ProductStore(out).statuses("badinst")
    assert st and st[0].state == "failed" and "ECLAIRS" in (st[0].reason or "")
    assert ProductStore(out).list(obs_id="badinst") == []
