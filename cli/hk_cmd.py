"""``svomflow hk``: housekeeping monitoring (ingest, watch, check, alarms, duty, reports, trends).

Every command works on the products database of the home (``$SVOMFLOW_DATABASE_URL`` or
SQLite under ``$SVOMFLOW_HOME``); the parameter definitions of ``config/housekeeping`` are
written into it first. User errors print one line and exit with status 2.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from svomflow.cli._common import user_errors

__all__ = ["app"]

app = typer.Typer(
    help="Housekeeping monitoring: ingest ECLAIRs/COLIBRI housekeeping files, check limits, "
    "alarms and who is on duty, daily reports and long-term trends.",
    no_args_is_help=True,
)
duty_app = typer.Typer(help="The on-call roster (primary and backup per instrument).")
app.add_typer(duty_app, name="duty")

InstrumentOpt = Annotated[
    list[str] | None,
    typer.Option("--instrument", "-i", help="ECLAIRS or COLIBRI (repeatable; default all)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _session() -> Any:
    from sqlmodel import Session
    from svomflow.flows.eic_monitoring import sync_definitions
    from svomflow.products.database import make_engine

    s = Session(make_engine())
    sync_definitions(s)
    return s


def _when(value: str | None, what: str) -> datetime | None:
    """Parse an ISO date/time (UTC when no zone) or ``now``/``today``/``yesterday``."""
    from svomflow.errors import InputDataError

    if value is None:
        return None
    now = datetime.now(UTC)
    named = {
        "now": now,
        "today": now.replace(hour=0, minute=0, second=0, microsecond=0),
        "yesterday": now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1),
    }
    if value in named:
        return named[value]
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputDataError(f"{what} {value!r} is not an ISO date/time (UTC)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _instruments(s: Any, given: list[str] | None) -> list[str]:
    from svomflow.errors import InputDataError
    from svomflow.products import housekeeping as hk

    known = sorted({p.instrument for p in hk.parameters(s) if p.defined})
    if not given:
        return known
    out = [g.upper() for g in given]
    unknown = [g for g in out if g not in known]
    if unknown:
        raise InputDataError(
            f"no housekeeping definitions for {', '.join(unknown)} (known: {', '.join(known)})"
        )
    return out


@app.command("definitions")
@user_errors
def definitions(instrument: InstrumentOpt = None, as_json: JsonOpt = False) -> None:
    """List the housekeeping parameters with unit, limits, persistence and hysteresis."""
    from svomflow.products import housekeeping as hk

    with _session() as s:
        rows = [p for i in _instruments(s, instrument) for p in hk.parameters(s, i)]
    if as_json:
        typer.echo(json.dumps([r.model_dump() for r in rows], indent=1))
        return

    def lim(lo: float | None, hi: float | None) -> str:
        return f"[{'-' if lo is None else f'{lo:g}'}, {'-' if hi is None else f'{hi:g}'}]"

    for r in rows:
        typer.echo(
            f"{r.instrument:8s} {r.name:16s} {r.unit:9s} soft {lim(r.soft_low, r.soft_high):16s} "
            f"hard {lim(r.hard_low, r.hard_high):16s} persistence {r.persistence} "
            f"hysteresis {r.hysteresis:g}" + (f" stuck {r.stuck_after}" if r.stuck_after else "")
        )


@app.command("ingest")
@user_errors
def ingest(
    files: Annotated[list[Path], typer.Argument(help="Housekeeping files (FITS or JSON).")],
    check: Annotated[bool, typer.Option("--check/--no-check", help="Check limits after.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Ingest housekeeping files into the store (samples already there are skipped)."""
    from svomflow.errors import InputDataError
    from svomflow.flows.eic_monitoring import check_instrument, ingest_files
    from svomflow.tasks.monitoring.definitions import load_definitions

    for f in files:
        if not f.is_file():
            raise InputDataError(f"{f}: no such file")
    with _session() as s:
        done, failed = ingest_files(s, files, load_definitions())
        checks = (
            [check_instrument(s, i) for i in sorted({d.instrument for d in done})] if check else []
        )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ingested": {d.path: d.inserted for d in done},
                    "duplicates": sum(d.duplicates for d in done),
                    "failed": dict(failed),
                    "raised": [a for c in checks for a in c.raised],
                    "cleared": [a for c in checks for a in c.cleared],
                },
                indent=1,
            )
        )
    else:
        for d in done:
            typer.echo(
                f"{Path(d.path).name}: {d.inserted} samples of {d.instrument} "
                f"({d.duplicates} already stored)"
            )
        for c in checks:
            typer.echo(f"{c.instrument}: {len(c.raised)} alarm(s) raised, {len(c.cleared)} cleared")
    if failed:
        raise InputDataError("; ".join(reason for _, reason in failed))


