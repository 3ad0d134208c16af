"""What ``svomflow demo`` puts in the instrument-centre site besides the burst's products.

A day of simulated ECLAIRs and COLIBRI housekeeping with injected anomalies (ingested and
limit-checked, so the plots and alarms pages have data), the demo user on duty for both
instruments, and an observing strategy with tonight's planning pointing COLIBRI at the
demo burst (:func:`seed_centre`); and a calibration history for both centres
(:func:`seed_calibration`): two small simulated COLIBRI nights through the nightly master
calibration flow (the second with a light leak in the biases and saturated flats, which the
QC refuses) and three weekly ECLAIRs plane calibrations from the ``eic_plane`` simulation
through the ``eic_calibration`` flow (the third after a +10 % gain jump, which the promotion
gate refuses). Everything goes through the same stores, flows and steps as the real
commands (``svomflow hk ingest``, ``calib nightly``, ``eic calib run``, the duty roster,
the strategies API); a second demo adds nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

__all__ = ["CALIBRATION_RUNS", "CalibrationSeed", "CentreSeed", "seed_calibration", "seed_centre"]

#: COLIBRI nights simulated (the second one with bad calibration frames), ending last night.
NIGHTS = 2
#: Days of the ECLAIRs plane calibrations, the last one after the gain jump, ending today.
EIC_DAYS = (0, 7, 14)
#: Flow runs :func:`seed_calibration` makes on a fresh home (one progress step each).
CALIBRATION_RUNS = NIGHTS + len(EIC_DAYS)
# small COLIBRI frames: enough pixels for the QC statistics, a few seconds per night
_NIGHT: dict[str, Any] = dict(
    size=(96, 128),
    n_bias=5,
    n_dark=5,
    dark_exposures=(60.0,),
    n_flat_per_filter=5,
    flat_filters=("r",),
    science=False,
)


@dataclass(frozen=True)
class CentreSeed:
    """What was added: housekeeping samples, alarms raised, shifts and the planning."""

    samples: int
    alarms: int
    shifts: int
    planning: bool


@dataclass(frozen=True)
class CalibrationSeed:
    """Calibration flow runs made now (0 when a former demo made them) and their verdicts."""

    nights: int
    eic_runs: int
    promoted: int
    refused: int


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


def _plan(folder: Path, today: date) -> dict[str, Any]:
    """Return the dates of the demo's calibrations, chosen on the first demo and kept.

    Kept in ``plan.json`` so that a demo run on a later day finds the same runs done.
    """
    path = folder / "plan.json"
    if path.is_file():
        plan: dict[str, Any] = json.loads(path.read_text())
        return plan
    plan = {
        "nights": [(today - timedelta(days=NIGHTS - k)).isoformat() for k in range(NIGHTS)],
        "eic_start": (today - timedelta(days=EIC_DAYS[-1])).isoformat(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan))
    return plan


def _verdicts(passed: list[bool]) -> tuple[int, int]:
    return sum(passed), len(passed) - sum(passed)


def _colibri_nights(
    folder: Path, nights: list[str], seed: int, step: Callable[[str], None]
) -> tuple[int, list[bool]]:
    """Simulate and calibrate the nights whose calibration summary is not there yet."""
    from svomflow.flows.nightly_calibration import nightly_master_calibration
    from svomflow.instruments.ccd_camera import load_camera
    from svomflow.paths import data_home, safe_component
    from svomflow.simulation.colibri import simulate_colibri_night

    camera = load_camera()
    # the flow's own record of a finished night (written after its QC history)
    summaries = data_home() / "calibration" / safe_component(camera.name) / "summaries"
    ran, passed = 0, []
    for k, night in enumerate(nights):
        if (summaries / f"nightly_{safe_component(night)}.json").is_file():
            continue
        bad = k == len(nights) - 1  # the last night: light leak in the biases, saturated flats
        step(f"COLIBRI nightly calibration {night}" + (" (bad frames)" if bad else ""))
        out = folder / f"colibri_{night}"
        if not (out / "truth" / "truth.json").is_file():
            simulate_colibri_night(out, seed + k, night=night, bad_calibration=bad, **_NIGHT)
        summary = nightly_master_calibration(night, str(out / "raw"))
        passed += [bool(g["passed"]) for g in summary["groups"]]
        ran += 1
    return ran, passed


def _eic_calibrations(
    folder: Path, start: str, seed: int, step: Callable[[str], None]
) -> tuple[int, list[bool]]:
    """Simulate the plane's calibration spectra and run the calibrations not done yet."""
    from svomflow.flows.adapter import default_output_root
    from svomflow.flows.eic_calibration import eic_calibration

    t0 = datetime.fromisoformat(start).replace(tzinfo=UTC)
    keys = [f"eiccal-{t0 + timedelta(days=d):%Y%m%dT%H%M%S}" for d in EIC_DAYS]
    # the flow's own record of a finished calibration (written after the gate's verdicts)
    todo = [
        k
        for k, key in enumerate(keys)
        if not (default_output_root() / key / "eic_calibration_summary.json").is_file()
    ]
    if not todo:
        return 0, []
    out = folder / "eic_plane"
    truth_file = out / "truth.json"
    simulated = truth_file.is_file()
    passed: list[bool] = []
    for k in todo:
        what = f"ECLAIRs calibration, day {EIC_DAYS[k]}" + (
            " (gain jump)" if k == len(EIC_DAYS) - 1 else ""
        )
        step(what if simulated else f"simulating the ECLAIRs plane's spectra, {what}")
        if not simulated:
            _simulate_plane(out, start, seed)
            simulated = True
        files = json.loads(truth_file.read_text())["instruments"]["eclairs_plane"]["spectra_files"]
        summary = eic_calibration(files[k])
        passed += [bool(v["promoted"]) for v in summary["verdicts"].values()]
    return len(todo), passed


