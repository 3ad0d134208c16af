"""The demo's instrument-centre data: housekeeping with alarms, duty and a planning, added once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select
from svomflow.cli.demo_centre import seed_centre


def test_seed_centre_fills_the_site_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SVOMFLOW_DATABASE_URL", raising=False)
    from svomflow.products import duty
    from svomflow.products import housekeeping as hk
    from svomflow.products import plannings as pl
    from svomflow.products.database import make_engine

    first = seed_centre(tmp_path / "hk", user="admin", ra=157.57, dec=23.83, seed=1)
    with Session(make_engine()) as s:
        stored = hk.count_samples(s)
        raised = hk.alarms(s)
        now = datetime.now(UTC)
        on_call = {sh.instrument for i in ("ECLAIRS", "COLIBRI") for sh in duty.on_call(s, i, now)}
        (planning,) = pl.plannings(s)
        obs = pl.observations(s, planning.id)
    assert first.samples == stored > 10_000  # a day of both instruments
    assert first.alarms == len(raised) >= 1
    assert on_call == {"ECLAIRS", "COLIBRI"} and first.shifts == 2
    assert first.planning and len(obs) == 3
    assert all(abs(o.ra_deg - 157.57) < 1e-9 and abs(o.dec_deg - 23.83) < 1e-9 for o in obs)
    again = seed_centre(tmp_path / "hk", user="admin", ra=157.57, dec=23.83, seed=1)
    assert (again.samples, again.alarms, again.shifts, again.planning) == (0, 0, 0, False)


@pytest.mark.integration
def test_seed_calibration_gives_both_centres_a_history_once(
    prefect_harness, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Two COLIBRI nights and three ECLAIRs calibrations: what /calibration shows, made once."""
    from svomflow.cli.demo_centre import CalibrationSeed, seed_calibration
    from svomflow.products.database import ProductRow, make_engine
    from svomflow.web import calhistory as ch

    told: list[str] = []
    first = seed_calibration(tmp_path / "cal", seed=1, step=told.append)
    # night 1 promotes bias, dark, flat; night 2 refuses the leaking bias and saturated
    # flats; the gain jump of the third ECLAIRs calibration is refused with its two tables
    assert first == CalibrationSeed(nights=2, eic_runs=3, promoted=3 + 1 + 3 + 3, refused=2 + 3)
    assert len(told) == 5 and "(bad frames)" in told[1] and "(gain jump)" in told[-1]
    with Session(make_engine()) as s:
        combos = {c.key for c in ch.combos(s)}
        bias = ch.candidates(s, ch.Combo("DDRAGO-B", "BIAS", "NONE", "nightly"), None, None)
        gain = ch.candidates(s, ch.Combo("ECLAIRS", "PIXGAIN", "NONE", "gate"), None, None)
        images = [ch.preview_of(s, c, "MASTER-PREVIEW") for c in bias]
        products = len(s.exec(select(ProductRow)).all())
    assert {"nightly:DDRAGO-B:BIAS:NONE", "nightly:DDRAGO-B:FLAT:r"} <= combos
    assert {f"gate:ECLAIRS:{c}:NONE" for c in ("PIXGAIN", "BANDTAB", "SBNTHR")} <= combos
    assert [c.promoted for c in bias] == [True, False]
    assert "fraction_beyond_6sigma" in bias[1].reason and bias[1].figures["fraction"] > 0.05
    assert all(i is not None for i in images)  # candidate and master images, side by side
    assert [c.promoted for c in gain] == [True, True, False]
    assert "median_gain changed" in gain[2].reason and gain[2].current  # against the current

    again = seed_calibration(tmp_path / "cal", seed=1, step=told.append)
    assert again == CalibrationSeed(0, 0, 0, 0) and len(told) == 5
    with Session(make_engine()) as s:
        assert len(s.exec(select(ProductRow)).all()) == products
