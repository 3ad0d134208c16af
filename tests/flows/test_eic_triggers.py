"""The eic_triggers flow: CALDB threshold tables by date, missed and spurious triggers listed."""

from __future__ import annotations

from pathlib import Path

from svomflow.calibration.caldb import open_caldb
from svomflow.flows.eic_triggers import eic_triggers
from svomflow.products.catalogue.models import FitsModel
from svomflow.products.eic_saa_files import (
    write_onboard_catalogue,
    write_trigger_log,
    write_trigger_stream,
    write_trigger_thresholds,
)
from svomflow.simulation.onboard_trigger import (
    InjectedBurst,
    default_catalogue,
    default_thresholds,
    onboard_log,
    simulate_stream,
)

DAY = 86400.0


def _day(folder: Path, name: str, t_start: float, seed: int) -> tuple[list[InjectedBurst], object]:
    bursts = [
        InjectedBurst(t_start + 300.0 + 400.0 * k, d, 2500.0)
        for k, d in enumerate((1.0, 10.0, 5.0, 20.0, 2.0, 8.0))
    ]
    bursts.append(InjectedBurst(t_start + 2800.0, 20.0, 3000.0, "Sco X-1"))
    thresholds = default_thresholds()
    stream = simulate_stream(duration_s=3300.0, seed=seed, bursts=bursts, t_start=t_start)
    log, truth = onboard_log(
        stream, thresholds, seed=seed + 1, bursts=bursts, n_missed=1, n_spurious=2
    )
    write_trigger_stream(folder / f"{name}_stream.fits", stream)
    write_trigger_log(folder / f"{name}_triglog.fits", log)
    return bursts, truth


def test_flow_lists_injected_missed_and_spurious(prefect_harness, tmp_path: Path) -> None:
    caldb_root = str(tmp_path / "caldb")
    caldb = open_caldb(caldb_root)
    for label, day in (("TT-1", "2023-01-01"), ("TT-2", "2023-01-03")):
        path = write_trigger_thresholds(tmp_path / f"{label}.fits", default_thresholds(label))
        caldb.register(
            path, telescope="SVOM", instrument="ECLAIRS", codename="TRIGTHR", valid_from=day
        )
    cat = write_onboard_catalogue(tmp_path / "cat.fits", default_catalogue("CAT-1"))
    caldb.register(
        cat, telescope="SVOM", instrument="ECLAIRS", codename="OBSRCCAT", valid_from="2023-01-01"
    )
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    truths = {"d1": _day(inbox, "d1", 1.5 * DAY, 5)[1], "d3": _day(inbox, "d3", 3.5 * DAY, 6)[1]}
    out = str(tmp_path / "products")
    summary = eic_triggers(inbox=str(inbox), out_dir=out, caldb_root=caldb_root)
    assert summary["status"] == "done"
    days = {d["key"]: d for d in summary["days"]}
    assert set(days) == {"trig-d1", "trig-d3"}
    # the table on board is the one valid at the stream's start (CALDB rules)
    assert days["trig-d1"]["thresholds"] == "TT-1" and days["trig-d3"]["thresholds"] == "TT-2"
    for name, truth in truths.items():
        d = days[f"trig-{name}"]
        assert set(truth.spurious) <= set(d["spurious"]), (truth.spurious, d["spurious"])
        for t_true in truth.missed:
            # the dropped trigger's window end lies within a minute of a ground trigger listed as missed
            assert any(abs(t - t_true) < 60.0 for t in d["missed"]), (t_true, d["missed"])
        assert d["counts"]["KNOWN"] == 1  # the Sco X-1 flare, attributed on board
        cmp_path = next(
            p for p in d["products"] if Path(p).name.startswith("TRIGCMP") and p.endswith(".fits")
        )
        table = FitsModel.read(cmp_path).table("TRIGCMP")
        assert table.card("NMISSED") == d["counts"]["MISSED"]
        assert any(p.endswith(".png") for p in d["products"])  # the comparison plot
    again = eic_triggers(inbox=str(inbox), out_dir=out, caldb_root=caldb_root)
    assert again["status"] == "empty"  # each day is compared once


def test_cli_writes_and_checks_a_threshold_table(tmp_path: Path) -> None:
    from svomflow.cli.main import app
    from svomflow.products.eic_saa_files import read_trigger_thresholds
    from typer.testing import CliRunner

    runner = CliRunner()
    out = tmp_path / "tt.fits"
    r = runner.invoke(
        app, ["eic", "triggers", "table-from-instrument", str(out), "--label", "TT-9"]
    )
    assert r.exit_code == 0, r.output
    table = read_trigger_thresholds(out)
    assert table.label == "TT-9" and table == default_thresholds("TT-9")
    shown = runner.invoke(app, ["eic", "triggers", "show", str(out)])
    assert shown.exit_code == 0 and "4-50 keV  10.24 s  6.5 sigma" in shown.output
    bad = runner.invoke(app, ["eic", "triggers", "show", str(tmp_path / "none.fits")])
    assert bad.exit_code == 2
