"""Publishing the MXT products: names, provenance, idempotence and versions."""

from __future__ import annotations

from pathlib import Path

from astropy.io import fits
from svomflow.products import ProductStore, Provenance
from svomflow.tasks.xray.pipeline import (
    MXTAnalysisConfig,
    step_calibrate,
    step_detect,
    step_merge,
    step_products,
)
from svomflow.tasks.xray.publish import calibration_refs, publish_mxt_products


def test_publish_is_idempotent_and_versions_on_new_config(mxt_obs, tmp_path):
    d, truth, _ = mxt_obs
    files = truth["files"]
    cal = {k: str(d / v) for k, v in files["calibration"].items()}
    work = tmp_path / "work"
    work.mkdir()
    m = step_merge([str(d / f) for f in files["l1"]], str(d / files["attitude"]),
                   str(d / files["saa"]), str(work))  # fmt: skip
    c = step_calibrate(m["path"], cal, str(work))
    cfg = MXTAnalysisConfig()
    det = step_detect(c["path"], cal["psf"], str(work), cfg.detect)
    prods = step_products(c["path"], det["path"], cal["psf"], str(work), cfg)
    store = ProductStore(tmp_path / "products")
    inputs = [str(d / f) for f in files["l1"]]
    cal_info = {k: {"codename": k.upper(), "path": v, "index_version": 3} for k, v in cal.items()}

    def publish(config):
        prov = Provenance.start(config=config, inputs=inputs,
                                calibration=calibration_refs(cal_info), flow_name="mxt_analysis")  # fmt: skip
        return publish_mxt_products(store, obs_id="obs1", instrument="MXT", provenance=prov,
                                    events_file=c["path"], srclist_file=det["path"], products=prods)  # fmt: skip

    first = publish(cfg.model_dump(mode="json"))
    n_src = det["n_sources"]
    assert len(first["spectra"]) == len(first["lightcurves"]) == n_src
    assert len(first["previews"]) == 1 + n_src
    assert all(r.created_new and r.version == 1 for r in first["spectra"])
    with fits.open(first["spectra"][0].path) as hdul:
        assert hdul["SPECTRUM"].header["ANCRFILE"] == Path(first["arfs"][0].path).name
        assert hdul[0].header["CALFL01"] and hdul[0].header["NINPUTS"] == len(inputs)
    row = store.get(first["srclist"].id)
    assert {c["index_version"] for c in row.provenance["calibration"]} == {3}
    # the same inputs, configuration and calibration: the same products, nothing rewritten
    again = publish(cfg.model_dump(mode="json"))
    assert again["srclist"].id == first["srclist"].id and not again["srclist"].created_new
    # a new configuration: version 2, the first one kept but superseded
    new_cfg = cfg.model_copy(update={"lc_min_counts": 25}).model_dump(mode="json")
    v2 = publish(new_cfg)
    assert v2["srclist"].version == 2 and Path(first["srclist"].path).is_file()
    old = store.get(first["srclist"].id)
    assert old.superseded and old.superseded_by == v2["srclist"].id
