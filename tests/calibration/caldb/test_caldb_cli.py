"""``svomflow caldb`` round trip with typer's CliRunner."""

from __future__ import annotations

import json

from astropy.io import fits
from svomflow.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["caldb", *args])


def test_register_select_list_supersede_export(tmp_path, make_file):
    db = str(tmp_path / "caldb")
    r = run(
        "register",
        str(make_file("g1.fits")),
        "--instrument",
        "eclairs",
        "--codename",
        "gain",
        "--valid-from",
        "2024-01-01",
        "--boundary",
        "ENERG(4-150)keV",
        "--caldb",
        db,
    )
    assert r.exit_code == 0, r.output
    assert "registered entry 1 in index version 1" in r.output
    r = run(
        "register",
        str(make_file("g2.fits")),
        "--instrument",
        "ECLAIRS",
        "--codename",
        "GAIN",
        "--valid-from",
        "2024-06-01T12:00:00",
        "--detector",
        "D1",
        "--caldb",
        db,
    )
    assert r.exit_code == 0, r.output

    r = run(
        "select",
        "GAIN",
        "--instrument",
        "ECLAIRS",
        "--time",
        "2024-07-01",
        "--boundary-value",
        "energ=10",
        "--json",
        "--caldb",
        db,
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["id"] == 2
    r = run(
        "select",
        "GAIN",
        "--instrument",
        "ECLAIRS",
        "--time",
        "2024-07-01",
        "--detector",
        "D2",
        "--caldb",
        db,
    )
    assert r.exit_code == 0 and r.output.strip().endswith("g1_20240101_v1.fits")
    r = run(
        "select",
        "GAIN",
        "--instrument",
        "ECLAIRS",
        "--time",
        "2024-07-01",
        "--boundary-value",
        "energ=200",
        "--caldb",
        db,
    )
    assert r.exit_code == 0 and r.output.strip().endswith(
        "g2_20240601_v2.fits"
    )  # g2 has no ENERG bound

    r = run("supersede", "2", "--caldb", db)
    assert r.exit_code == 0 and "quality 5 in index version 3" in r.output
    r = run("list", "--json", "--caldb", db)
    assert [e["id"] for e in json.loads(r.output)] == [1]
    r = run("list", "--all-qualities", "--caldb", db)
    assert r.exit_code == 0 and len(r.output.strip().splitlines()) == 2 and "q=5" in r.output
    r = run(
        "select",
        "GAIN",
        "--instrument",
        "ECLAIRS",
        "--time",
        "2024-07-01",
        "--index-version",
        "2",
        "--caldb",
        db,
    )
    assert r.output.strip().endswith("g2_20240601_v2.fits")

    out = tmp_path / "caldb.indx"
    r = run("export", str(out), "--caldb", db)
    assert r.exit_code == 0, r.output
    assert list(fits.getdata(out, "CIF")["CAL_QUAL"]) == [0, 5]


def test_bad_input_is_one_line_and_nonzero(tmp_path, make_file):
    db = str(tmp_path / "caldb")
    cases = [
        ("select", "GAIN", "--instrument", "ECLAIRS", "--time", "2024-07-01", "--caldb", db),
        ("select", "GAIN", "--instrument", "ECLAIRS", "--time", "soon", "--caldb", db),
        (
            "select",
            "GAIN",
            "--instrument",
            "X",
            "--time",
            "2024-01-01",
            "--boundary-value",
            "E",
            "--caldb",
            db,
        ),
        (
            "register",
            str(tmp_path / "missing.fits"),
            "--instrument",
            "X",
            "--codename",
            "Y",
            "--valid-from",
            "2024-01-01",
            "--caldb",
            db,
        ),
        (
            "register",
            str(make_file("a.fits")),
            "--instrument",
            "X",
            "--codename",
            "Y",
            "--valid-from",
            "2024-01-01",
            "--boundary",
            "BAD",
            "--caldb",
            db,
        ),
        ("supersede", "7", "--caldb", db),
    ]
    for args in cases:
        r = run(*args)
        assert r.exit_code != 0, args
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("svomflow: error:"), (args, r.output)
