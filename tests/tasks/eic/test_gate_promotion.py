"""Promotion through the gate against a real CALDB and products store (plain and Prefect)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from prefect import flow
from svomflow.calibration.caldb import open_caldb
from svomflow.flows.adapter import FlowContext
from svomflow.flows.eic_promotion import PromotionRequest, promote, promote_task
from svomflow.tasks.eic.gate import Cut, GateConfig, QCFigure

GATE = GateConfig(cuts=[Cut("mean", "absolute", 0.0, 10.0), Cut("mean", "relative", -0.05, 0.05)])


def _candidate(folder: Path, name: str, mean: float) -> tuple[Path, float]:
    """Write a small calibration file whose QC figure is the mean of its data."""
    data = np.full((8, 8), mean, dtype=np.float32)
    hdu = fits.ImageHDU(data, name="TESTCODE")
    path = folder / f"{name}.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path, float(data.mean())


def _measure(path: Path) -> list[QCFigure]:
    with fits.open(path) as h:
        return [QCFigure("mean", float(np.mean(h["TESTCODE"].data)))]


def _request(path: Path, mean: float, day: int) -> PromotionRequest:
    return PromotionRequest(
        path=str(path),
        codename="TESTCODE",
        telescope="SVOM",
        instrument="ECLAIRS",
        valid_from=_dt.datetime(2026, 3, day, tzinfo=_dt.UTC),
        figures=(QCFigure("mean", mean),),
        gate=GATE,
        description=f"test candidate day {day}",
    )


def _current_path(caldb_root: str, day: int) -> Path:
    sel = open_caldb(caldb_root).select(
        "TESTCODE", instrument="ECLAIRS", time=f"2026-03-{day:02d}T12:00:00"
    )
    return Path(sel.path)


def test_gate_promotes_good_keeps_current_on_bad_and_records_history(tmp_path: Path) -> None:
    caldb_root = str(tmp_path / "caldb")
    ctx = FlowContext("eic_promotion_test", "2026-03", str(tmp_path / "products"))
    first, m1 = _candidate(tmp_path, "c1", 4.0)
    r1 = promote(_request(first, m1, 1), ctx, caldb_root=caldb_root)
    assert r1.promoted and r1.current is None and r1.verdict.notes
    jump, m2 = _candidate(tmp_path, "c2", 4.6)  # +15 %: refused
    r2 = promote(_request(jump, m2, 2), ctx, caldb_root=caldb_root)
    assert not r2.promoted and r2.current is not None and r2.current.id == r1.entry.id  # type: ignore[union-attr]
    assert "relative" in r2.verdict.reasons[0]
    assert _measure(_current_path(caldb_root, 2))[0].value == pytest.approx(4.0)  # old stays
    small, m3 = _candidate(tmp_path, "c3", 4.1)  # +2.5 %: promoted
    r3 = promote(_request(small, m3, 3), ctx, caldb_root=caldb_root)
    assert r3.promoted and r3.verdict.current[0].value == pytest.approx(4.0)
    assert _measure(_current_path(caldb_root, 3))[0].value == pytest.approx(4.1)
    again = promote(_request(small, m3, 3), ctx, caldb_root=caldb_root)  # a re-run
    assert again.entry is not None and again.entry.id == r3.entry.id  # type: ignore[union-attr]
    assert again.verdict == r3.verdict  # compared with the same current file as before
    assert len(open_caldb(caldb_root).list(instrument="ECLAIRS", codename="TESTCODE")) == 2
    assert again.history is not None and again.plot is not None
    table = Table.read(again.history, hdu="CALQCH")
    assert list(table["PROMOTED"]) == [True, False, True]
    assert list(np.round(table["CURRENT"], 3)[1:]) == [4.0, 4.0]
    assert Path(again.plot).read_bytes()[:4] == b"\x89PNG"


def test_current_registered_outside_the_gate_is_measured(tmp_path: Path) -> None:
    caldb_root = str(tmp_path / "caldb")
    ctx = FlowContext("eic_promotion_test", "2026-03", str(tmp_path / "products"))
    seed, _ = _candidate(tmp_path, "default", 4.0)
    open_caldb(caldb_root).register(
        seed, telescope="SVOM", instrument="ECLAIRS", codename="TESTCODE", valid_from="2026-01-01"
    )
    cand, m = _candidate(tmp_path, "c1", 5.0)
    blind = promote(_request(cand, m, 1), ctx, caldb_root=caldb_root)
    assert not blind.promoted  # the current file's figures are unknown: cannot compare
    assert "cannot compare" in blind.verdict.reasons[0]
    seen = promote(_request(cand, m, 1), ctx, caldb_root=caldb_root, measure=_measure)
    assert not seen.promoted and "+25%" in seen.verdict.reasons[0]
    ok, m_ok = _candidate(tmp_path, "c2", 4.08)
    assert promote(_request(ok, m_ok, 2), ctx, caldb_root=caldb_root, measure=_measure).promoted


def test_compare_adds_figures_that_need_both_files(tmp_path: Path) -> None:
    caldb_root = str(tmp_path / "caldb")
    ctx = FlowContext("eic_promotion_test", "2026-03", str(tmp_path / "products"))
    gate = GateConfig(cuts=[Cut("moved", "compared", None, 0.5)])

    def moved(a: Path, b: Path) -> list[QCFigure]:
        da, db = (fits.getdata(p, "TESTCODE") for p in (a, b))
        return [QCFigure("moved", float(np.mean(np.abs(da - db) > 0.5)))]

    p1, m1 = _candidate(tmp_path, "c1", 4.0)
    p2, m2 = _candidate(tmp_path, "c2", 5.0)
    req1 = PromotionRequest(**{**_request(p1, m1, 1).__dict__, "gate": gate})
    req2 = PromotionRequest(**{**_request(p2, m2, 2).__dict__, "gate": gate})
    assert not promote(req1, ctx, caldb_root=caldb_root, compare=moved).verdict.reasons
    r2 = promote(req2, ctx, caldb_root=caldb_root, compare=moved)
    assert not r2.promoted and r2.verdict.reasons == ("moved = 1, above 0.5",)


@pytest.mark.integration
def test_promote_task_runs_in_a_flow(prefect_harness: None, tmp_path: Path) -> None:
    caldb_root = str(tmp_path / "caldb")
    path, mean = _candidate(tmp_path, "c1", 4.0)

    @flow(name="eic-promotion-test")
    def run() -> bool:
        ctx = FlowContext("eic_promotion_test", "2026-03", str(tmp_path / "products"))
        return promote_task(_request(path, mean, 1), ctx, caldb_root=caldb_root).promoted

    assert run() is True
    assert _measure(_current_path(caldb_root, 2))[0].value == pytest.approx(4.0)
