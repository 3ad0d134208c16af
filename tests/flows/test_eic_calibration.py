"""The ECLAIRs calibration flow: candidates, the promotion gate and the QC history (Prefect)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from svomflow.calibration.caldb import open_caldb
from svomflow.flows.eic_calibration import eic_calibration
from svomflow.products import ProductStore
from svomflow.products.eic_calibration_files import (
    read_band_table,
    read_pixel_gain,
    read_threshold_table,
    write_pixel_spectra,
)
from svomflow.simulation.eclairs_plane import make_plane, simulate_spectra

pytestmark = pytest.mark.integration


def _spectra(tmp: Path, truth, day: float, seed: int) -> Path:  # type: ignore[no-untyped-def]
    when = truth.epoch + _dt.timedelta(days=day)
    sp = simulate_spectra(truth, when, 2 * 3600, np.random.default_rng(seed))
    return write_pixel_spectra(
        tmp / f"spectra_d{day:g}.fits", sp, telescope="SVOM", instrument="ECLAIRS"
    )


def test_weekly_calibrations_promote_and_a_gain_jump_is_refused(prefect_harness, tmp_path):  # type: ignore[no-untyped-def]
    caldb_root = str(tmp_path / "caldb")
    out = str(tmp_path / "products")
    truth = make_plane(61)
    s0 = eic_calibration(str(_spectra(tmp_path, truth, 0, 1)), out_dir=out, caldb_root=caldb_root)
    assert s0["status"] == "done"
    assert {c: v["promoted"] for c, v in s0["verdicts"].items()} == {
        "PIXGAIN": True,
        "BANDTAB": True,
        "SBNTHR": True,
    }, s0["verdicts"]
    s7 = eic_calibration(str(_spectra(tmp_path, truth, 7, 2)), out_dir=out, caldb_root=caldb_root)
    assert all(v["promoted"] for v in s7["verdicts"].values()), s7["verdicts"]
    gain7 = s7["verdicts"]["PIXGAIN"]
    assert gain7["current_entry"] == s0["verdicts"]["PIXGAIN"]["caldb_entry"]
    assert gain7["figures"]["moved_fraction"] < 0.5

    db = open_caldb(caldb_root)
    sel = db.select("PIXGAIN", instrument="ECLAIRS", time="2026-01-09T00:00:00")
    table = read_pixel_gain(sel.path)
    mid = truth.epoch + _dt.timedelta(days=7, hours=1)
    x = (59.54 - truth.offset(mid)) / truth.gain(mid)
    res = (table.gain * x + table.offset - 59.54)[~table.fallback]
    assert np.sqrt(np.mean(res**2)) < 0.06  # keV at 59.5 keV
    assert read_band_table(
        db.select("BANDTAB", instrument="ECLAIRS", time=mid).path
    ).chan_hi.shape == (80, 80, 5)
    sbn = read_threshold_table(db.select("SBNTHR", instrument="ECLAIRS", time=mid).path)
    assert abs(np.nanmedian(sbn.predicted_kev) - 4.0) < 0.25

    # a +10 % gain jump (high-voltage change): the gate refuses all three, the old stay
    jumped = dataclasses.replace(truth, gain0=truth.gain0 * 1.10)
    s14 = eic_calibration(
        str(_spectra(tmp_path, jumped, 14, 3)), out_dir=out, caldb_root=caldb_root
    )
    v = s14["verdicts"]
    assert not any(x["promoted"] for x in v.values())
    assert any("median_gain changed" in r for r in v["PIXGAIN"]["reasons"])
    assert any("gain_promoted" in r for r in v["SBNTHR"]["reasons"])
    after = db.select("PIXGAIN", instrument="ECLAIRS", time="2026-01-20T00:00:00")
    assert after.sha256 == sel.sha256

    hist = Table.read(v["PIXGAIN"]["qc_history"], hdu="CALQCH")
    rows = hist[hist["FIGURE"] == "median_gain"]
    assert list(rows["PROMOTED"]) == [True, True, False]
    assert Path(v["PIXGAIN"]["qc_plot"]).is_file()
    store = ProductStore(out)
    codes = {(r.type_code, r.instrument) for r in store.list()}
    for code in ("PIXGAIN", "BANDTAB", "SBNTHR"):
        assert (code, "ECL") in codes and ("CALQCH", f"ECLAIRS-{code}") in codes
    cand = next(r for r in store.list(type_code="PIXGAIN") if r.obs_id == "eiccal-20260115T000000")
    assert cand.provenance["inputs"][0]["path"].endswith("spectra_d14.fits")


def test_scheduled_run_without_spectra_is_empty(prefect_harness, tmp_path):  # type: ignore[no-untyped-def]
    s = eic_calibration("latest", out_dir=str(tmp_path), caldb_root=str(tmp_path / "caldb"))
    assert s["status"] == "empty"
