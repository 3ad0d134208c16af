"""`svomflow vhf`: one JSON object on success, one line and a non-zero exit on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.cli.main import app
from svomflow.config import load_instrument
from svomflow.simulation.calibration import register_calibration
from svomflow.simulation.scenario import load_scenario, run_scenario
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("short_grb_cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SVOMFLOW_CALDB", str(out / "caldb"))  # not the home of whichever test
        return out, run_scenario(load_scenario("short_grb"), out, seed=5)


@pytest.fixture
def caldb(sim: tuple[Path, dict]) -> None:
    """The simulator's calibration registered in this test's CALDB (as `svomflow simulate` does)."""
    d, truth = sim
    for name, v in truth["instruments"].items():
        files = {code: d / f for code, f in v["files"]["calibration"].items()}
        register_calibration(files, load_instrument(name))


def _run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["vhf", *args])
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.usefixtures("caldb")
def test_json_output_has_the_required_keys(sim, tmp_path) -> None:
    d, truth = sim
    code, out, err = _run(
        "--events",
        str(d / "eclairs_l1_events.fits"),
        str(d / "grm_l1_events.fits"),
        "--out",
        str(tmp_path / "p"),
        "--band",
        "50",
        "300",
        "--json",
        "--no-prefect",
    )
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1  # exactly one JSON object on stdout
    obj = json.loads(lines[0])
    for key in (
        "t0",
        "t90",
        "t90_err",
        "t90_start",
        "t50",
        "peak_flux",
        "hardness_ratio",
        "classification",
        "position",
        "products",
    ):
        assert key in obj
    assert set(obj["peak_flux"]) == {"0.064", "0.256", "1.024"}
    assert {"rate", "start"} <= set(obj["peak_flux"]["0.064"])
    assert obj["classification"]["class"] == "short" and 0 <= obj["classification"]["p_short"] <= 1
    assert obj["t90_band_kev"] == [50.0, 300.0]
    # the ECLAIRs band was clipped to its channels and says so
    assert obj["per_instrument"]["ECLAIRS"]["band_kev"] == [50.0, 150.0]
    assert all(Path(p).is_file() for p in obj["products"].values())
    # T0: the imaging instrument's on-board trigger, else the other files' TRIGTIME
    onboard = truth["instruments"]["eclairs"]["onboard_trigger"]
    assert obj["t0"] == pytest.approx(onboard["time"] if onboard else truth["t0"])


def _copy_events(src: Path, dst: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    with fits.open(src) as h:
        hdus = fits.HDUList([x.copy() for x in h])
    edit(hdus)
    hdus.writeto(dst)
    return dst


def _one_line_error(code: int, out: str, err: str, *words: str) -> None:
    assert code != 0
    text = (out + err).strip()
    assert len(text.splitlines()) == 1, text
    assert text.startswith("svomflow: error:")
    for w in words:
        assert w in text, text


@pytest.mark.usefixtures("caldb")
def test_empty_and_truncated_files(sim, tmp_path) -> None:
    d, _ = sim
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    _one_line_error(*_run("--events", str(empty), "--no-prefect"), "empty")
    data = (d / "grm_l1_events.fits").read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(data[: len(data) // 2])
    _one_line_error(
        *_run("--events", str(cut), "--no-prefect", "--out", str(tmp_path)), "truncated"
    )


def test_missing_ebounds(sim, tmp_path) -> None:
    """Events of an instrument without a CALDB (a foreign one) and without EBOUNDS."""
    d, _ = sim

    def foreign_without_ebounds(h: fits.HDUList) -> None:
        h.pop("EBOUNDS")
        for x in h:
            x.header["INSTRUME"] = "FOO"

    bad = _copy_events(d / "grm_l1_events.fits", tmp_path / "noeb.fits", foreign_without_ebounds)
    _one_line_error(*_run("--events", str(bad), "--no-prefect", "--out", str(tmp_path)), "EBOUNDS")


def test_missing_calibration_names_every_file(sim, tmp_path) -> None:
    """Nothing registered in this home's CALDB: one line naming each missing file."""
    d, _ = sim
    code, out, err = _run(
        "--events", str(d / "grm_l1_events.fits"), "--no-prefect", "--out", str(tmp_path)
    )
    _one_line_error(code, out, err, "grm:EBOUNDS", "grm:DEADTIME")  # RSPPAR: optional


