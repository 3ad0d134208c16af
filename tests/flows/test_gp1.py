"""GP1 end to end on a simulated COLIBRI alert sequence: flow, products, recovered afterglow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import PathEscapeError
from svomflow.flows.gp1 import process_images
from svomflow.instruments.ccd_camera import load_camera
from svomflow.products.ccd_masters import MasterFrame
from svomflow.simulation.colibri import ScienceSpec, simulate_colibri_night
from svomflow.tasks.gp1.config import GP1Config
from svomflow.tasks.gp1.inputs import read_image_file
from svomflow.tasks.gp1.reduction import reduce_image


def truth_masters(truth: dict, out: Path, band: str) -> dict[str, str]:
    """Write masters equal to the simulator's detector maps (what the nightly flow recovers)."""
    td = Path(truth["truth_dir"])
    det = truth["detector"]
    g = det["gain"]

    def master(kind: str, data: np.ndarray, meta: dict) -> MasterFrame:
        d = np.asarray(data, np.float32)
        return MasterFrame(kind, d, np.full_like(d, 1e-3), np.full(d.shape, 5, np.int16), meta)

    bias = master(
        "BIAS", fits.getdata(td / "bias_structure.fits"), {"RDNOISE": det["read_noise_e"] / g}
    )
    dark = master(
        "DARK", fits.getdata(td / "dark_rate.fits") / g, {"CCDTEMP": det["dark_ref_temperature_c"]}
    )
    flat = master("FLAT", fits.getdata(td / f"flat_{band}.fits"), {})
    return {
        "BIAS": str(bias.write(out / "master_bias.fits")),
        "DARK": str(dark.write(out / "master_dark.fits")),
        "FLAT": str(flat.write(out / f"master_flat_{band}.fits")),
    }


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    out = tmp_path_factory.mktemp("colibri")
    truth = simulate_colibri_night(
        out,
        3,
        size=(384, 384),
        n_bias=5,
        n_dark=5,
        n_flat_per_filter=5,
        flat_filters=["r"],
        science=ScienceSpec(n_frames=3),
        star_density_per_arcmin2=20,
    )
    return out, truth, truth_masters(truth, out, "r")


def _config(night, out_dir: Path) -> GP1Config:
    root, truth, masters = night
    cfg = GP1Config(output_dir=str(out_dir), trigger_time=truth["science"]["trigger_time"])
    cfg.steps.astrometry.reference_catalog = str(root / "refcat")
    cfg.steps.reduction.override_bias = masters["BIAS"]
    cfg.steps.reduction.override_dark = masters["DARK"]
    cfg.steps.reduction.override_flat = masters["FLAT"]
    return cfg


def _light_curve(seq: dict) -> list[dict]:
    """The rows of a sequence's light curve product (OTLC)."""
    with fits.open(seq["products"]["OTLC"]["path"]) as hdul:
        lc = hdul["LIGHTCURVE"].data
        return [dict(zip(lc.names, row, strict=True)) for row in lc]


def _check_science(seq: dict, truth: dict, states: dict) -> None:
    ag = truth["science"]["afterglow"]
    tr = seq["transient"]
    assert tr is not None
    # Position within 0.5 pixel (0.19") of the injected afterglow.
    dra = (tr["ALPHA_J2000"] - ag["ra"]) * np.cos(np.deg2rad(ag["dec"])) * 3600
    ddec = (tr["DELTA_J2000"] - ag["dec"]) * 3600
    assert np.hypot(dra, ddec) < 0.5 * 0.38
    # Light curve: each flux within 3 sigma of the injected one (electrons, full reduction).
    for row, frame in zip(_light_curve(seq), truth["science"]["frames"], strict=True):
        pull = (row["FLUX"] - frame["afterglow_flux_e"]) / row["FLUX_ERR"]
        assert abs(pull) < 3, (row["FLUX"], frame["afterglow_flux_e"], row["FLUX_ERR"])
    # Zero point (e-/s) equal to the camera's r-band zero point within its scatter.
    for st in states.values():
        assert st["redlevel"] == "full"
        assert st["zp"] == pytest.approx(25.0, abs=max(3 * st["zp_scatter"], 0.02))
        assert st["astrometry_rms_arcsec"] < 0.4
    alpha, alpha_err = seq["decay_index"]
    assert alpha == pytest.approx(ag["decay_index"], abs=3 * alpha_err + 0.05)


