"""Which masters a frame needs: one requirement per selection, the dark's fallback, sharing."""

from __future__ import annotations

import datetime as _dt

import numpy as np
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.instruments.ccd_camera import load_camera
from svomflow.products.ccd_masters import MasterFrame
from svomflow.tasks.ccd.master_selection import master_selection, pick_master

T = _dt.datetime(2026, 11, 24, 0, 42, tzinfo=_dt.UTC)


def test_dark_prefers_its_exposure_then_falls_back() -> None:
    cam = load_camera()
    dark = master_selection(cam, "dark", T, temperature=-100.0, exptime=60.0, filter="r")
    first, fallback = dark.requirements(optional=False)
    assert first.boundary_values == {"CCDTEMP": -100.0, "EXPTIME": 60.0} and first.optional
    assert fallback.boundary_values == {"CCDTEMP": -100.0} and not fallback.optional
    assert dark.filter == "NONE" and first.time == T
    # an unknown temperature selects by time only, without bounds
    nan = master_selection(cam, "dark", T, temperature=float("nan"), exptime=60.0)
    (only,) = nan.requirements(optional=True)
    assert only.boundary_values == {} and only.optional


def test_names_share_equal_selections_only() -> None:
    cam = load_camera()
    a = master_selection(cam, "flat", T, filter="r")
    assert a.names() == master_selection(cam, "flat", T, filter="r").names()
    assert a.names() != master_selection(cam, "flat", T, filter="g").names()
    later = T + _dt.timedelta(seconds=1)
    assert a.names() != master_selection(cam, "flat", later, filter="r").names()
    bias = master_selection(cam, "bias", T, filter="r", temperature=-100.0, exptime=60.0)
    (req,) = bias.requirements(optional=False)
    assert req.filter == "NONE" and req.boundary_values == {}  # a bias is selected by time


def test_pick_master_takes_the_first_present(tmp_path) -> None:
    cam = load_camera()
    zeros = np.zeros((4, 4), np.float32)
    d = MasterFrame("DARK", zeros, zeros, np.ones((4, 4), np.int16), {"CCDTEMP": -100.0})
    path = d.write(tmp_path / "dark.fits")
    sel = master_selection(cam, "dark", T, temperature=-100.0, exptime=60.0)
    exact, fallback = sel.names()
    cal = CalibrationSet.from_files({f"{cam.name}:DARK": path})
    got = pick_master(cal, sel)  # a notebook's set: one master per code
    assert got is not None and got[1]["source"] == "override"
    current = master_selection(cam, "dark", T, temperature=-100.0, role="current")
    assert pick_master(cal, current) is None  # a role never takes the generic file
    assert exact != fallback and exact.startswith(f"{cam.name}:DARK:")
