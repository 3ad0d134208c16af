"""Master bias/dark/flat from a simulated night equal the injected maps within the noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from svomflow.instruments.ccd_camera import load_camera
from svomflow.products.ccd_masters import read_master
from svomflow.simulation.colibri import read_truth_map, simulate_colibri_night
from svomflow.tasks.ccd.combine import CombineConfig, combine_stack
from svomflow.tasks.ccd.master_builders import (
    build_master_bias,
    build_master_dark,
    build_master_flat,
)
from svomflow.tasks.masters.config import NightlyCalibrationConfig
from svomflow.tasks.masters.groups import group_frames, refuse_small_groups, scan_night

SIZE = (128, 160)
N_BIAS, N_DARK, N_FLAT = 7, 5, 5


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    out = tmp_path_factory.mktemp("colibri_night")
    truth = simulate_colibri_night(
        out,
        seed=11,
        size=SIZE,
        n_bias=N_BIAS,
        n_dark=N_DARK,
        dark_exposures=(300.0,),
        n_flat_per_filter=N_FLAT,
        flat_filters=("r",),
        science=False,
    )
    return out, truth


def _files(truth, kind, filt=None):
    raw = Path(truth["raw_dir"])
    return [
        raw / f["file"]
        for f in truth["calibration_frames"]
        if f["type"] == kind and (filt is None or f["filter"] == filt)
    ]


def _efficiency(n: int, seed: int = 0) -> float:
    """Variance of the default clipped mean relative to the plain mean (Monte Carlo, Gaussian)."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0.0, 1.0, (n, 400, 500)).astype(np.float32)
    m, _ = combine_stack(s, CombineConfig(), noise=(np.ones(n), np.zeros(n)))
    return float(np.var(m) * n)


def _chi2_ok(resid: np.ndarray, var: np.ndarray, eta: float) -> tuple[float, float]:
    z2 = resid**2 / (eta * var)
    n = z2.size
    # chi^2 / n has standard deviation sqrt(2 / n); allow 6 of them.
    return float(z2.mean()), 6.0 * np.sqrt(2.0 / n)


def test_master_bias_dark_flat_match_truth(night, tmp_path):
    _, truth = night
    cam = load_camera()
    q = 1.0 / 12.0  # ADU quantisation of the raw frames
    rn2 = cam.read_noise_adu**2 + q

    bias = build_master_bias(_files(truth, "bias"), cam)
    tb = read_truth_map(truth, "bias_structure")
    chi2, tol = _chi2_ok(bias.data - tb, np.full(tb.shape, rn2 / N_BIAS), _efficiency(N_BIAS))
    assert abs(chi2 - 1.0) < tol, chi2
    # The error map matches the real scatter too.
    assert abs(np.std(bias.data - tb) / np.median(bias.error) - 1.0) < 0.1

    dark = build_master_dark(_files(truth, "dark"), cam, bias)
    t = 300.0
    temp = dark.meta["CCDTEMP"]
    rate_adu = read_truth_map(truth, "dark_rate") / cam.gain * cam.dark_scale(temp, -100.0)
    # The master bias's own error enters every dark frame identically: take it out exactly.
    expected = rate_adu + (tb - bias.data) / t
    var = (rn2 + rate_adu * t / cam.gain) / t**2 / N_DARK
    chi2, tol = _chi2_ok(dark.data - expected, var, _efficiency(N_DARK))
    assert abs(chi2 - 1.0) < tol, chi2

    flat = build_master_flat(_files(truth, "flat", "r"), cam, bias, dark)
    tf = read_truth_map(truth, "flats", "r")
    levels = np.array(
        [f["flat_level_adu"] for f in truth["calibration_frames"] if f["type"] == "flat"]
    )
    var = np.mean([(lv * tf / cam.gain + rn2) / lv**2 for lv in levels], axis=0) / N_FLAT
    chi2, tol = _chi2_ok(flat.data - tf, var, _efficiency(N_FLAT))
    assert abs(chi2 - 1.0) < tol, chi2
    assert np.median(flat.data) == pytest.approx(1.0, abs=1e-6)

    # Round trip through FITS.
    path = flat.write(tmp_path / "flat.fits")
    back = read_master(path)
    np.testing.assert_array_equal(back.data, flat.data)
    assert back.meta["FILTER"] == "r" and back.meta["NCOMBINE"] == N_FLAT