@pytest.mark.integration
def test_gp1_flow_products_and_afterglow(night, tmp_path, prefect_harness):
    from svomflow.flows.gp1 import gp1_reduction

    root, truth, _ = night
    cfg = _config(night, tmp_path / "out")
    raws = [str(root / "raw" / f["file"]) for f in truth["science"]["frames"]]
    result = gp1_reduction(images=raws, config=cfg.model_dump(mode="json"))
    assert result["failed"] == {}
    ((seq_id, seq),) = result["sequences"].items()
    assert seq_id == "sb26112401_r"
    assert sorted(seq["products"]) == ["DT", "OTLC", "OTPO", "OTQLC", "QF", "QTI", "SUMMARY"]
    states = {p: result["images"][p] for p in raws}
    _check_science(seq, truth, states)
    with fits.open(seq["products"]["OTLC"]["path"]) as hdul:
        assert hdul[0].header["PRODTYPE"] == "OTLC"
        assert len(hdul["LIGHTCURVE"].data) == 3
    html = Path(seq["products"]["SUMMARY"]["path"]).read_text()
    assert html.count("data:image/png;base64") == 4  # variability, calibration, sensitivity, chart


def test_header_value_escaping_output_is_rejected(night, tmp_path):
    root, truth, _ = night
    src = root / "raw" / truth["science"]["frames"][0]["file"]
    with fits.open(src) as hdul:
        hdul[0].header["TRIGID"] = "../../etc"
        bad = tmp_path / "evil.fits"
        hdul.writeto(bad)
    cfg = _config(night, tmp_path / "out")
    res = process_images([bad], cfg)
    assert list(res["failed"]) == [str(bad)]
    assert "leave the output directory" in res["failed"][str(bad)]
    assert not (tmp_path / "etc").exists()
    cam = load_camera(cfg.instrument)
    with pytest.raises(PathEscapeError):
        reduce_image(
            read_image_file(bad, cam),
            cam,
            cfg.alert_keyword,
            config=cfg.steps.reduction,
            calibration=_calibration(night[2]),
        )


def _calibration(masters: dict[str, str]) -> CalibrationSet:
    """The masters as a calibration set, as a notebook gives them to a step."""
    return CalibrationSet.from_files({f"colibri_ddrago_b:{k}": v for k, v in masters.items()})


@pytest.mark.integration
def test_gp1_flow_on_fpacked_alert_images(night, tmp_path, prefect_harness):
    """Alert images archived fpack'd (.fits.fz, RICE_1) give the same reduction and science."""
    from svomflow.flows.gp1 import gp1_reduction

    root, truth, _ = night
    cfg = _config(night, tmp_path / "out")
    plain = [root / "raw" / f["file"] for f in truth["science"]["frames"]]
    packed = []
    for p in plain:
        with fits.open(p) as hdul:
            comp = fits.CompImageHDU(hdul[0].data, header=hdul[0].header, compression_type="RICE_1")
            fits.HDUList([fits.PrimaryHDU(), comp]).writeto(tmp_path / (p.name + ".fz"))
        packed.append(str(tmp_path / (p.name + ".fz")))
    result = gp1_reduction(images=packed, config=cfg.model_dump(mode="json"))
    assert result["failed"] == {}
    ((seq_id, seq),) = result["sequences"].items()
    assert seq_id == "sb26112401_r"
    assert sorted(seq["products"]) == ["DT", "OTLC", "OTPO", "OTQLC", "QF", "QTI", "SUMMARY"]
    states = {p: result["images"][p] for p in packed}
    _check_science(seq, truth, states)
    # The flow's reduced image of the first frame is the one of the uncompressed frame.
    cam = load_camera(cfg.instrument)
    direct = reduce_image(
        read_image_file(plain[0], cam),
        cam,
        cfg.alert_keyword,
        config=cfg.steps.reduction,
        calibration=_calibration(night[2]),
    ).reduced
    with fits.open(states[packed[0]]["products"]["REDIMG"]) as hdul:
        flowed_data = np.array(hdul[0].data)
        flowed_mask = np.array(hdul["MASK"].data, dtype=bool)
        flowed_header = hdul[0].header
    np.testing.assert_array_equal(flowed_data, direct.data)
    np.testing.assert_array_equal(flowed_mask, direct.mask)
    assert flowed_header["EXPTIME"] == direct.header["EXPTIME"]
    assert not [k for k in flowed_header if k.startswith("Z")]


def test_one_image_at_a_time_gives_the_sequence_of_all(night, tmp_path):
    """As the watcher runs it: each run adds an image; the last one's products hold all three."""
    root, truth, _ = night
    cfg = _config(night, tmp_path / "out")
    raws = [str(root / "raw" / f["file"]) for f in truth["science"]["frames"]]
    states = {}
    for raw in raws:
        result = process_images([raw], cfg)
        assert result["failed"] == {}
        states[raw] = result["images"][raw]
        ((seq_id, seq),) = result["sequences"].items()
        assert seq["n_images"] == len(states)
    assert seq_id == "sb26112401_r"
    _check_science(seq, truth, states)
