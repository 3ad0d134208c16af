"""Housekeeping monitoring flows: checks resumable and exactly once, daily report and trend
products (drift recovered against the simulator's), Prefect runs, cron deployments."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlmodel import Session
from svomflow.flows import eic_monitoring as mon
from svomflow.products import housekeeping as hk
from svomflow.products.database import dispose_engines, make_engine
from svomflow.simulation import housekeeping as sim
from svomflow.tasks.monitoring.checks import CheckConfig, check_limits
from svomflow.tasks.monitoring.definitions import load_definitions
from svomflow.tasks.monitoring.pipeline import load_check_inputs

START = datetime(2026, 3, 10, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'products.db'}"
    dispose_engines()


def _store(session: Session, stream: sim.HkStream) -> None:
    mon.sync_definitions(session)
    hk.ingest(session, stream.instrument, stream.times, stream.values)


def _alarm_keys(session: Session) -> list[tuple[str, str, str, float, float | None]]:
    return sorted(
        (
            a.parameter,
            a.level,
            a.rule,
            a.raised_at.timestamp(),
            a.cleared_at.timestamp() if a.cleared_at else None,
        )
        for a in hk.alarms(session)
    )


def test_checks_in_pieces_equal_one_check_and_match_the_truth(tmp_path: Path) -> None:
    stream = sim.simulate("ECLAIRS", START, 2, seed=8, anomalies_per_day=4)
    got = {}
    for mode in ("once", "pieces"):
        url = f"sqlite:///{tmp_path / mode}.db"
        with Session(make_engine(url)) as s:
            _store(s, stream)
            if mode == "once":
                mon.check_instrument(s, "ECLAIRS")
            else:
                # the check runs every 4 h of data, as the scheduled flow would
                for until in np.arange(START.timestamp(), stream.times[-1] + 14400, 14400.0):
                    mon.check_instrument(s, "ECLAIRS", until=float(until))
            got[mode] = _alarm_keys(s)
            assert mon.check_instrument(s, "ECLAIRS").raised == []  # nothing left to check
    assert got["once"] == got["pieces"]
    raised = [(p, "stuck" if rule == "stuck" else lvl, t) for p, lvl, rule, t, _ in got["once"]]
    score = sim.score(stream.anomalies, raised, delay_s=10 * stream.cadence_s)
    assert score.recall == 1.0 and score.false_alarms == ()
    assert all(c is not None for *_, c in got["once"])  # every alarm cleared afterwards
    dispose_engines()


def test_two_checkers_of_the_same_samples_record_the_alarms_once(db: str) -> None:
    stream = sim.simulate("COLIBRI", START, 2, seed=9, anomalies_per_day=4)
    with Session(make_engine(db)) as s:
        _store(s, stream)
        # the watcher and the scheduled flow read the same unchecked samples...
        a = check_limits.run(load_check_inputs(s, "COLIBRI"), config=CheckConfig())
        b = check_limits.run(load_check_inputs(s, "COLIBRI"), config=CheckConfig())
        first = mon.record_check(s, a)
        second = mon.record_check(s, b)
        assert len(first.raised) >= len(stream.anomalies) and not first.skipped
        # ...only the first records them
        assert second.raised == [] and second.cleared == []
        assert sorted(second.skipped) == sorted(p.param.name for p in b.parameters)
        assert len(hk.alarms(s)) == len(first.raised)


def test_daily_report_product_lists_parameters_alarms_and_plots(db: str, tmp_path: Path) -> None:
    stream = sim.simulate("COLIBRI", START, 1, seed=10, anomalies_per_day=4)
    with Session(make_engine(db)) as s:
        _store(s, stream)
        summary = mon.check_instrument(s, "COLIBRI")
        hk.acknowledge(s, summary.raised[0], "Ada", START + timedelta(hours=23))
    run = mon.make_daily_report(
        "COLIBRI", "2026-03-10", out_dir=str(tmp_path / "p"), database_url=db
    )
    (ref,) = run.refs
    assert ref.type_code == "HKDAY" and ref.path.endswith(".html")
    page = Path(ref.path).read_text()
    for p in stream.values:
        assert f"<td class='l'>{p}</td>" in page
    # one alarm row per alarm of the day, the acknowledgement shown; one plot per category
    assert page.count("<tr class='") == len(summary.raised)
    assert "<td class='l'>Ada</td>" in page
    categories = {p.category for p in load_definitions()["COLIBRI"].parameters}
    assert categories == {"status", "weather", "performance"}
    assert page.count("data:image/png;base64,") == len(categories)
    assert f"{len(summary.raised)} alarm(s) during the day" in page
    # the same day again is the same product
    again = mon.make_daily_report(
        "COLIBRI", "2026-03-10", out_dir=str(tmp_path / "p"), database_url=db
    )
    assert again.refs[0].version == 1 and not again.refs[0].created_new


def test_trends_recover_the_simulated_drift(db: str, tmp_path: Path) -> None:
    days = 30
    stream = sim.simulate("ECLAIRS", START, days, seed=12, anomalies_per_day=0)
    with Session(make_engine(db)) as s:
        mon.sync_definitions(s)
        # the two parameters the test reads (the month of all twelve is 3 million samples)
        keep = {k: stream.values[k] for k in ("T_DPIX", "V_28V")}
        hk.ingest(s, "ECLAIRS", stream.times, keep)
    end = START + timedelta(days=days)
    run = mon.make_trends("ECLAIRS", "month", end, out_dir=str(tmp_path / "p"), database_url=db)
    trend = next(r for r in run.refs if r.type_code == "HKTRND")
    assert any(r.type_code == "HKTRND-PREVIEW" for r in run.refs)
    with fits.open(trend.path) as hdul:
        drifts = {str(r["PARAM"]).strip(): r for r in hdul["DRIFTS"].data}
        table = hdul["TRENDS"].data
        n = int(table["N"][np.char.strip(table["PARAM"]) == "T_DPIX"].sum())
    assert n == stream.times.size  # every sample of the month in the bins
    # T_DPIX drifts by +0.01 degC/day (config/housekeeping/_simulation.yaml); V_28V not at all
    t = drifts["T_DPIX"]
    assert abs(t["SLOPE"] - 0.01) < 4 * t["SLOPE_ERR"] + 1e-4, (t["SLOPE"], t["SLOPE_ERR"])
    assert t["SLOPE_ERR"] < 0.002
    v = drifts["V_28V"]
    assert abs(v["SLOPE"]) < 4 * v["SLOPE_ERR"] + 1e-5
    assert v["MEAN"] == pytest.approx(28.0, abs=0.01)


def test_monitoring_flows_are_deployed_on_their_cron_schedules() -> None:
    from svomflow.flows.registry import REGISTRY
    from svomflow.operations.deployments import DeploymentSettings, build_deployments

    deployments, missing = build_deployments(
        DeploymentSettings(flows=["hk-check", "hk-daily", "hk-trends", "hk-ingest"])
    )
    assert not missing
    crons = {d.name: [s.schedule.cron for s in d.schedules] for d in deployments}
    assert crons == {
        "hk-check": ["*/5 * * * *"],
        "hk-daily": ["15 0 * * *"],
        "hk-trends": ["30 0 * * *"],
        "hk-ingest": [],
    }
    assert REGISTRY["hk_daily_report"].parameters == {"day": "yesterday"}


@pytest.mark.integration
def test_ingest_and_report_flows_under_prefect(
    prefect_harness: None, db: str, tmp_path: Path
) -> None:
    stream = sim.simulate("ECLAIRS", START, 0.5, seed=13, anomalies_per_day=6)
    files = sim.write_files(stream, tmp_path / "in", file_seconds=3 * 3600)
    bad = tmp_path / "in" / "bad.json"
    bad.write_text("[]")
    out = mon.hk_ingest(files=[str(f) for f in files] + [str(bad)], key="batch1", database_url=db)
    assert set(out["ingested"]) == {str(f) for f in files}
    assert "needs an object with an 'instrument'" in out["failed"][str(bad)]
    assert len(out["raised"]) >= len(stream.anomalies)
    checked = mon.hk_check(instruments=["ECLAIRS"], database_url=db)
    assert checked["ECLAIRS"]["raised"] == []  # the ingest flow checked them already
    report = mon.hk_daily_report(
        day="2026-03-10", instruments=["ECLAIRS"], out_dir=str(tmp_path / "p"), database_url=db
    )
    (path,) = report.values()
    assert Path(path).read_text().count("<tr class='") == len(out["raised"])


def test_command_line_simulate_watch_alarms_ack_and_user_errors(tmp_path: Path) -> None:
    import json

    from svomflow.cli.main import app
    from typer.testing import CliRunner

    runner = CliRunner()
    inbox = tmp_path / "in"

    def run(*args: str) -> tuple[int, str]:
        res = runner.invoke(app, ["hk", *args])
        return res.exit_code, res.output

    code, out = run("simulate", str(inbox), "--days", "0.5", "-i", "COLIBRI",
                    "--anomalies-per-day", "8", "--format", "json", "--start", "2026-03-10")  # fmt: skip
    assert code == 0, out
    truth = json.loads((inbox / "truth" / "anomalies.json").read_text())
    code, out = run("watch", str(inbox), "--until-idle", "0.5", "--no-notify", "--polling")
    assert code == 0 and "12 file(s) ingested, 0 set aside" in out, out
    code, out = run("alarms", "--json")
    alarms = json.loads(out)
    assert len(alarms) == sum(len(a["expect"]) for a in truth)
    code, out = run("ack", str(alarms[0]["id"]), "--by", "Ada")
    assert code == 0 and "ack Ada" in out
    # user errors: one line, exit 2
    for args, msg in [
        (("ack", str(alarms[0]["id"]), "--by", "Bob"), "already acknowledged by Ada"),
        (("ack", "999999", "--by", "Bob"), "no alarm with id 999999"),
        (("alarms", "--state", "open"), "unknown alarm state 'open'"),
        (("status", "-i", "MXT"), "no housekeeping definitions for MXT"),
        (("ingest", str(tmp_path / "nope.fits")), "nope.fits: no such file"),
        (("report", "--day", "last week"), "is not YYYY-MM-DD"),
        (("trends", "--period", "year"), "period 'year' is not one of"),
    ]:
        code, out = run(*args)
        lines = out.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("svomflow: error: "), out
        assert msg in out, out
