"""What ``svomflow demo`` puts in the instrument-centre site besides the burst's products.

A day of simulated ECLAIRs and COLIBRI housekeeping with injected anomalies (ingested and
limit-checked, so the plots and alarms pages have data), the demo user on duty for both
instruments, and an observing strategy with tonight's planning pointing COLIBRI at the
demo burst. Everything goes through the same stores and steps as the real commands
(``svomflow hk ingest``, the duty roster, the strategies API); a second demo adds nothing
twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

__all__ = ["CentreSeed", "seed_centre"]


@dataclass(frozen=True)
class CentreSeed:
    """What was added: housekeeping samples, alarms raised, shifts and the planning."""

    samples: int
    alarms: int
    shifts: int
    planning: bool


def _housekeeping(session: Session, folder: Path, now: datetime, seed: int) -> tuple[int, int]:
    from svomflow.flows.eic_monitoring import check_instrument, ingest_files, sync_definitions
    from svomflow.simulation import housekeeping as sim

    definitions = sync_definitions(session)
    start = (now - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    paths: list[Path] = []
    for k, name in enumerate(("ECLAIRS", "COLIBRI")):
        stream = sim.simulate(name, start, 1.0, seed=seed + k, anomalies_per_day=3.0)
        paths += sim.write_files(stream, folder, file_seconds=6 * 3600.0)
    done, _failed = ingest_files(session, paths, definitions)
    raised = sum(len(check_instrument(session, i).raised) for i in ("ECLAIRS", "COLIBRI"))
    return sum(d.inserted for d in done), raised


def _duty(session: Session, user: str, now: datetime) -> int:
    from svomflow.products import duty

    added = 0
    for instrument in ("ECLAIRS", "COLIBRI"):
        if not duty.on_call(session, instrument, now):
            duty.add_shift(
                session,
                instrument,
                "primary",
                user,
                now - timedelta(hours=1),
                now + timedelta(days=7),
            )
            added += 1
    return added


def _planning(session: Session, engine: Engine, ra: float, dec: float, now: datetime) -> bool:
    from svomflow.products import plannings as pl

    pl.ensure_schema(engine)
    if any(s.name == "grb-afterglow" for s in pl.strategies(session)):
        return False
    spec = pl.StrategySpec(
        exposures=(
            pl.ExposureStep(filter="r", exposure_s=60.0, count=10),
            pl.ExposureStep(filter="i", exposure_s=60.0, count=10),
        )
    )
    pl.create_strategy(
        session,
        "grb-afterglow",
        telescope="COLIBRI",
        instrument="DDRAGO-B",
        spec=spec,
        by="demo",
        comment="follow-up of the demo burst",
    )
    pl.publish(session, "grb-afterglow", 1, by="demo")
    pl.create_planning(
        session,
        pl.PlanningDraft(
            telescope="COLIBRI",
            instrument="DDRAGO-B",
            title="demo burst follow-up",
            start=now,
            end=now + timedelta(hours=6),
            observations=[
                pl.ObservationDraft(
                    target="demo burst",
                    ra_deg=ra,
                    dec_deg=dec,
                    start=now + timedelta(minutes=10 + 60 * k),
                    end=now + timedelta(minutes=50 + 60 * k),
                    strategy="grb-afterglow",
                )
                for k in range(3)
            ],
        ),
        by="demo",
    )
    return True


def seed_centre(folder: Path, *, user: str, ra: float, dec: float, seed: int = 1) -> CentreSeed:
    """Add the demo's housekeeping, alarms, duty shifts and planning to the home's database."""
    from svomflow.products.database import make_engine

    now = datetime.now(UTC).replace(microsecond=0)
    engine = make_engine()
    folder.mkdir(parents=True, exist_ok=True)
    with Session(engine) as session:
        samples, alarms = _housekeeping(session, folder, now, seed)
        shifts = _duty(session, user, now)
        planning = _planning(session, engine, ra, dec, now)
    return CentreSeed(samples, alarms, shifts, planning)
