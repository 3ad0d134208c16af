"""CALDB files of ECLAIRs and the GRM: every format round-trips to the same numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.channels import EnergyBounds
from svomflow.instruments.dead_time import DeadTime
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.instruments.grm_response import GRMResponseModel, grm_response
from svomflow.instruments.pixels import PixelMap
from svomflow.products.calibration_files import (
    read_badpix,
    read_dead_time,
    read_ebounds,
    read_response_model,
    write_badpix,
    write_dead_time,
    write_ebounds,
    write_response_model,
)

IDS = {"telescope": "SVOM", "instrument": "GRM"}


def test_grm_response_model_read_back_gives_the_same_matrix(tmp_path: Path) -> None:
    from svomflow.instruments.attitude import Attitude

    truth = GRMResponseModel.from_instrument(load_instrument("grm"))
    path = write_response_model(tmp_path / "rsppar.fits", truth, **IDS)
    back = read_response_model(path)
    assert isinstance(back, GRMResponseModel)
    assert back == truth
    att = Attitude(40.0, 5.0, 0.0)
    for det in truth.detectors:
        a = grm_response((30.0, 10.0), detector=det, model=truth, attitude=att)
        b = grm_response((30.0, 10.0), detector=det, model=back, attitude=att)
        np.testing.assert_array_equal(a[2], b[2])  # bit for bit: stored in double precision
        assert a[2].sum() > 0


def test_eclairs_response_model_round_trips(tmp_path: Path) -> None:
    truth = EclairsResponse.from_instrument(load_instrument("eclairs"))
    back = read_response_model(
        write_response_model(tmp_path / "e.fits", truth, telescope="SVOM", instrument="ECLAIRS")
    )
    assert isinstance(back, EclairsResponse)
    e = np.linspace(1.0, 200.0, 500)
    np.testing.assert_array_equal(truth.efficiency(e), back.efficiency(e))
    np.testing.assert_array_equal(truth.sigma_kev(e), back.sigma_kev(e))
    assert back.n_channels == truth.n_channels and back.time_resolution_s == truth.time_resolution_s


def test_ebounds_badpix_deadtime_round_trip(tmp_path: Path) -> None:
    edges = np.geomspace(15.0, 5000.0, 129).astype(np.float32).astype(float)
    eb = EnergyBounds(0, edges[:-1], edges[1:])
    back = read_ebounds(write_ebounds(tmp_path / "eb.fits", eb, **IDS))
    assert back.same_as(eb) and back.first_channel == 0
    np.testing.assert_array_equal(
        back.midpoints(np.array([0, 127])), eb.midpoints(np.array([0, 127]))
    )

    dead = np.zeros((80, 80), bool)
    dead[3, 7] = dead[79, 0] = True
    noisy = np.zeros((80, 80), bool)
    noisy[10, 10] = True
    pm = read_badpix(write_badpix(tmp_path / "bp.fits", PixelMap(dead, noisy), **IDS))
    np.testing.assert_array_equal(pm.dead, dead)
    np.testing.assert_array_equal(pm.noisy, noisy)
    assert pm.bad.sum() == 3

    dt = read_dead_time(
        write_dead_time(tmp_path / "dt.fits", DeadTime({"GRD01": 8e-6, "GRD02": 9e-6}), **IDS)
    )
    assert dt.of("GRD02") == 9e-6 and dt.of("GRD09") == 0.0 and dt.mean == pytest.approx(8.5e-6)


def test_a_wrong_file_is_refused_with_its_name(tmp_path: Path) -> None:
    p = tmp_path / "x.fits"
    fits.HDUList([fits.PrimaryHDU()]).writeto(p)
    with pytest.raises(InputDataError, match=r"x\.fits: no EBOUNDS extension"):
        read_ebounds(p)
    with pytest.raises(InputDataError, match="no PARAMS extension"):
        read_response_model(p)
    eb = EnergyBounds(0, np.array([1.0]), np.array([2.0]))
    with pytest.raises(ValueError, match="outside EBOUNDS"):
        eb.midpoints(np.array([3]))


def test_calibration_set_loads_files_by_code(tmp_path: Path) -> None:
    truth = GRMResponseModel.from_instrument(load_instrument("grm"))
    rsp = write_response_model(tmp_path / "r.fits", truth, **IDS)
    dt = write_dead_time(tmp_path / "d.fits", DeadTime({"GRD01": 1e-5}), **IDS)
    cal = CalibrationSet.from_files({"grm:RSPPAR": rsp, "grm:DEADTIME": dt})
    assert cal.get("grm", "RSPPAR") == truth
    assert cal.get("GRM", "DEADTIME").of("GRD01") == 1e-5
    assert cal.optional("eclairs", "EBOUNDS") is None
    refs = cal.refs(["DEADTIME"])
    assert len(refs) == 1 and refs[0].override and refs[0].codename == "DEADTIME"
