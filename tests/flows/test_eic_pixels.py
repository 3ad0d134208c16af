"""The ECLAIRs pixel flow: a period's files to CALDB files through the gate (Prefect harness)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from svomflow.calibration.caldb import open_caldb
from svomflow.flows.eic_pixels import eic_pixel_calibration
from svomflow.flows.registry import get_spec
from svomflow.products.calibration_files import read_badpix, read_dead_time
from svomflow.simulation.eclairs_pixel_health import (
    DeadTimeScenario,
    PixelHealthScenario,
    simulate_dead_time_rates,
    simulate_pixel_health,
    write_pixel_health_files,
)

pytestmark = pytest.mark.integration

DAY = 86400.0


def _period(path, seed, t_start, **kw):
    rng = np.random.default_rng(seed)
    sc = PixelHealthScenario(t_start=t_start, days=1.0, bin_s=1800.0, noisy_rate=(0.3, 5.0), **kw)
    sim = simulate_pixel_health(rng, sc)
    dt = simulate_dead_time_rates(rng, DeadTimeScenario(levels=(1.0, 30.0, 300.0, 1000.0, 2000.0)))
    write_pixel_health_files(path, sim, dt)
    return sim


def test_good_period_promoted_bad_period_refused(prefect_harness, tmp_path):
    caldb_root = str(tmp_path / "caldb")
    out = str(tmp_path / "products")
    sim1 = _period(tmp_path / "d1", 1, 1.0e8)
    s1 = eic_pixel_calibration(str(tmp_path / "d1"), out_dir=out, caldb_root=caldb_root)
    assert s1["status"] == "done"
    assert {c: p["promoted"] for c, p in s1["promotions"].items()} == {
        "BADPIX": True,
        "UNIFMAP": True,
        "DEADTIME": True,
    }, s1["promotions"]
    db = open_caldb(caldb_root)
    # the CALDB's BADPIX is read by the analyses' loader and holds the injected bad pixels
    bad = read_badpix(db.select("BADPIX", instrument="ECLAIRS", time="2026-03-04T12:00:00").path)
    truth = {(p.y, p.z) for p in sim1.pixels}
    assert {tuple(int(v) for v in yz) for yz in np.argwhere(bad.bad)} == truth
    dt = read_dead_time(
        db.select("DEADTIME", instrument="ECLAIRS", time="2026-03-04T12:00:00").path
    )
    assert 1e-6 < dt.of("MOD000") < 1e-4 and dt.of("ECLAIRS") > 0
    first_badpix = db.select("BADPIX", instrument="ECLAIRS", time="2026-03-04T12:00:00").sha256

    # the next day 7 % of the plane turns noisy: the gate refuses, the current file stays
    _period(tmp_path / "d2", 2, 1.0e8 + DAY, n_noisy=450)
    s2 = eic_pixel_calibration(str(tmp_path / "d2"), out_dir=out, caldb_root=caldb_root)
    p2 = s2["promotions"]["BADPIX"]
    assert not p2["promoted"]
    assert any("bad_fraction" in r for r in p2["reasons"])
    assert p2["current_figures"]["n_dead"] == s1["promotions"]["BADPIX"]["figures"]["n_dead"]
    now = db.select("BADPIX", instrument="ECLAIRS", time="2026-03-06T12:00:00")
    assert now.sha256 == first_badpix
    # the QC history of BADPIX holds both verdicts
    hist = Table.read(p2["qc_history"], hdu="CALQCH")
    assert set(hist["CANDIDATE"]) and len(set(hist["CANDIDATE"])) == 2
    assert sorted(set(hist["PROMOTED"].tolist())) == [False, True]


def test_empty_period_and_schedule(prefect_harness, tmp_path):
    _period(tmp_path / "d", 3, 1.0e8, n_noisy=0, n_dead=0, n_intermittent=0)
    s = eic_pixel_calibration(
        str(tmp_path / "d"), start="2027-01-01T00:00:00", stop="2027-01-08T00:00:00"
    )
    assert s["status"] == "empty"
    spec = get_spec("eic-pixels")
    assert spec.cron and spec.parameters == {"last_days": 7.0}
