"""The MXT steps as pure functions: calibration objects in, data objects and products out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config import load_instrument
from svomflow.errors import ConfigError, InputDataError
from svomflow.instruments.mxt_calibration import (
    CTIModel,
    GainTable,
    PatternTable,
    PSFModel,
    cti_hdu,
    gain_hdu,
    pattern_hdu,
    psf_hdu,
    read_cti,
    read_gain,
    read_pattern,
    read_psf,
)
from svomflow.products.catalogue import product_type
from svomflow.products.catalogue.mxt import source_code, source_index
from svomflow.tasks.step import Observation, collect_overrides, run_plain
from svomflow.tasks.xray.pipeline import (
    MXT_PIPELINE,
    MXTAnalysisConfig,
    MXTRequest,
    with_calibration_files,
)
from svomflow.tasks.xray.steps import CalibrateConfig, MergeConfig, calibrate, merge

INST = load_instrument("mxt")


def _write(hdu, path):
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def test_calibration_files_read_back_into_the_objects_written(tmp_path):
    rng = np.random.default_rng(0)
    gain = GainTable(gain=5.0 + rng.random(256), offset=40.0 + rng.random(256))
    got = read_gain(_write(gain_hdu(gain), tmp_path / "gain.fits"))
    assert np.array_equal(got.gain, gain.gain) and np.array_equal(got.offset, gain.offset)
    cti = CTIModel(cti0=1e-5, index=-0.5)
    assert read_cti(_write(cti_hdu(cti), tmp_path / "cti.fits")) == cti
    table = PatternTable(np.geomspace(0.2, 10, 25), 0.9 + 0.1 * rng.random((4, 25)))
    pat = read_pattern(_write(pattern_hdu(table), tmp_path / "pattern.fits"))
    assert np.allclose(pat.fraction, table.fraction, rtol=1e-7)  # float32 in the file
    psf = PSFModel.from_instrument(INST)
    back = read_psf(_write(psf_hdu(psf, 13.45), tmp_path / "psf.fits"))
    assert back.as_dict() == pytest.approx(psf.as_dict(), rel=1e-6)


def test_gain_table_must_cover_every_column_once(tmp_path):
    bad = gain_hdu(GainTable(gain=np.ones(4), offset=np.zeros(4)))
    bad.data["RAWX"][2] = 1  # column 2 missing, column 1 twice
    with pytest.raises(InputDataError, match="one row per column"):
        read_gain(_write(bad, tmp_path / "gain.fits"))


def _calibration(truth, d, **replace):
    files = {f"mxt:{k.upper()}": d / v for k, v in truth["files"]["calibration"].items()}
    cal = CalibrationSet.from_files(files)
    for key, obj in replace.items():
        cal.objects[key] = obj
    return cal


def test_calibrate_step_returns_events_and_the_evt_product(mxt_obs):
    d, truth, _ = mxt_obs
    files = truth["files"]
    request = MXTRequest(
        tuple(str(d / f) for f in files["l1"]), str(d / files["attitude"]), str(d / files["saa"])
    )
    cal = _calibration(truth, d)
    inputs = MXT_PIPELINE.read(request, cal)
    merged = merge(inputs, config=MergeConfig())
    obs = calibrate(merged, INST, config=CalibrateConfig(), calibration=cal)
    (evt,) = obs.products
    assert evt.type_code == "EVT" and evt.instrument == "MXT"
    assert product_type("EVT").check(evt) == []
    table = evt.model.table("EVENTS")
    assert table.card("NEVENTS") == len(obs.events) == obs.events.counts["n_calibrated"]
    # the step hands on the energies the file holds
    assert np.array_equal(table.column("ENERGY"), obs.events.energy_kev)
    assert {table.card(f"CALFIL{i:02d}") for i in range(1, 5)} == set(
        truth["files"]["calibration"].values()
    )
    # a GAIN table of another CCD is a clear input error
    small = dataclasses.replace(cal.get("mxt", "GAIN"), gain=np.ones(8), offset=np.zeros(8))
    with pytest.raises(InputDataError, match="8 columns"):
        calibrate(merged, INST, config=CalibrateConfig(),
                  calibration=_calibration(truth, d, **{"mxt:GAIN": small}))  # fmt: skip


def test_plain_run_without_products_makes_only_events_and_sources(mxt_obs):
    d, truth, _ = mxt_obs
    files = truth["files"]
    request = MXTRequest(
        tuple(str(d / f) for f in files["l1"]), str(d / files["attitude"]), str(d / files["saa"])
    )
    cfg = MXTAnalysisConfig.model_validate({"products": {"enabled": False}})
    outcome, runner = run_plain(MXT_PIPELINE, request, cfg, calibration=_calibration(truth, d))
    assert [c.step for c in runner.calls] == ["merge", "calibrate", "detect"]
    assert {p.type_code for p in runner.products()} == {"EVT", "SRCLIST", "QIMG"}
    assert outcome.mode == "general-program" and len(outcome.sources) >= 1
    assert outcome.merge.counts["n_corrupted"] == truth["n_corrupted_rows"]


def test_calibration_files_become_the_override_fields_of_every_step_using_them(tmp_path):
    cfg = with_calibration_files(MXTAnalysisConfig(), {"gain": "/g.fits", "PSF": "/p.fits"})
    assert cfg.calibrate.override_gain == "/g.fits"
    assert cfg.detect.override_psf == cfg.products.override_psf == "/p.fits"
    assert MXTAnalysisConfig().detect.override_psf is None  # the original is left alone
    needs = MXT_PIPELINE.needs(Observation(("mxt",), "2026-01-01"), cfg)
    assert [r.name for r in needs] == ["mxt:GAIN", "mxt:CTI", "mxt:PATTERN", "mxt:PSF"]
    assert collect_overrides(MXT_PIPELINE, cfg, needs) == {
        "mxt:GAIN": "/g.fits",
        "mxt:PSF": "/p.fits",
    }
    with pytest.raises(ConfigError, match="gain, cti, pattern, psf"):
        with_calibration_files(MXTAnalysisConfig(), {"saa": "/s.fits"})


def test_configuration_checks_and_older_layouts():
    with pytest.raises(ValueError, match="one PSF"):
        MXTAnalysisConfig.model_validate(
            {"detect": {"override_psf": "/a.fits"}, "products": {"override_psf": "/b.fits"}}
        )
    # any number of sources: per-source products carry the source in their instrument code
    MXTAnalysisConfig.model_validate({"detect": {"max_candidates": 60}})
    # configurations recorded before the products section (reprocessing old products)
    old = MXTAnalysisConfig.model_validate({"lc_min_counts": 25, "blocks_p0": 0.01})
    assert old.products.lc_min_counts == 25 and old.products.blocks_p0 == 0.01


def test_per_source_instrument_codes():
    assert source_code(3) == "MXT-S03" and source_index("MXT-S03") == 3
    assert source_index("MXT") is None and source_index("GRM-GRD01") is None
    assert source_index(source_code(120)) == 120
    with pytest.raises(ValueError):
        source_code(0)
    assert set(MXT_PIPELINE.output_codes) >= {"PHA", "LC", "ARF", "LC-PREVIEW", "RMF", "EVT"}
