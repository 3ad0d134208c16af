"""``svomflow xband`` command line: user errors before any flow run."""

from __future__ import annotations

from astropy.io import fits
from typer.testing import CliRunner


def test_missing_and_unknown_event_files_are_one_line_errors(tmp_path) -> None:
    from svomflow.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["xband", "--events", str(tmp_path / "nope.fits")])
    assert res.exit_code != 0
    assert "nope.fits: no such event file" in res.output
    other = tmp_path / "mxt.fits"
    fits.HDUList([fits.PrimaryHDU(header=fits.Header([("INSTRUME", "MXT")]))]).writeto(other)
    res = runner.invoke(app, ["xband", "--events", str(other)])
    assert res.exit_code != 0
    assert "mxt.fits: INSTRUME ['MXT'] is none of ECLAIRS, GRM" in res.output
    assert "Traceback" not in res.output
