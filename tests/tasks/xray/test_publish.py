"""Publishing the MXT products through the catalogue: names, links, provenance, versions."""

from __future__ import annotations

from pathlib import Path

from astropy.io import fits
from svomflow.config import load_instrument
from svomflow.products import ProductStore
from svomflow.products.catalogue.publish import CataloguePublisher
from svomflow.simulation.mxt import register_calibration_files
from svomflow.tasks.step import resolve_pipeline_calibration, run_plain
from svomflow.tasks.xray.pipeline import MXT_PIPELINE, MXTAnalysisConfig, MXTRequest


def test_publish_links_records_and_versions_the_products(mxt_obs, tmp_path):
    d, truth, _ = mxt_obs
    files = truth["files"]
    inst = load_instrument("mxt")
    root = register_calibration_files(files["calibration"], d, inst, caldb=tmp_path / "caldb")
    request = MXTRequest(
        tuple(str(d / f) for f in files["l1"]), str(d / files["attitude"]), str(d / files["saa"])
    )
    cfg = MXTAnalysisConfig()
    # selected in the CALDB for the observation start, as the flow's first task does
    cal = resolve_pipeline_calibration(MXT_PIPELINE, request, cfg, caldb_root=root)
    assert {r.codename for r in cal.refs()} == {"GAIN", "CTI", "PATTERN", "PSF"}
    store = ProductStore(tmp_path / "products")
    inputs = [*request.l1_files, request.attitude_file, request.saa_file]

    def publish(config):
        pub = CataloguePublisher(store, obs_id="obs1", flow_name="mxt_analysis", config=config,
                                 inputs=inputs, calibration=cal.refs())  # fmt: skip
        outcome, _ = run_plain(MXT_PIPELINE, request, config, calibration=cal, publisher=pub)
        # keyed like the file names: <TYPE>_<INSTRUMENT> (per-source: MXT-Snn)
        return outcome, {f"{r.type_code}_{r.instrument}": r for r in pub.refs}

    outcome, first = publish(cfg)
    n_src = len(outcome.sources)
    assert n_src >= 1
    per_source = {
        f"{f}_MXT-S{k:02d}" for f in ("ARF", "PHA", "LC", "LC-PREVIEW") for k in range(1, n_src + 1)
    }
    assert set(first) == {"EVT_MXT", "SRCLIST_MXT", "QIMG_MXT", "RMF_MXT", *per_source}
    assert all(r.created_new and r.version == 1 for r in first.values())
    pha = Path(first["PHA_MXT-S01"].path)
    with fits.open(pha) as hdul:
        # the spectrum names its responses relative to its own folder: XSPEC and the
        # spectral loader find them from there
        spec = hdul["SPECTRUM"].header
        assert spec["ANCRFILE"] == Path(first["ARF_MXT-S01"].path).name  # same folder
        assert (pha.parent / spec["RESPFILE"]).resolve() == Path(first["RMF_MXT"].path).resolve()
        assert spec["RESPFILE"].startswith("../MXT/")
        assert hdul[0].header["CALFL01"] and hdul[0].header["NINPUTS"] == len(inputs)
    with fits.open(first["SRCLIST_MXT"].path) as hdul:
        assert len(hdul["SRCLIST"].data) == n_src
    row = store.get(first["SRCLIST_MXT"].id)
    assert row is not None
    used = {(c["codename"], c["index_version"]) for c in row.provenance["calibration"]}
    # the source list depends on all four files (events calibrated, then the PSF fit)
    assert {c for c, _ in used} == {"GAIN", "CTI", "PATTERN", "PSF"}
    assert all(v is not None for _, v in used)
    rmf = store.get(first["RMF_MXT"].id)
    assert rmf is not None and rmf.provenance["calibration"] == []  # instrument data only
    # the same inputs, configuration and calibration: the same products, nothing rewritten
    _, again = publish(cfg)
    assert (
        again["SRCLIST_MXT"].id == first["SRCLIST_MXT"].id and not again["SRCLIST_MXT"].created_new
    )
    # a new configuration: version 2, the first one kept but superseded
    new_cfg = MXTAnalysisConfig.model_validate({"products": {"lc_min_counts": 25}})
    _, v2 = publish(new_cfg)
    assert v2["SRCLIST_MXT"].version == 2 and Path(first["SRCLIST_MXT"].path).is_file()
    old = store.get(first["SRCLIST_MXT"].id)
    assert old is not None and old.superseded and old.superseded_by == v2["SRCLIST_MXT"].id