@app.command("watch")
@user_errors
def watch(
    input_dir: Annotated[Path, typer.Argument(help="Folder where housekeeping files arrive.")],
    until_idle: Annotated[
        float | None,
        typer.Option("--until-idle", help="Stop after this many idle seconds (default: never)."),
    ] = None,
    notify: Annotated[
        bool, typer.Option("--notify/--no-notify", help="Send alarms to who is on duty.")
    ] = True,
    polling: Annotated[bool, typer.Option("--polling", help="Poll instead of inotify.")] = False,
) -> None:
    """Ingest files as they arrive, check limits and notify (nothing lost or doubled on restart)."""
    from svomflow.operations.hk_watch import HkWatchConfig, HkWatcher

    w = HkWatcher(HkWatchConfig(input_dir=str(input_dir), notify=notify, use_polling=polling))
    typer.echo(f"watching {w.input_dir} (ledger {w.ledger.path}); Ctrl-C to stop")
    w.run(until_idle=until_idle)
    rows = w.ledger.rows()
    done = sum(r["status"] == "done" for r in rows)
    failed = [r for r in rows if r["status"] == "failed"]
    typer.echo(f"{done} file(s) ingested, {len(failed)} set aside in {w.rejected_dir}")
    for r in failed:
        typer.echo(f"  {Path(r['path']).name}: {r['reason']}")


@app.command("check")
@user_errors
def check(instrument: InstrumentOpt = None, as_json: JsonOpt = False) -> None:
    """Check the limits of the samples not checked yet; record raised and cleared alarms."""
    from svomflow.flows.eic_monitoring import check_instrument

    with _session() as s:
        out = {i: check_instrument(s, i) for i in _instruments(s, instrument)}
    if as_json:
        typer.echo(
            json.dumps(
                {
                    i: {"samples": c.checked_samples, "raised": c.raised, "cleared": c.cleared}
                    for i, c in out.items()
                }
            )
        )
        return
    for i, c in out.items():
        typer.echo(
            f"{i}: {c.checked_samples} samples checked, {len(c.raised)} alarm(s) raised, "
            f"{len(c.cleared)} cleared"
        )


def _alarm_line(a: Any) -> str:
    cleared = f" cleared {a.cleared_at:%Y-%m-%d %H:%M:%S}" if a.cleared_at else ""
    ack = f" ack {a.acknowledged_by}" if a.acknowledged_by else ""
    return (
        f"#{a.id:<5d} {a.raised_at:%Y-%m-%d %H:%M:%S} {a.instrument:8s} {a.parameter:16s} "
        f"{a.level:4s} {a.state:12s} {a.message}{cleared}{ack}"
    )


