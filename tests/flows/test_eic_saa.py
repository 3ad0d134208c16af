"""The eic_saa flow: weekly contours promoted through the gate, a moved SAA refused, XML export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from svomflow.calibration.caldb import open_caldb
from svomflow.flows.eic_saa import eic_saa
from svomflow.products.eic_saa_files import read_saa_contour, read_saa_xml, write_orbit_rates
from svomflow.simulation.eclairs_orbit_rates import simulate_orbit_rates, variant_polygon
from svomflow.tasks.eic.saa import polygon_iou

WEEK = 7 * 86400.0


def _week(folder: Path, week: int, case: str = "nominal") -> str:
    rates = simulate_orbit_rates(
        days=7, seed=100 + week, t_start=week * WEEK, polygon=variant_polygon(case),
        drift_per_day=0.05,
    )  # fmt: skip
    path = folder / f"rates_w{week}_{case}.fits"
    write_orbit_rates(path, rates)
    return str(path)


def test_weekly_contours_promoted_moved_one_refused(prefect_harness, tmp_path: Path) -> None:
    caldb = str(tmp_path / "caldb")
    out = str(tmp_path / "products")
    first = eic_saa(rate_files=[_week(tmp_path, 0)], out_dir=out, caldb_root=caldb)
    p1 = first["promotion"]
    assert first["status"] == "done" and p1["promoted"], p1["reasons"]
    assert p1["current_path"] is None  # the first contour: nothing to compare with
    xml = Path(first["xml"]).read_text()
    back = read_saa_xml(xml)  # validated against the XSD on the way in
    truth = [np.array(variant_polygon("nominal"))]
    assert polygon_iou(back.polygons, truth, back.lat_range_deg) > 0.9

    second = eic_saa(rate_files=[_week(tmp_path, 1)], out_dir=out, caldb_root=caldb)
    p2 = second["promotion"]
    assert p2["promoted"], p2["reasons"]
    assert p2["current_path"] == p1["caldb_path"]
    assert p2["figures"]["iou_current"] > 0.95  # week-to-week stability

    moved = eic_saa(rate_files=[_week(tmp_path, 2, "shifted")], out_dir=out, caldb_root=caldb)
    p3 = moved["promotion"]
    assert not p3["promoted"] and moved["xml"] is None
    assert any("iou_current" in r for r in p3["reasons"]), p3["reasons"]
    # after the refused week, the contour in force is still the second week's
    entry = open_caldb(caldb).select("SAACONT", instrument="ECLAIRS", time="2023-01-25T00:00:00")
    assert Path(entry.path) == Path(p2["caldb_path"])
    assert polygon_iou(read_saa_contour(entry.path).polygons, truth, (-30.0, 30.0)) > 0.9
    assert Path(p3["qc_history"]).is_file() and Path(p3["qc_plot"]).is_file()


def test_empty_rates_folder(prefect_harness, tmp_path: Path) -> None:
    summary = eic_saa(
        rates_dir=str(tmp_path), out_dir=str(tmp_path / "p"), caldb_root=str(tmp_path / "c")
    )
    assert summary["status"] == "empty"
