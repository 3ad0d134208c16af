"""The VHF pipeline without Prefect (run_plain): numbers against the injected burst, products."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.instruments.attitude import angular_separation_deg
from svomflow.products.catalogue.publish import CataloguePublisher
from svomflow.products.store import ProductRef, ProductStore
from svomflow.simulation.bench import _efficiencies, counts_durations, grb_model_from_truth
from svomflow.tasks.step import PlainRunner, run_plain
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.inputs import VHFRequest
from svomflow.tasks.vhf.outcome import VHFOutcome, summary
from svomflow.tasks.vhf.pipeline import VHF_PIPELINE


def _run(
    files: Sequence[str], calibration: CalibrationSet, cfg: VHFConfig | None = None
) -> tuple[VHFOutcome, PlainRunner]:
    return run_plain(
        VHF_PIPELINE, VHFRequest.of(files, "s4"), cfg or VHFConfig(), calibration=calibration
    )


def _publish(
    runner: PlainRunner, store: ProductStore, cfg: VHFConfig, cal: CalibrationSet, files: list[str]
) -> list[ProductRef]:
    """Publish what a plain run made, as the flow's publisher would."""
    pub = CataloguePublisher(
        store, obs_id="s4", flow_name="test", config=cfg, inputs=files, calibration=cal.refs()
    )
    steps = {s.name: s for s in VHF_PIPELINE.steps}
    for call in runner.calls:
        if call.products:
            pub.publish(steps[call.step], list(call.products))
    return pub.refs


@pytest.fixture(scope="module")
def short_result(short_grb):
    cfg = VHFConfig()
    cfg.durations.n_sims = 200
    outcome, runner = _run(short_grb.files, short_grb.calibration, cfg)
    return outcome, runner, cfg


def test_short_grb_numbers(short_result, short_grb) -> None:
    outcome, _, _ = short_result
    s = summary(outcome)
    truth = short_grb.truth
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


