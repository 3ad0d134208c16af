"""GP1 on a simulated alert sequence guided by the alert position: the afterglow among variables.

The COLIBRI part of the ``e2e_alert_loop`` scenario: the afterglow at the burst's position,
a brighter constant variable and a fading unrelated flare within an arcminute of it. GP1 runs
one image at a time (as the watcher does), first with a wide ECLAIRs-like position, then with
an MXT-like one: the choice, the DT probabilities and the QTI/OTPO records are checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from astropy.io import fits
from svomflow.flows.gp1 import gp1_key_numbers, process_images
from svomflow.products import ProductStore
from svomflow.simulation.scenario import load_scenario, run_scenario
from svomflow.tasks.gp1.alert_position import AlertPosition
from svomflow.tasks.gp1.config import GP1Config


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    out = tmp_path_factory.mktemp("alert_loop")
    sc = load_scenario(
        "e2e_alert_loop",
        ["instruments=[alert_loop]", "instrument_options.alert_loop.n_frames=3"],
    )
    truth = run_scenario(sc, out, seed=4, register_calibration=False)
    return truth["instruments"]["alert_loop"]


def _near(c: dict, src: dict, tol_arcsec: float = 1.5) -> bool:
    import math

    dra = (c["ra_deg"] - src["ra_deg"]) * math.cos(math.radians(src["dec_deg"]))
    return math.hypot(dra, c["dec_deg"] - src["dec_deg"]) * 3600 < tol_arcsec


def test_the_alert_position_picks_the_afterglow_and_is_recorded(sequence, tmp_path) -> None:
    loop = sequence
    srcs = {s["name"]: s for s in loop["sources"]}
    ag = srcs["afterglow"]
    cfg = GP1Config(output_dir=str(tmp_path / "out"), trigger_time=loop["trigger_time"])
    cfg.steps.astrometry.reference_catalog = loop["refcat_dir"]
    cfg.steps.reduction.override_bias = loop["masters"]["BIAS"]
    cfg.steps.reduction.override_dark = loop["masters"]["DARK"]
    cfg.steps.reduction.override_flat = loop["masters"]["FLAT"]
    burst = loop["burst_id"]
    # an ECLAIRs-like r90 of 8' centred 3.5' away; then MXT's 0.4' on the afterglow
    ecl = AlertPosition(
        burst_id=burst, ra_deg=ag["ra_deg"] + 0.05, dec_deg=ag["dec_deg"] - 0.03,
        error_radius_arcmin=8.0, source="QPO_ECL", version=1,
    )  # fmt: skip
    mxt = AlertPosition(
        burst_id=burst, ra_deg=ag["ra_deg"] + 0.002, dec_deg=ag["dec_deg"],
        error_radius_arcmin=0.4, source="SRCLIST_MXT", version=1, product_id="mxt-1",
    )  # fmt: skip
    db = f"sqlite:///{tmp_path / 'products.db'}"
    seqs = []
    for k, image in enumerate(loop["science_frames"]):
        c = cfg.model_copy(update={"alert_position": ecl if k < 2 else mxt})
        res = process_images([image], c, database_url=db)
        assert not res["failed"], res["failed"]
        seqs.append(next(iter(res["sequences"].values())))
    # the run's key numbers (the Prefect artifact) say which position was used
    numbers = gp1_key_numbers(res)
    used = next(v for k, v in numbers.items() if k.endswith("alert position used"))
    assert used.startswith("SRCLIST_MXT v1")
    assert float(next(v for k, v in numbers.items() if k.endswith("afterglow)"))) > 0.99
    # every candidate is one of the injected sources, each reported with its probability
    for s in seqs:
        names = {n for c in s["candidates"] for n, src in srcs.items() if _near(c, src)}
        assert names == set(srcs), s["candidates"]
        total = sum(c["probability"] for c in s["candidates"])
        assert 0.0 < total <= 1.0 + 1e-9
    # the brightest transient is the constant variable: the old "most significant" rule
    # would take it; after two images its flat light curve rules it out
    first = seqs[0]["candidates"]
    brightest = max(first, key=lambda c: c["snr"])
    assert _near(brightest, srcs["constant_variable"])
    by = {n: c for c in seqs[1]["candidates"] for n, src in srcs.items() if _near(c, src)}
    assert abs(by["constant_variable"]["decay_index"]) < 0.2
    assert abs(by["afterglow"]["decay_index"] - ag["decay_index"]) < 0.2
    assert by["constant_variable"]["probability"] < 0.05
    # MXT's position: the afterglow, the others outside its region and still reported
    last = {n: c for c in seqs[2]["candidates"] for n, src in srcs.items() if _near(c, src)}
    t = seqs[2]["transient"]
    assert _near({"ra_deg": t["ALPHA_J2000"], "dec_deg": t["DELTA_J2000"]}, ag)
    assert last["afterglow"]["probability"] > 0.99 and last["afterglow"]["in_region"]
    assert not last["fading_flare"]["in_region"] and not last["constant_variable"]["in_region"]
    assert seqs[2]["alert_position"]["source"] == "SRCLIST_MXT"
    # QTI and OTPO record the position used (keywords) and carry it in their provenance
    with fits.open(seqs[2]["products"]["QTI"]["path"]) as h:
        qti = h[0].header
    assert qti["ALRTPOS"] is True and qti["ALRTSRC"] == "SRCLIST_MXT"
    assert qti["ALRTPID"] == "mxt-1" and qti["INREGION"] is True
    assert qti["PASSOC"] > 0.99 and qti["ALRTR90"] == pytest.approx(0.4, abs=1e-3)
    with fits.open(seqs[2]["products"]["DT"]["path"]) as h:
        dt = h["DETECTIONS"].data
        assert "P_AFTERGLOW" in dt.names and len(dt) == 3
    store = ProductStore(Path(cfg.output_dir), database_url=db)
    rows = store.list(obs_id=seqs[2]["sequence"], type_code="OTPO", include_superseded=True)
    versions = sorted(rows, key=lambda r: r.version)
    # each new position is a new version of the sequence products, its position in provenance
    assert len(versions) >= 2
    assert versions[-1].provenance["content"]["alert_position"]["source"] == "SRCLIST_MXT"
    assert (
        json.loads(json.dumps(versions[0].provenance["content"]))["alert_position"]["source"]
        == "QPO_ECL"
    )
