"""resolve_calibrations: everything at once, one error naming every missing file, overrides."""

from __future__ import annotations

import pytest
from svomflow.calibration.caldb import CalibrationRequirement, resolve_calibrations
from svomflow.errors import CalibrationNotFoundError

REQS = [
    CalibrationRequirement("gain", codename="GAIN", instrument="MXT"),
    CalibrationRequirement("cti", codename="CTI", instrument="MXT", boundary_values={"energ": 1.5}),
    {"name": "psf", "codename": "PSF", "instrument": "MXT"},
]


@pytest.fixture
def filled(caldb, make_file):
    for code, bounds in (("GAIN", ()), ("CTI", ["ENERG(0.2-10)keV"]), ("PSF", ())):
        caldb.register(
            make_file(f"{code}.fits"),
            telescope="SVOM",
            instrument="MXT",
            codename=code,
            valid_from="2024-01-01",
            boundaries=bounds,
        )
    return caldb


def test_all_resolved(filled):
    got = resolve_calibrations(REQS, "2024-05-01", caldb=filled)
    assert list(got) == ["gain", "cti", "psf"]
    assert {e.codename for e in got.values()} == {"GAIN", "CTI", "PSF"}
    assert {e.index_version for e in got.values()} == {3}


def test_one_error_names_every_missing_file(filled):
    reqs = [*REQS, CalibrationRequirement("arf", codename="SPECRESP", instrument="MXT")]
    with pytest.raises(CalibrationNotFoundError) as err:
        resolve_calibrations(reqs, "2023-05-01", caldb=filled)
    msg = str(err.value)
    assert msg.startswith("4 of 4 calibration file(s) unavailable")
    for name in ("gain:", "cti:", "psf:", "arf:"):
        assert name in msg
    # Only the one really missing after the validity start.
    with pytest.raises(
        CalibrationNotFoundError, match=r"^1 of 4 .*arf: no calibration file SPECRESP"
    ):
        resolve_calibrations(reqs, "2024-05-01", caldb=filled)
    # Out-of-range boundary values are reported too; optional requirements may be absent.
    reqs = [
        CalibrationRequirement(
            "cti", codename="CTI", instrument="MXT", boundary_values={"energ": 50}
        ),
        CalibrationRequirement("arf", codename="SPECRESP", instrument="MXT", optional=True),
    ]
    with pytest.raises(CalibrationNotFoundError, match="ENERG=50"):
        resolve_calibrations(reqs, "2024-05-01", caldb=filled)


def test_overrides_and_old_context(filled, make_file, tmp_path):
    mine = make_file("my_gain.fits", "custom gain\n")
    got = resolve_calibrations(
        REQS, "2024-05-01", caldb=filled, overrides={"gain": mine, "psf": None}
    )
    assert got["gain"].source == "override" and got["gain"].path == mine.resolve()
    assert got["gain"].sha256 and got["psf"].source == "caldb"
    with pytest.raises(ValueError, match="unknown requirement"):
        resolve_calibrations(REQS, "2024-05-01", caldb=filled, overrides={"bias": mine})
    with pytest.raises(CalibrationNotFoundError, match="override for 'gain' not found"):
        resolve_calibrations(
            REQS, "2024-05-01", caldb=filled, overrides={"gain": tmp_path / "nope.fits"}
        )
    # index_version reproduces an old context: at version 2 there was no PSF yet.
    with pytest.raises(CalibrationNotFoundError, match=r"^1 of 3 .*psf"):
        resolve_calibrations(REQS, "2024-05-01", caldb=filled, index_version=2)
