"""VHF inputs (instruments, T0, CALDB calibration, checks) and the layered configuration."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config import load_instrument
from svomflow.errors import CalibrationNotFoundError, ConfigError, InputDataError
from svomflow.flows.vhf import load_vhf_config
from svomflow.instruments.pixels import PixelMap
from svomflow.products.burst_events import choose_t0, peek_headers
from svomflow.products.calibration_files import write_badpix
from svomflow.simulation.calibration import register_calibration
from svomflow.tasks.step import resolve_pipeline_calibration
from svomflow.tasks.vhf.bands import clip_band, energy_range_kev
from svomflow.tasks.vhf.inputs import VHFRequest, observe, read
from svomflow.tasks.vhf.pipeline import VHF_PIPELINE


def test_instruments_and_t0_from_the_imaging_trigger(short_grb) -> None:
    request = VHFRequest.of(short_grb.files)
    obs = observe(request)
    assert obs.instruments == ("eclairs", "grm")
    assert obs.time.startswith("2026-")  # MJDREF 59945 + 1e8 s, in UTC
    inputs = read(request, short_grb.calibration)
    ecl, grm = inputs.burst.get("ECLAIRS"), inputs.burst.get("grm")
    assert ecl is not None and grm is not None
    assert ecl.imaging and not grm.imaging  # the pixels come with the definition's mask
    assert grm.events.detectors == ("GRD01", "GRD02", "GRD03")
    onboard = short_grb.truth["instruments"]["eclairs"]["onboard_trigger"]
    assert inputs.burst.t0 == pytest.approx(onboard["time"] if onboard else short_grb.truth["t0"])
    assert choose_t0(peek_headers(short_grb.files), 123.0) == 123.0  # the caller's t0 wins
    assert energy_range_kev(ecl, short_grb.calibration) == (4.0, 150.0)


def test_t0_outside_and_missing_files_are_errors(short_grb, tmp_path) -> None:
    with pytest.raises(InputDataError, match="outside the data"):
        read(VHFRequest.of(short_grb.files[1:], t0=short_grb.truth["t0"] + 1e4), CalibrationSet())
    with pytest.raises(InputDataError, match="no such file"):
        observe(VHFRequest.of([tmp_path / "missing.fits"]))
    with pytest.raises(InputDataError, match="no event files"):
        observe(VHFRequest(()))


def test_calibration_comes_from_the_caldb_or_an_override(short_grb, tmp_path) -> None:
    """Every code the steps declare, for every instrument that lists it; one error for all.

    The response models (RSPPAR) are optional for a quick analysis: without them the run goes
    on without count-ratio position and quick spectrum.
    """
    request = VHFRequest.of(short_grb.files)
    cfg = load_vhf_config(["eclairs", "grm"])
    with pytest.raises(CalibrationNotFoundError) as err:
        resolve_pipeline_calibration(VHF_PIPELINE, request, cfg)  # an empty CALDB
    for key in ("eclairs:EBOUNDS", "eclairs:BADPIX", "eclairs:DEADTIME", "grm:EBOUNDS"):
        assert key in str(err.value)
    assert "RSPPAR" not in str(err.value)
    everything = {
        name: {c: short_grb.out / f for c, f in v["files"]["calibration"].items()}
        for name, v in short_grb.truth["instruments"].items()
    }
    for name, files in everything.items():
        required = {c: p for c, p in files.items() if c != "RSPPAR"}
        register_calibration(required, load_instrument(name))
    cal = resolve_pipeline_calibration(VHF_PIPELINE, request, cfg)
    assert not any(key.endswith(":RSPPAR") for key in cal.objects)
    for name, files in everything.items():
        register_calibration(files, load_instrument(name))
    cal = resolve_pipeline_calibration(VHF_PIPELINE, request, cfg)
    assert set(cal.objects) == {
        "eclairs:EBOUNDS", "eclairs:BADPIX", "eclairs:DEADTIME", "eclairs:RSPPAR",
        "grm:EBOUNDS", "grm:DEADTIME", "grm:RSPPAR",
    }  # fmt: skip
    assert not cal.get("eclairs", "BADPIX").dead.any()
    # a bad-pixel map given by path replaces the CALDB's for that instrument only
    dead = np.zeros((80, 80), bool)
    dead[3, 4] = True
    pixels = PixelMap(dead, np.zeros_like(dead))
    mine = write_badpix(tmp_path / "bad.fits", pixels, telescope="SVOM", instrument="ECLAIRS")
    cfg.override_badpix = {"eclairs": str(mine)}
    cal = resolve_pipeline_calibration(VHF_PIPELINE, request, cfg)
    assert cal.get("eclairs", "BADPIX").dead[3, 4]
    assert [r.override for r in cal.refs(["BADPIX"])] == [True]


def test_caldb_channel_bounds_replace_the_files(grm_only, tmp_path) -> None:
    """A GRM file without EBOUNDS reads with the CALDB's; a foreign one cannot be read."""
    src = grm_only.files[0]
    with fits.open(src) as h:
        hdus = fits.HDUList([x.copy() for x in h if x.name != "EBOUNDS"])
        hdus.writeto(tmp_path / "noeb.fits")
        for x in hdus:
            x.header["INSTRUME"] = "FOO"
        hdus.writeto(tmp_path / "foo.fits")
    got = read(VHFRequest.of([tmp_path / "noeb.fits"]), grm_only.calibration).burst.get("grm")
    ref = read(VHFRequest.of([src]), grm_only.calibration).burst.get("grm")
    assert got is not None and ref is not None
    assert np.array_equal(got.events.energy, ref.events.energy)
    with pytest.raises(InputDataError, match="EBOUNDS"):
        read(VHFRequest.of([tmp_path / "foo.fits"]), grm_only.calibration)


def test_a_detector_missing_from_the_response_model_is_an_input_error(grm_only, tmp_path) -> None:
    with fits.open(grm_only.files[0]) as h:
        keep = [x.copy() for x in h if x.header.get("DETNAM") != "GRD03"]
    fits.HDUList(keep).writeto(tmp_path / "two.fits")
    with pytest.raises(InputDataError, match=r"data lack \['GRD03'\]"):
        read(VHFRequest.of([tmp_path / "two.fits"]), grm_only.calibration)


def test_config_layers_and_rejection() -> None:
    cfg = load_vhf_config(["ECLAIRS", "GRM"], overrides=["durations.n_sims=50"], band=(50, 300))
    assert cfg.durations.n_sims == 50 and cfg.band_kev == (50.0, 300.0)
    assert [s.name for s in cfg.classification.known_sources][:1] == ["Crab"]  # packaged file
    with pytest.raises(ConfigError, match=r"durations\.n_simz: unknown key"):
        load_vhf_config(["GRM"], overrides=["durations.n_simz=5"])
    with pytest.raises(ConfigError, match="lc_dt_s"):
        load_vhf_config(["GRM"], overrides=["lc_dt_s=-1"])


def test_clip_band() -> None:
    assert clip_band((50.0, 300.0), (4.0, 150.0)) == (50.0, 150.0)
    assert clip_band((200.0, 300.0), (4.0, 150.0)) is None
