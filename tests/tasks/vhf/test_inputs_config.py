"""VHF inputs (instrument grouping, T0 choice, checks) and the layered configuration."""

from __future__ import annotations

import pytest
from svomflow.errors import ConfigError, InputDataError
from svomflow.flows.vhf import load_vhf_config
from svomflow.tasks.vhf.inputs import choose_t0, load_inputs, peek_headers
from svomflow.tasks.vhf.timing import clip_band


def test_instruments_grouped_and_t0_from_the_imaging_trigger(short_grb_files) -> None:
    files, truth = short_grb_files
    heads = peek_headers(files)
    assert {h.instrument for h in heads} == {"ECLAIRS", "GRM"}
    inp = load_inputs(files)
    ecl, grm = inp.instruments["ECLAIRS"], inp.instruments["GRM"]
    assert ecl.imaging is not None and grm.imaging is None  # imaging comes from the definition
    assert grm.events.detectors == ("GRD01", "GRD02", "GRD03")
    onboard = truth["instruments"]["eclairs"]["onboard_trigger"]
    assert inp.t0 == pytest.approx(onboard["time"] if onboard else truth["t0"])
    # the caller's t0 wins, and the same files with the resolved t0 share the cache
    assert choose_t0(heads, 123.0) == 123.0
    assert load_inputs(files, inp.t0) is inp
    assert ecl.energy_range_kev == (4.0, 150.0)


def test_t0_outside_and_missing_files_are_errors(short_grb_files, tmp_path) -> None:
    files, truth = short_grb_files
    with pytest.raises(InputDataError, match="outside the data"):
        load_inputs(files[1:], truth["t0"] + 1e4)
    with pytest.raises(InputDataError, match="no such file"):
        load_inputs([str(tmp_path / "missing.fits")])
    with pytest.raises(InputDataError, match="no event files"):
        load_inputs([])


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