def test_grouping_and_min_frames(night):
    out, _ = night
    cam = load_camera()
    cfg = NightlyCalibrationConfig().resolved(cam)
    scan = scan_night(out / "raw", "2026-11-23", cam, cfg)
    assert len(scan.frames) == N_BIAS + N_DARK + N_FLAT
    groups = group_frames(scan.frames, cam, cfg)
    kinds = sorted((g.kind, len(g.frames)) for g in groups)
    assert kinds == [("bias", N_BIAS), ("dark", N_DARK), ("flat", N_FLAT)]
    ok, refused = refuse_small_groups(groups, 6)
    assert [g.kind for g in ok] == ["bias"]
    assert all("< minimum 6" in why for _, why in refused)
    # Another night (or a different camera) selects nothing.
    assert scan_night(out / "raw", "2026-11-24", cam, cfg).frames == []


def test_dark_groups_split_by_temperature_and_exposure(night):
    _, truth = night
    cam = load_camera()
    cfg = NightlyCalibrationConfig().resolved(cam)
    from dataclasses import replace

    from svomflow.products.ccd_frames import read_frame_info

    infos = [read_frame_info(p, cam) for p in _files(truth, "dark")]
    warm = [replace(i, temperature=i.temperature + 10.0) for i in infos[:2]]
    longer = [replace(i, exptime=60.0) for i in infos[2:3]]
    groups = group_frames(infos[3:] + warm + longer, cam, cfg)
    assert sorted(len(g.frames) for g in groups) == [1, 2, 2]
    assert len({g.key for g in groups}) == 3


def _fpack(src: Path, dst: Path) -> Path:
    """Write ``src``'s primary image as fpack does (empty primary, RICE_1 CompImageHDU)."""
    from astropy.io import fits

    with fits.open(src) as hdul:
        comp = fits.CompImageHDU(hdul[0].data, header=hdul[0].header, compression_type="RICE_1")
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(dst)
    return dst


def test_masters_from_fpacked_frames_equal_the_plain_ones(night, tmp_path):
    _, truth = night
    cam = load_camera()
    cfg = NightlyCalibrationConfig().resolved(cam)
    raw = Path(truth["raw_dir"])
    fz_dir = tmp_path / "raw_fz"
    fz_dir.mkdir()
    for f in raw.glob("*.fits"):
        _fpack(f, fz_dir / (f.name + ".fz"))
    scan = scan_night(fz_dir, "2026-11-23", cam, cfg)
    assert len(scan.frames) == N_BIAS + N_DARK + N_FLAT and scan.skipped == {}
    # 23-row chunks straddle the one-row tiles and the end of the image (128 rows).
    comb = CombineConfig(chunk_rows=23)

    def build(where: Path):
        def files(kind, filt=None):
            return [
                where / (p.name if where == raw else p.name + ".fz")
                for p in _files(truth, kind, filt)
            ]

        bias = build_master_bias(files("bias"), cam, combine=comb)
        dark = build_master_dark(files("dark"), cam, bias, combine=comb)
        return bias, dark, build_master_flat(files("flat", "r"), cam, bias, dark, combine=comb)

    for plain, packed in zip(build(raw), build(fz_dir), strict=True):
        np.testing.assert_array_equal(packed.data, plain.data)
        np.testing.assert_array_equal(packed.error, plain.error)
        np.testing.assert_array_equal(packed.count, plain.count)
        assert packed.meta == plain.meta
        assert [s["noise"] for s in packed.frames] == [s["noise"] for s in plain.frames]
    # A night both uncompressed and fpack'd: each frame is taken once, uncompressed.
    both = tmp_path / "both"
    both.mkdir()
    for f in [*raw.glob("*.fits"), *fz_dir.iterdir()]:
        (both / f.name).symlink_to(f)
    scan = scan_night(both, "2026-11-23", cam, cfg)
    assert sorted(i.path.name for i in scan.frames) == sorted(p.name for p in raw.glob("*.fits"))
    assert len(scan.skipped) == N_BIAS + N_DARK + N_FLAT
    assert all(why.startswith("same frame as ") for why in scan.skipped.values())


def test_a_frame_of_no_known_exposure_type_is_listed_as_skipped(night, tmp_path) -> None:
    """EXPTYPE = -1e300 in one bias: the frame vanished from the night unlisted (calib-096)."""
    import shutil

    from astropy.io import fits

    out, _ = night
    cam = load_camera()
    cfg = NightlyCalibrationConfig().resolved(cam)
    raw = tmp_path / "raw"
    shutil.copytree(out / "raw", raw)
    bad = sorted(raw.glob("*bias*.fits"))[0]
    with fits.open(bad, mode="update") as hdul:
        hdul[0].header[cam.kw("exposure_type")] = -1e300
    scan = scan_night(raw, "2026-11-23", cam, cfg)
    assert len(scan.frames) == N_BIAS + N_DARK + N_FLAT - 1
    assert list(scan.skipped) == [str(bad)]
    assert "is none of the camera's (bias, dark, flat, object)" in scan.skipped[str(bad)]