@app.command("alarms")
@user_errors
def alarms(
    instrument: InstrumentOpt = None,
    state: Annotated[
        str | None, typer.Option("--state", help="raised, acknowledged or cleared.")
    ] = None,
    active: Annotated[bool, typer.Option("--active", help="Only alarms not cleared.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Alarms open at or after (ISO UTC, 'today').")
    ] = None,
    report: Annotated[
        bool, typer.Option("--report", help="Sum up per parameter and level instead.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List alarms (newest first), or the alarm report of a period with --report."""
    from svomflow.products import housekeeping as hk

    with _session() as s:
        rows = [
            a
            for i in _instruments(s, instrument)
            for a in hk.alarms(
                s, i, state=state, since=_when(since, "--since"), active=True if active else None
            )
        ]
    rows.sort(key=lambda a: a.raised_at, reverse=True)
    if report:
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for a in rows:
            groups.setdefault((a.instrument, a.parameter, a.level), []).append(a)
        lines = []
        for (inst, param, level), g in sorted(groups.items()):
            acked = sum(a.acknowledged_by is not None for a in g)
            open_ = sum(a.state != "cleared" for a in g)
            dur = [(a.cleared_at - a.raised_at).total_seconds() / 60 for a in g if a.cleared_at]
            lines.append(
                {
                    "instrument": inst,
                    "parameter": param,
                    "level": level,
                    "alarms": len(g),
                    "open": open_,
                    "acknowledged": acked,
                    "median_minutes": sorted(dur)[len(dur) // 2] if dur else None,
                    "first": min(a.raised_at for a in g).isoformat(),
                    "last": max(a.raised_at for a in g).isoformat(),
                }
            )
        if as_json:
            typer.echo(json.dumps(lines, indent=1))
            return
        for r in lines:
            med = "-" if r["median_minutes"] is None else f"{r['median_minutes']:.1f} min"
            typer.echo(
                f"{r['instrument']:8s} {r['parameter']:16s} {r['level']:4s} {r['alarms']:4d} alarm(s), "
                f"{r['open']} open, {r['acknowledged']} acknowledged, median duration {med}"
            )
        return
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in rows], indent=1))
        return
    for a in rows:
        typer.echo(_alarm_line(a))
    if not rows:
        typer.echo("no alarm")


@app.command("ack")
@user_errors
def ack(
    alarm_id: Annotated[int, typer.Argument(help="Alarm number (svomflow hk alarms).")],
    by: Annotated[str, typer.Option("--by", help="Who acknowledges (recorded).")],
) -> None:
    """Acknowledge an alarm (recorded with the name and the time)."""
    from svomflow.products import housekeeping as hk

    with _session() as s:
        a = hk.acknowledge(s, alarm_id, by, datetime.now(UTC))
        typer.echo(_alarm_line(a))


@app.command("notify")
@user_errors
def notify() -> None:
    """Send the alarms not notified yet to whoever is on duty (SVOMFLOW_SMTP_*, webhooks)."""
    from svomflow.products.notify import notify_pending

    with _session() as s:
        r = notify_pending(s)
    for alarm_id, who in r.sent:
        typer.echo(f"alarm {alarm_id}: sent to {who}")
    for alarm_id, reason in r.failed:
        typer.echo(f"alarm {alarm_id}: not sent ({reason}); will retry")
    if r.nobody:
        typer.echo(f"{len(r.nobody)} alarm(s) raised while nobody was on duty")
    if r.stale:
        typer.echo(f"{len(r.stale)} alarm(s) too old to send")
    if not (r.sent or r.failed or r.nobody or r.stale):
        typer.echo("nothing to send")


@app.command("status")
@user_errors
def status(instrument: InstrumentOpt = None, as_json: JsonOpt = False) -> None:
    """Show the latest value of every parameter with its state and open alarm."""
    from svomflow.products import housekeeping as hk

    with _session() as s:
        rows = [lv for i in _instruments(s, instrument) for lv in hk.latest(s, i)]
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "instrument": lv.definition.instrument,
                        "parameter": lv.definition.name,
                        "unit": lv.definition.unit,
                        "time": lv.time.isoformat() if lv.time else None,
                        "value": lv.value,
                        "state": lv.state,
                        "alarm": lv.alarm.id if lv.alarm else None,
                    }
                    for lv in rows
                ],
                indent=1,
            )
        )
        return
    for lv in rows:
        d = lv.definition
        when = f"{lv.time:%Y-%m-%d %H:%M:%S}" if lv.time else "-"
        value = "-" if lv.value is None else f"{lv.value:.5g} {d.unit}"
        alarm = f"  alarm #{lv.alarm.id} ({lv.alarm.state})" if lv.alarm else ""
        typer.echo(f"{d.instrument:8s} {d.name:16s} {value:18s} {lv.state:6s} {when}{alarm}")


@app.command("report")
@user_errors
def report(
    day: Annotated[
        str, typer.Option("--day", help="YYYY-MM-DD (UTC), today or yesterday.")
    ] = "yesterday",
    instrument: InstrumentOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Products root (default: the home's).")
    ] = None,
) -> None:
    """Publish the daily status report of each instrument (HKDAY, HTML with plots)."""
    from svomflow.flows.eic_monitoring import make_daily_report

    with _session() as s:
        names = _instruments(s, instrument)
    for name in names:
        run = make_daily_report(name, day, out_dir=str(out) if out else None)
        for ref in run.refs:
            typer.echo(f"{ref.type_code} {name} v{ref.version}: {ref.path}")


@app.command("trends")
@user_errors
def trends(
    period: Annotated[
        list[str] | None,
        typer.Option(
            "--period", "-p", help="day, week, month or quarter (repeatable; default all)."
        ),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="End of the period (ISO UTC; default today 00:00).")
    ] = None,
    instrument: InstrumentOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Products root (default: the home's).")
    ] = None,
) -> None:
    """Publish the trends of each instrument over the periods (HKTRND: table, drifts, plot)."""
    from svomflow.flows.eic_monitoring import make_trends
    from svomflow.tasks.monitoring.trends import PERIODS

    with _session() as s:
        names = _instruments(s, instrument)
    at = _when(end, "--end")
    for name in names:
        for p in period or list(PERIODS):
            run = make_trends(name, p, at, out_dir=str(out) if out else None)
            for ref in run.refs:
                typer.echo(f"{ref.type_code} {name} {p} v{ref.version}: {ref.path}")