@pytest.mark.usefixtures("caldb")
def test_t0_outside_the_data(sim, tmp_path) -> None:
    d, truth = sim
    code, out, err = _run(
        "--events",
        str(d / "grm_l1_events.fits"),
        "--t0",
        str(truth["t0"] + 1e5),
        "--no-prefect",
        "--out",
        str(tmp_path),
    )
    _one_line_error(code, out, err, "outside the data")


@pytest.mark.usefixtures("caldb")
def test_event_list_without_the_burst(sim, tmp_path) -> None:
    d, truth = sim

    def drop_burst(h: fits.HDUList) -> None:
        # keep only the background part of the data: cut everything after T0 - 1 s
        for ext in [x for x in h if x.name == "EVENTS"]:
            keep = ext.data["TIME"] < truth["t0"] - 1.0
            ext.data = ext.data[keep]
        h["GTI"].data["STOP"][:] = truth["t0"] - 1.0

    bad = _copy_events(d / "grm_l1_events.fits", tmp_path / "noburst.fits", drop_burst)
    code, out, err = _run(
        "--events",
        str(bad),
        "--t0",
        str(truth["t0"] - 10.0),
        "--no-prefect",
        "--out",
        str(tmp_path),
    )
    _one_line_error(code, out, err, "no burst found")


@pytest.mark.usefixtures("caldb")
def test_unsorted_and_duplicate_times_give_the_same_numbers(sim, tmp_path) -> None:
    d, _ = sim
    src = d / "grm_l1_events.fits"
    rng = np.random.default_rng(1)

    def shuffle(h: fits.HDUList) -> None:
        for ext in [x for x in h if x.name == "EVENTS"]:
            ext.data = ext.data[rng.permutation(len(ext.data))]

    def duplicate(h: fits.HDUList) -> None:
        ext = h["EVENTS"]
        ext.data = np.concatenate([ext.data, ext.data[:3]]).view(fits.FITS_rec)
        ext.data.sort(order="TIME")

    shuffled = _copy_events(src, tmp_path / "shuffled.fits", shuffle)
    dup = _copy_events(src, tmp_path / "dup.fits", duplicate)
    res = {}
    for name, f in (("orig", src), ("shuffled", shuffled), ("dup", dup)):
        code, out, err = _run(
            "--events", str(f), "--json", "--no-prefect", "--out", str(tmp_path / name)
        )
        assert code == 0, err
        res[name] = json.loads(out)
    # sorting on read gives the very same analysis; it is recorded as a flag
    assert res["shuffled"]["t90"] == pytest.approx(res["orig"]["t90"])
    assert any("sorted on read" in f for f in res["shuffled"]["flags"])
    assert any("duplicate time tags" in f for f in res["dup"]["flags"])
    assert abs(res["dup"]["t90"] - res["orig"]["t90"]) < res["orig"]["t90_err"]


def test_bad_band_and_unknown_option(sim) -> None:
    d, _ = sim
    _one_line_error(
        *_run("--events", str(d / "grm_l1_events.fits"), "--band", "300", "50"), "--band"
    )
    code, out, err = _run("--events", str(d / "grm_l1_events.fits"), "--no-such")
    assert code == 2 and "--no-such" in out + err  # click's usage error


# the console script's own entry point, in a fresh interpreter; prints what it imported
_FRESH_CLI = """
import sys
from svomflow.cli.main import main
sys.argv = ["svomflow", "vhf", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("prefect", "prefect_dask"))
print("IMPORTED", len(loaded), " ".join(loaded[:5]), file=sys.stderr)
"""


@pytest.mark.usefixtures("caldb")
def test_no_prefect_run_never_imports_prefect(sim, tmp_path) -> None:
    """`svomflow vhf --no-prefect` in a fresh process: a whole run, and no Prefect module loaded."""
    import os
    import subprocess
    import sys

    d, _ = sim
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_CLI, "--events", str(d / "eclairs_l1_events.fits"),
         str(d / "grm_l1_events.fits"), "--out", str(tmp_path / "p"), "--json", "--no-prefect"],
        env=dict(os.environ),  # this test's home and its CALDB
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout.strip().splitlines()[-1])
    assert obj["t90"] is not None and all(Path(p).is_file() for p in obj["products"].values())
    assert "IMPORTED 0 " in proc.stderr, proc.stderr.splitlines()[-1]
