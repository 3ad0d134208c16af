"""``svomflow gp1``: run, module and watch levels, configuration files and path overrides."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from svomflow.cli.main import app
from svomflow.products import ProductStore
from svomflow.simulation.colibri import ScienceSpec, simulate_colibri_night
from svomflow.tasks.gp1.config import load_gp1_config, load_watch_config
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    out = tmp_path_factory.mktemp("colibri_cli")
    truth = simulate_colibri_night(
        out,
        5,
        size=(384, 384),
        n_bias=5,
        n_dark=5,
        n_flat_per_filter=5,
        flat_filters=["r"],
        science=ScienceSpec(n_frames=2),
        star_density_per_arcmin2=20,
    )
    raw = out / "alerts"
    raw.mkdir()
    for f in truth["science"]["frames"]:
        shutil.copy(out / "raw" / f["file"], raw / f["file"])
    return out, truth, raw


def _pipeline_file(tmp_path: Path, night, **extra) -> Path:
    root, _, _ = night
    data = {
        "output_dir": str(tmp_path / "from_file"),
        "steps": {
            "astrometry": {"reference_catalog": str(root / "refcat")},
            "reduction": {"cosmic_rays": False},
        },
        **extra,
    }
    p = tmp_path / "gp1.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_config_paths_from_command_line_win(tmp_path, night):
    f = _pipeline_file(tmp_path, night, input_dir="/nowhere")
    cfg = load_gp1_config(f, input_dir=str(tmp_path), output_dir=str(tmp_path / "cli"))
    assert cfg.input_dir == str(tmp_path) and cfg.output_dir == str(tmp_path / "cli")
    assert load_gp1_config(f).output_dir == str(tmp_path / "from_file")
    w = tmp_path / "w.yaml"
    w.write_text(yaml.safe_dump({"input_dir": "/in", "pipelines": [{"name": "a"}, {"name": "b"}]}))
    wc = load_watch_config(w, output_dir=str(tmp_path / "o"), input_dir=str(tmp_path / "i"))
    assert wc.input_dir == str(tmp_path / "i")
    assert {p.output_dir for p in wc.pipelines} == {str(tmp_path / "o")}


def test_run_offline_with_file_and_overrides(tmp_path, night):
    _, truth, raw = night
    f = _pipeline_file(tmp_path, night)
    out = tmp_path / "cli_out"
    r = runner.invoke(
        app,
        [
            "gp1",
            "run",
            "--config",
            str(f),
            "--input",
            str(raw),
            "--output",
            str(out),
            "--no-prefect",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "images processed: 2, failed: 0" in r.output
    assert not (tmp_path / "from_file").exists()  # the command-line output won
    made = {r.type_code: r for r in ProductStore(out).list(obs_id="sb26112401_r")}
    assert set(made) >= {"DT", "OTQLC", "OTPO", "OTLC", "QTI", "QF", "SUMMARY"}
    assert all(Path(r.path).is_relative_to(out) for r in made.values())
    ag = truth["science"]["afterglow"]
    # This small crowded field without masters has a poor astrometric solution (blends):
    # the position must still agree with the truth within the OTPO product's own error.
    from astropy.io import fits

    po = fits.getheader(made["OTPO"].path)
    d = (
        np.hypot(
            (po["RA_OBJ"] - ag["ra"]) * np.cos(np.deg2rad(ag["dec"])), po["DEC_OBJ"] - ag["dec"]
        )
        * 3600
    )
    assert d < 3 * po["POS_ERR"]


def _image_products(out: Path, stem: str) -> dict[str, str]:
    """The current products of one image (``obs_id`` = sequence and stem), by type."""
    rows = ProductStore(out).list(obs_id=f"sb26112401_r_{stem}")
    return {r.type_code: r.path for r in rows}


def test_module_level_chain(tmp_path, night):
    root, _, raw = night
    out = tmp_path / "mod"
    first = sorted(raw.iterdir())[0]
    stem = first.name[:-5]
    r = runner.invoke(
        app, ["gp1", "module", "reduction", "--input", str(first), "--output", str(out)]
    )
    assert r.exit_code == 0, r.output
    reduced = _image_products(out, stem)["REDIMG"]
    assert Path(reduced).is_file() and Path(reduced).is_relative_to(out)
    # A module file holding only its section; packaged defaults for everything else. The
    # reduced image of the previous module is the input: the reduction passes it through.
    mod = tmp_path / "findstars.yaml"
    mod.write_text(yaml.safe_dump({"extract": {"detect_thresh": 3.0}}))
    r = runner.invoke(
        app,
        [
            "gp1",
            "module",
            "findstars",
            "--input",
            reduced,
            "--output",
            str(out),
            "--config",
            str(mod),
        ],
    )
    assert r.exit_code == 0, r.output
    state = json.loads(Path(_image_products(out, stem)["IMGSUM"]).read_text())
    assert state["done"] == ["reduction", "findstars"]
    r = runner.invoke(
        app,
        [
            "gp1",
            "module",
            "astrometry",
            "--input",
            reduced,
            "--output",
            str(out),
            "--set",
            f"steps.astrometry.reference_catalog={root / 'refcat'}",
            # the sources of the findstars module above (it runs again before the astrometry)
            "--set",
            "steps.findstars.extract.detect_thresh=3.0",
        ],
    )
    assert r.exit_code == 0, r.output
    state = json.loads(Path(_image_products(out, stem)["IMGSUM"]).read_text())
    assert state["astrometry_n"] >= 6 and state["astrometry_rms_arcsec"] < 0.4


def test_user_errors_are_one_line(tmp_path, night):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"steps": {"photometry": {"nope": 1}}}))
    r = runner.invoke(app, ["gp1", "run", "--config", str(bad), "--input", str(tmp_path)])
    assert r.exit_code != 0 and "steps.photometry.nope: unknown key" in r.output
    r = runner.invoke(
        app, ["gp1", "module", "nothing", "--input", str(tmp_path), "--output", str(tmp_path)]
    )
    assert r.exit_code != 0 and "unknown module" in r.output
    r = runner.invoke(app, ["gp1", "run", "--input", str(tmp_path / "missing")])
    assert r.exit_code != 0 and "does not exist" in r.output


def test_watch_command_until_idle(tmp_path, night):
    _, _, raw = night
    inp = tmp_path / "in"
    inp.mkdir()
    for f in sorted(raw.iterdir()):
        shutil.copy(f, inp / f.name)
    w = tmp_path / "watch.yaml"
    red_only = {
        n: {"enabled": False}
        for n in ("findstars", "astrometry", "photometry", "subtraction", "stacking", "summary")
    }
    w.write_text(
        yaml.safe_dump(
            {
                "settle_seconds": 0.2,
                "poll_seconds": 0.1,
                "pipelines": [
                    {"name": "alerts", "route": {"OBSERVER": "svom"}, "steps": red_only},
                    {"name": "others", "route": {"EXPTYPE": "object"}, "steps": red_only},
                ],
            }
        )
    )
    r = runner.invoke(
        app,
        [
            "gp1",
            "watch",
            "--config",
            str(w),
            "--input",
            str(inp),
            "--output",
            str(tmp_path / "out"),
            "--until-idle",
            "0.5",
            "--no-prefect",
            "--polling",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "ledger: done 2" in r.output