def test_steps_return_their_products_and_publishing_is_idempotent(
    short_result, short_grb, tmp_path
) -> None:
    _, runner, cfg = short_result
    made = {(p.type_code, p.instrument) for p in runner.products()}
    assert {("QT90", "GRM"), ("QPO", "ECL"), ("QPOPLOT", "ECL"), ("RSP", "GRM-GRD03")} <= made
    store = ProductStore(tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}")
    cal = short_grb.calibration
    refs = _publish(runner, store, cfg, cal, short_grb.files)
    names = {f"{r.type_code}_{r.instrument}" for r in refs}
    assert {"QT90_GRM", "QT90_ECL", "QPO_ECL", "QPO_GRM", "QSP_GRM", "CRCLASS_ECLGRM"} <= names
    assert {"QLCPLOT_ECL", "QLCPLOT_GRM", "QPOPLOT_ECL"} <= names
    # the same inputs, configuration and calibration give the same product identities
    again = _publish(runner, store, cfg, cal, short_grb.files)
    assert [r.id for r in again] == [r.id for r in refs] and not any(r.created_new for r in again)
    by = {f"{r.type_code}_{r.instrument}": r.path for r in refs}
    with fits.open(by["QPF_GRM"]) as h:
        assert list(h[1].data["TIMESCALE"]) == [0.064, 0.256, 1.024]
        assert h[1].columns["RATE"].unit == "count/s" and h[1].header["E_MIN"] == 50.0
    with fits.open(by["QPO_ECL"]) as h:
        assert h[1].columns["ERR_RAD"].unit == "arcmin" and np.isfinite(h[1].data["RA"][0])
    with fits.open(by["RSP_GRM-GRD01"]) as h:
        assert h["SPECRESP MATRIX"].header["HDUCLAS3"] == "FULL"
    with open(by["QPOPLOT_ECL"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # each product records the calibration files of its step's codes
    qpo = next(r for r in refs if r.type_code == "QPO" and r.instrument == "ECL")
    codes = {c["codename"] for c in store.get(qpo.id).provenance["calibration"]}
    assert codes == {"BADPIX", "EBOUNDS"}


def test_grm_only_counts_path(grm_only) -> None:
    outcome, _ = _run(grm_only.files, grm_only.calibration)
    s = summary(outcome)
    src = grm_only.truth["sources"][0]
    assert s["instruments"] == ["GRM"] and s["position"]["instrument"] == "GRM"
    g = s["positions"]["GRM"]
    sep = float(angular_separation_deg(g["ra_deg"], g["dec_deg"], src["ra_deg"], src["dec_deg"]))
    assert sep < 2 * g["error_radius_90_deg"]
    assert s["classification"]["class"] == "long"
    assert "ECLAIRS" not in s["per_instrument"]


def test_tail_at_the_end_of_the_data_gives_a_flagged_t90_product(sim_factory, tmp_path) -> None:
    """A 20 s burst whose data stop 8 s after T0: no post-burst plateau, so no T90 number.

    The flow must not fail nor report a duration: QT90 is published with QUALITY
    TAIL_AT_DATA_END, a reason, NaN durations and an excess interval reaching the data end.
    """
    sim = sim_factory("grm_only_grb", 2, "time.stop_s=8")
    cfg = VHFConfig(previews=False)
    outcome, runner = _run(sim.files, sim.calibration, cfg)
    s = summary(outcome)
    per = s["per_instrument"]["GRM"]
    assert per["t90"] is None and per["t90_quality"] == "TAIL_AT_DATA_END"
    assert "end of the data" in per["t90_quality_reason"]
    assert any("TAIL_AT_DATA_END" in f for f in s["flags"])
    assert s["classification"] is None  # no T90, no class
    store = ProductStore(tmp_path / "p", f"sqlite:///{tmp_path / 'db.sqlite'}")
    refs = _publish(runner, store, cfg, sim.calibration, sim.files)
    by = {f"{r.type_code}_{r.instrument}": r.path for r in refs}
    assert "CRCLASS_GRM" not in by and "QLCPLOT_GRM" not in by  # no class, no previews
    with fits.open(by["QT90_GRM"]) as h:
        assert h[0].header["QUALITY"] == "TAIL_AT_DATA_END"
        assert "no post-burst" in h[0].header["QUALREAS"]
        row = h["T90"].data[0]
        assert np.isnan(row["T90"]) and np.isnan(row["T90_ERR"])
        stop = sim.truth["t_stop"] - outcome.t0
        assert row["SRC_STOP"] == pytest.approx(row["DATA_STOP"]) and row["SRC_START"] < 0.5
        assert row["DATA_STOP"] == pytest.approx(stop, abs=0.01)
    # the untruncated products of the same flow keep QUALITY GOOD/FLAGGED
    with fits.open(by["QLC_GRM"]) as h:
        assert h[0].header["QUALITY"] in ("GOOD", "FLAGGED")


def test_burst_outside_the_eclairs_field_with_eclairs_data(sim_factory) -> None:
    """ECLAIRs data without the burst (50 deg off axis), the GRM with it: a GRM-only result.

    ECLAIRs finds no burst, but its image-trigger search still ran: the summary must carry
    it without ECLAIRs timing (it raised KeyError before), and the one GRM detector facing
    the burst must not make a 20 s GRB a particle hit.
    """
    sim = sim_factory("grm_only_grb", 2, "instruments=[eclairs, grm]", "bright_sources=false")
    outcome, runner = _run(sim.files, sim.calibration)
    s = summary(outcome)
    ecl = s["per_instrument"]["ECLAIRS"]
    assert ecl["t90"] is None and "no burst" in ecl["failed"]
    assert "image_trigger" in ecl
    assert s["per_instrument"]["GRM"]["t90"] is not None
    assert s["classification"]["class"] == "long", s["classification"]
    assert any("ECLAIRS: no burst found" in w for w in runner.warnings)
    # an instrument without the burst makes no product
    assert not [p for p in runner.products() if p.instrument == "ECL"]


def test_every_fits_product_is_written_as_astropy_writes_it(short_result, monkeypatch) -> None:
    """The publisher writes FITS products from their models (fits_bytes), not through HDUs:
    each VHF product is the file astropy's writeto gives, byte for byte."""
    import io

    from astropy.io.fits.hdu.base import _ValidHDU
    from svomflow.products.catalogue.fits_bytes import fits_bytes
    from svomflow.products.catalogue.models import FitsModel

    when = "2026-01-02T03:04:05"
    monkeypatch.setattr(_ValidHDU, "_get_timestamp", lambda self: when)
    prov = [("PRODTYPE", "QT90", "svomflow product type code"), ("PRODVER", 1, "version")]
    _, runner, _ = short_result
    models = [p for p in runner.products() if isinstance(p.model, FitsModel)]
    assert len(models) >= 20
    for p in models:
        hdul = p.model.to_fits()
        for key, value, comment in prov:
            hdul[0].header[key] = (value, comment)
        buf = io.BytesIO()
        hdul.writeto(buf, checksum=True)
        assert fits_bytes(p.model, prov, when=when) == buf.getvalue(), (p.type_code, p.instrument)