@app.command("simulate")
@user_errors
def simulate(
    out: Annotated[Path, typer.Argument(help="Folder to write the housekeeping files into.")],
    days: Annotated[float, typer.Option("--days", help="Days to simulate.")] = 1.0,
    start: Annotated[
        str | None,
        typer.Option("--start", help="First sample (ISO UTC; default: --days before today 00:00)."),
    ] = None,
    instrument: InstrumentOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="fits or json.")] = "fits",
    file_hours: Annotated[float, typer.Option("--file-hours", help="Hours per file.")] = 1.0,
    anomalies_per_day: Annotated[
        float, typer.Option("--anomalies-per-day", help="Mean injected anomalies per day.")
    ] = 2.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Simulate housekeeping files with injected anomalies (truth in <out>/truth/)."""
    from svomflow.errors import InputDataError
    from svomflow.simulation import housekeeping as sim

    if fmt not in ("fits", "json"):
        raise InputDataError(f"--format {fmt!r}: fits or json")
    if days <= 0:
        raise InputDataError("--days must be positive")
    today = _when("today", "today")
    assert today is not None
    t0 = _when(start, "--start") or today - timedelta(days=days)
    truth: list[dict[str, Any]] = []
    for k, name in enumerate(
        [i.upper() for i in instrument] if instrument else ["ECLAIRS", "COLIBRI"]
    ):
        if name not in ("ECLAIRS", "COLIBRI"):
            raise InputDataError(f"no housekeeping simulator for {name} (ECLAIRS, COLIBRI)")
        stream = sim.simulate(name, t0, days, seed=seed + k, anomalies_per_day=anomalies_per_day)
        paths = sim.write_files(stream, out, file_seconds=file_hours * 3600, fmt=fmt)  # type: ignore[arg-type]
        truth += [
            {
                "instrument": a.instrument,
                "parameter": a.parameter,
                "kind": a.kind,
                "start": datetime.fromtimestamp(a.start, UTC).isoformat(),
                "end": datetime.fromtimestamp(a.end, UTC).isoformat(),
                "level": a.level,
                "expect": list(a.expect),
            }
            for a in stream.anomalies
        ]
        typer.echo(f"{name}: {len(paths)} file(s), {len(stream.anomalies)} anomalies injected")
    # in a subfolder: a watcher of `out` does not take it for housekeeping
    truth_path = out / "truth" / "anomalies.json"
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    truth_path.write_text(json.dumps(truth, indent=1))
    typer.echo(f"truth: {truth_path}")


@duty_app.command("add")
@user_errors
def duty_add(
    instrument: Annotated[str, typer.Argument(help="ECLAIRS or COLIBRI.")],
    role: Annotated[str, typer.Argument(help="primary or backup.")],
    person: Annotated[str, typer.Argument(help="Name.")],
    start: Annotated[str, typer.Option("--start", help="ISO UTC, now, today...")] = "now",
    end: Annotated[
        str | None, typer.Option("--end", help="ISO UTC (default start + 7 days).")
    ] = None,
    email: Annotated[str, typer.Option("--email")] = "",
    webhook: Annotated[str, typer.Option("--webhook")] = "",
) -> None:
    """Add a shift to the roster (refused when it overlaps another in the same role)."""
    from svomflow.products import duty

    t0 = _when(start, "--start")
    assert t0 is not None
    t1 = _when(end, "--end") or t0 + timedelta(days=7)
    with _session() as s:
        row = duty.add_shift(s, instrument, role, person, t0, t1, email=email, webhook=webhook)
    typer.echo(
        f"shift {row.id}: {row.instrument} {row.role} {row.person} {row.start:%Y-%m-%d %H:%M} to {row.end:%Y-%m-%d %H:%M} UTC"
    )


@duty_app.command("list")
@user_errors
def duty_list(instrument: InstrumentOpt = None) -> None:
    """List the shifts from now on, and who is on call now."""
    from svomflow.products import duty

    now = datetime.now(UTC)
    with _session() as s:
        for i in _instruments(s, instrument):
            who = ", ".join(f"{x.person} ({x.role})" for x in duty.on_call(s, i, now)) or "nobody"
            typer.echo(f"{i}: on call now: {who}")
            for x in duty.shifts(s, i, start=now):
                typer.echo(
                    f"  #{x.id} {x.role:7s} {x.person:20s} {x.start:%Y-%m-%d %H:%M} to "
                    f"{x.end:%Y-%m-%d %H:%M} UTC {x.email} {x.webhook}".rstrip()
                )
