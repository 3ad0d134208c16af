"""The housekeeping watcher: simulated files dropped in a directory are ingested once, across
restarts; bad files are set aside; anomalies raise their alarms; the person on duty hears."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import Session
from svomflow.operations.hk_watch import HkWatchConfig, HkWatcher
from svomflow.products import duty
from svomflow.products import housekeeping as hk
from svomflow.products.database import dispose_engines, make_engine
from svomflow.products.notify import NotifySettings
from svomflow.simulation import housekeeping as sim

START = datetime(2026, 2, 1, tzinfo=UTC)


def _config(tmp_path: Path, **kw: Any) -> HkWatchConfig:
    return HkWatchConfig(
        input_dir=str(tmp_path / "in"),
        ledger=str(tmp_path / "ledger.sqlite"),
        database_url=f"sqlite:///{tmp_path / 'products.db'}",
        settle_seconds=0.05,
        poll_seconds=0.1,
        use_polling=True,
        **kw,
    )


def _finite(stream: sim.HkStream) -> int:
    return int(sum(np.isfinite(v).sum() for v in stream.values.values()))


def test_files_ingested_once_across_restarts_and_bad_files_set_aside(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]], dict[str, int]]
) -> None:
    url, posts, _ = webhook
    cfg = _config(tmp_path)
    inbox = Path(cfg.input_dir)
    ecl = sim.simulate("ECLAIRS", START, 2, seed=21, anomalies_per_day=3)
    col = sim.simulate("COLIBRI", START, 2, seed=22, anomalies_per_day=3)
    ecl_files = sim.write_files(ecl, tmp_path / "ecl", file_seconds=4 * 3600, fmt="fits")
    col_files = sim.write_files(col, tmp_path / "col", file_seconds=6 * 3600, fmt="json")
    # the alarms of the simulated days are sent now, to whoever is on duty now
    now = datetime.now(UTC)
    with Session(make_engine(cfg.database_url)) as s:
        for inst in ("ECLAIRS", "COLIBRI"):
            duty.add_shift(
                s,
                inst,
                "primary",
                "Ada",
                now - timedelta(days=1),
                now + timedelta(days=1),
                webhook=url,
            )
    # first run: the first half of the files, plus foreign and broken ones
    first = ecl_files[:6] + col_files[:4]
    inbox.mkdir(parents=True)
    for f in first:
        f.rename(inbox / f.name)
    (inbox / "mxt_hk.json").write_text('{"instrument": "MXT", "samples": [{"time": 0, "X": 1}]}')
    (inbox / "garbage.fits").write_bytes(b"not a FITS file at all" * 200)
    (inbox / "cut.fits").write_bytes(ecl_files[6].read_bytes()[:5000])
    notify = NotifySettings(max_age=timedelta(days=3650))
    w = HkWatcher(cfg, notify_settings=notify)
    w.run(until_idle=0.5)
    rows = {Path(r["path"]).name: r for r in w.ledger.rows()}
    assert {n for n, r in rows.items() if r["status"] == "done"} == {f.name for f in first}
    failed = {n: r["reason"] for n, r in rows.items() if r["status"] == "failed"}
    assert set(failed) == {"mxt_hk.json", "garbage.fits", "cut.fits"}
    assert "'MXT' has no housekeeping definitions" in failed["mxt_hk.json"]
    assert "not a complete FITS file" in failed["cut.fits"]
    rejected = inbox / "rejected"
    assert sorted(p.name for p in rejected.glob("*.reason.txt")) == sorted(
        f + ".reason.txt" for f in failed
    )
    # second run (a restart): the rest arrives, plus a file of the first run dropped again
    for f in ecl_files[6:] + col_files[4:]:
        f.rename(inbox / f.name)
    w2 = HkWatcher(cfg, notify_settings=notify)
    w2.run(until_idle=0.5)
    done = [r for r in w2.ledger.rows() if r["status"] == "done"]
    assert len(done) == len(ecl_files) + len(col_files)
    with Session(make_engine(cfg.database_url)) as s:
        assert hk.count_samples(s, "ECLAIRS") == _finite(ecl)
        assert hk.count_samples(s, "COLIBRI") == _finite(col)
        alarms = hk.alarms(s)
        # every injected anomaly raised its alarm, no other alarm
        for stream in (ecl, col):
            got = [
                (a.parameter, "stuck" if a.rule == "stuck" else a.level, a.raised_at.timestamp())
                for a in alarms
                if a.instrument == stream.instrument
            ]
            score = sim.score(stream.anomalies, got, delay_s=10 * stream.cadence_s)
            assert score.recall == 1.0 and score.false_alarms == (), stream.instrument
        # and each was sent once to the person on duty
        assert all(a.notified_to == "Ada (primary)" for a in alarms)
    assert sorted(p["alarm"]["id"] for p in posts) == sorted(a.id for a in alarms)
    dispose_engines()


def test_a_claim_left_by_a_killed_watcher_is_redone_without_double_samples(tmp_path: Path) -> None:
    cfg = _config(tmp_path, notify=False)
    inbox = Path(cfg.input_dir)
    inbox.mkdir(parents=True)
    stream = sim.simulate("ECLAIRS", START, 0.5, seed=3, anomalies_per_day=0)
    (path,) = sim.write_files(stream, inbox, file_seconds=86400, fmt="fits")
    w = HkWatcher(cfg)
    # the killed watcher had claimed the file and stored its samples, not recorded "done"
    key = w.ledger.claim(path, "ingest")
    assert key is not None
    from svomflow.flows.eic_monitoring import ingest_file

    with Session(w.engine) as s:
        assert ingest_file(s, path, w.definitions).inserted == _finite(stream)
    w2 = HkWatcher(cfg)
    w2.run(until_idle=0.3)
    (row,) = w2.ledger.rows()
    assert row["status"] == "done"
    with Session(w2.engine) as s:
        assert hk.count_samples(s, "ECLAIRS") == _finite(stream)
    dispose_engines()
