"""The one burst-event reader: CALDB channel bounds and dead time, pixels, foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.instruments.channels import EnergyBounds
from svomflow.instruments.dead_time import DeadTime
from svomflow.products.burst_events import read_burst_events


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short simulated burst (ECLAIRs + GRM) with its true calibration files."""
    import os

    from svomflow.simulation.scenario import load_scenario, run_scenario

    out = tmp_path_factory.mktemp("burst")
    old = os.environ.get("SVOMFLOW_HOME")
    os.environ["SVOMFLOW_HOME"] = str(out / "home")
    try:
        run_scenario(load_scenario("short_grb"), out / "sim", seed=3)
    finally:
        if old is None:
            del os.environ["SVOMFLOW_HOME"]
        else:
            os.environ["SVOMFLOW_HOME"] = old
    return out / "sim"


def _calibration(sim: Path) -> CalibrationSet:
    truth = json.loads((sim / "truth.json").read_text())
    files = {
        f"{inst}:{code}": sim / name
        for inst in ("eclairs", "grm")
        for code, name in truth["instruments"][inst]["files"]["calibration"].items()
    }
    return CalibrationSet.from_files(files)


def test_both_instruments_on_one_time_axis_with_caldb_bounds(sim: Path) -> None:
    cal = _calibration(sim)
    ebounds = {k: cal.get(k, "EBOUNDS") for k in ("eclairs", "grm")}
    dead = {k: cal.get(k, "DEADTIME") for k in ("eclairs", "grm")}
    burst = read_burst_events(
        [sim / "eclairs_l1_events.fits", sim / "grm_l1_events.fits"],
        ebounds=ebounds,
        dead_time=dead,
    )
    ecl, grm = burst.get("eclairs"), burst.get("GRM")
    assert ecl is not None and grm is not None
    # t0: the imaging instrument's on-board trigger; this faint short burst did not trigger
    # ECLAIRs on board, so the GRM's TRIGTIME is taken
    assert ecl.trigger_time is None and burst.t0 == grm.trigger_time
    assert ecl.imaging and not grm.imaging
    assert ecl.events.pixel_y is not None and ecl.events.pixel_y.size == ecl.events.size
    with fits.open(sim / "eclairs_l1_events.fits") as h:
        pi = np.asarray(h["EVENTS"].data["PI"])
        ys = np.asarray(h["EVENTS"].data["Y"])
    # energies are channel midpoints of the CALDB table; pixels follow their events
    eb = ebounds["eclairs"]
    assert np.allclose(np.sort(ecl.events.energy), np.sort(eb.midpoints(pi)))
    assert np.array_equal(np.sort(ecl.events.pixel_y), np.sort(ys))
    # the GRM's dead time per event is its detector's CALDB value
    tau = dead["grm"]
    for k, det in enumerate(grm.events.detectors):
        assert np.all(grm.events.deadtime[grm.events.detector == k] == tau.of(det))
    assert not any("differs from the CALDB" in f for f in ecl.flags + grm.flags)


def test_a_different_caldb_table_is_used_and_flagged(sim: Path) -> None:
    shifted = EnergyBounds(
        0, np.geomspace(16.0, 5100.0, 129)[:-1], np.geomspace(16.0, 5100.0, 129)[1:]
    )
    burst = read_burst_events(
        [sim / "grm_l1_events.fits"],
        ebounds={"grm": shifted},
        dead_time={"grm": DeadTime({}, default=2e-5)},
    )
    grm = burst.get("grm")
    assert grm is not None
    assert any("EBOUNDS of the file differs from the CALDB's" in f for f in grm.flags)
    assert grm.events.energy.min() >= 16.0
    assert np.all(grm.events.deadtime == 2e-5)


def test_without_ebounds_in_the_file_the_caldb_one_is_needed(sim: Path, tmp_path: Path) -> None:
    with fits.open(sim / "grm_l1_events.fits") as h:
        kept = fits.HDUList([x.copy() for x in h if x.name != "EBOUNDS"])
    bare = tmp_path / "grm_noebounds.fits"
    kept.writeto(bare)
    with pytest.raises(InputDataError, match="neither the file nor the CALDB"):
        read_burst_events([bare])
    cal = _calibration(sim)
    burst = read_burst_events([bare], ebounds={"grm": cal.get("grm", "EBOUNDS")})
    assert burst.get("grm") is not None


def test_a_foreign_gbm_file_carries_its_own_calibration(shared_data: Path) -> None:
    tte = shared_data / "gbm" / "bn080916009" / "glg_tte_n3_bn080916009_v01.fit.gz"
    burst = read_burst_events([tte])
    (gbm,) = burst.instruments.values()
    assert gbm.definition is None and gbm.key == "gbm"
    assert burst.t0 == pytest.approx(243216766.614, abs=1e-3)  # the catalog trigger MET
    assert gbm.events.size == 451_128
    assert not gbm.imaging


def test_simulation_registers_its_calibration_once(sim: Path, tmp_path: Path) -> None:
    from svomflow.calibration.caldb import open_caldb
    from svomflow.config import load_instrument
    from svomflow.simulation.calibration import register_calibration

    root = sim.parent / "home" / "caldb"
    db = open_caldb(root)
    entries = db.list()
    assert {(e.instrument, e.codename) for e in entries} == {
        ("ECLAIRS", "EBOUNDS"), ("ECLAIRS", "BADPIX"), ("ECLAIRS", "DEADTIME"),
        ("ECLAIRS", "RSPPAR"), ("GRM", "EBOUNDS"), ("GRM", "DEADTIME"), ("GRM", "RSPPAR"),
    }  # fmt: skip
    inst = load_instrument("grm")
    again = register_calibration({"EBOUNDS": sim / "grm_ebounds.fits"}, inst, caldb_root=root)
    assert again == {"EBOUNDS": "already current"}
    assert len(open_caldb(root).list()) == len(entries)
