"""COLIBRI simulator: headers, reproducibility, noise and flux statistics against the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from svomflow.instruments.ccd_camera import load_camera
from svomflow.simulation.colibri import read_truth_map, simulate_colibri_night
from svomflow.simulation.starfield import draw_stars

KW = dict(
    size=(64, 80),
    n_bias=2,
    n_dark=1,
    dark_exposures=(30.0,),
    n_flat_per_filter=1,
    flat_filters=("g",),
)


def test_headers_reproducibility_and_catalog(tmp_path):
    t1 = simulate_colibri_night(tmp_path / "a", seed=7, **KW)
    simulate_colibri_night(tmp_path / "b", seed=7, **KW)
    cam = load_camera()
    f1 = sorted((tmp_path / "a" / "raw").glob("*.fits"))
    f2 = sorted((tmp_path / "b" / "raw").glob("*.fits"))
    assert [p.name for p in f1] == [p.name for p in f2]
    for a, b in zip(f1, f2, strict=True):
        np.testing.assert_array_equal(fits.getdata(a), fits.getdata(b))
    with fits.open(Path(t1["raw_dir"]) / t1["science"]["frames"][0]["file"]) as sci:
        h = sci[0].header.copy()
        data = sci[0].data.copy()
    for logical in (
        "exposure_type",
        "observer",
        "exposure_time",
        "date_obs",
        "filter",
        "temperature",
        "trigger_id",
        "camera",
    ):
        assert cam.kw(logical) in h
    assert h["EXPTYPE"] == "object" and h["OBSERVER"] == "svom" and h["CTYPE1"] == "RA---TAN"
    assert data.dtype == np.uint16 and data.shape == (64, 80 + cam.overscan_columns)
    cat = Table.read(t1["science"]["refcat"])
    assert {"ra", "dec", "mag_g", "mag_r", "mag_i"} <= set(cat.colnames)
    t3 = simulate_colibri_night(tmp_path / "c", seed=8, **KW)
    assert t3["science"]["field_center"] != t1["science"]["field_center"]


def test_bias_noise_and_overscan_follow_the_camera(tmp_path):
    truth = simulate_colibri_night(
        tmp_path, seed=3, size=(200, 200), n_bias=2, n_dark=0, n_flat_per_filter=0, science=False
    )
    cam = load_camera()
    raw = [
        fits.getdata(Path(truth["raw_dir"]) / f["file"]).astype(float)
        for f in truth["calibration_frames"]
    ]
    d = raw[0][:, :200] - raw[1][:, :200]
    drift = (
        truth["calibration_frames"][0]["bias_drift_adu"]
        - truth["calibration_frames"][1]["bias_drift_adu"]
    )
    # Difference of two biases: mean = drift difference, sigma = sqrt(2 (rn^2 + 1/12)).
    sigma = np.sqrt(2 * (cam.read_noise_adu**2 + 1 / 12))
    n = d.size
    assert abs(d.mean() - drift) < 5 * sigma / np.sqrt(n)
    assert abs(d.std() / sigma - 1) < 5 / np.sqrt(2 * n)
    # Image minus overscan (per row) is the injected bias structure.
    tb = read_truth_map(truth, "bias_structure")
    m = raw[0][:, :200] - np.median(raw[0][:, 200:], axis=1)[:, None]
    assert abs(np.mean(m - tb)) < 5 * np.sqrt(
        cam.read_noise_adu**2 / n + (1.25 * cam.read_noise_adu) ** 2 / 32 / 200
    )


def test_pixel_integrated_profiles_conserve_flux():
    for profile in ("gaussian", "moffat"):
        img = np.zeros((120, 120))
        draw_stars(
            img, np.array([60.3]), np.array([59.8]), np.array([1e5]), fwhm_px=3.0, profile=profile
        )
        assert abs(img.sum() / 1e5 - 1) < 3e-4
        # The centroid is the injected position.
        yy, xx = np.mgrid[:120, :120]
        assert abs((img * xx).sum() / img.sum() - 60.3) < 1e-3
        assert abs((img * yy).sum() / img.sum() - 59.8) < 1e-3