def _simulate_plane(out: Path, start: str, seed: int) -> None:
    """Simulate the plane's calibration spectra of :data:`EIC_DAYS` (``eic_plane`` scenario)."""
    from svomflow.simulation.scenario import load_scenario, run_scenario

    scenario = load_scenario(
        "eic_plane",
        [
            f"instrument_options.eclairs_plane.start={start}",
            f"instrument_options.eclairs_plane.days={list(EIC_DAYS)}",
            f"instrument_options.eclairs_plane.jump_day={EIC_DAYS[-1]}",
        ],
    )
    run_scenario(scenario, out, seed, register_calibration=False)


def seed_calibration(
    folder: Path, *, seed: int = 1, step: Callable[[str], None] | None = None
) -> CalibrationSeed:
    """Give both centres a calibration history: COLIBRI nightly masters, ECLAIRs CALDB files.

    Runs the nightly master calibration flow on :data:`NIGHTS` small simulated COLIBRI nights
    and the ``eic_calibration`` flow on the ``eic_plane`` simulation's spectra of
    :data:`EIC_DAYS` (products, QC histories and CALDB entries in the home). A run whose flow
    summary is there already is not made again.

    Parameters
    ----------
    folder
        Where the simulated raw frames and spectra go (and ``plan.json``, the dates).
    seed
        Simulation seed.
    step
        Told what starts, once per flow run (at most :data:`CALIBRATION_RUNS` times).
    """
    tell = step or (lambda what: None)
    plan = _plan(folder, datetime.now(UTC).date())
    nights, night_passed = _colibri_nights(folder, list(plan["nights"]), seed, tell)
    eic_runs, eic_passed = _eic_calibrations(folder, str(plan["eic_start"]), seed, tell)
    promoted, refused = _verdicts(night_passed + eic_passed)
    return CalibrationSeed(nights, eic_runs, promoted, refused)
