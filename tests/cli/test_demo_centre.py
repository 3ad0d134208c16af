"""The demo's instrument-centre data: housekeeping with alarms, duty and a planning, added once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session
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
