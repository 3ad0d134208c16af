"""``svomflow gp1 module`` on real foreign images: SExtractor's catalogue and a SAAO raw frame."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy.spatial import cKDTree
from svomflow.cli.main import app
from svomflow.tasks.photometry.extract import ExtractConfig, extract_sources
from svomflow.tasks.photometry.sextractor_config import extract_config_from_sextractor
from typer.testing import CliRunner

runner = CliRunner()


def _products(out: Path, code: str) -> Path:
    found = sorted(out.rglob(f"{code}_*.fits"))
    assert len(found) == 1, found
    return found[0]


def _sextractor_match(cat: Table, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return, for each SExtractor object, the nearest of ours and the distance (pixel)."""
    dist, idx = cKDTree(np.c_[cat["X_IMAGE"], cat["Y_IMAGE"]]).query(ref[:, 1:3])
    return idx, dist


def _run(args: list[str]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ESO header's fixed cards are warned about
        res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.output


def test_findstars_defaults_match_sextractor_catalogue(shared_data, tmp_path):
    sep_dir = shared_data / "optical" / "sep"
    out = tmp_path / "out"
    _run(
        [
            "gp1",
            "module",
            "findstars",
            "--reduced",
            "-i",
            str(sep_dir / "image.fits"),
            "-o",
            str(out),
        ]
    )
    cat = Table.read(_products(out, "SRCCAT"), hdu=1)
    ref = np.loadtxt(sep_dir / "image.cat")
    idx, dist = _sextractor_match(cat, ref)
    assert len(cat) == len(ref) == 65
    assert np.all(dist < 1e-3)  # every SExtractor object, at its position
    flux = np.asarray(cat["FLUX_APER"]).reshape(len(cat), -1)[idx, 0]
    np.testing.assert_allclose(flux, ref[:, 12], rtol=2e-4)  # sep's own test tolerance
    auto = np.asarray(cat["FLUX_AUTO"])[idx]
    has_auto = ref[:, 15] > 0
    np.testing.assert_allclose(auto[has_auto], ref[has_auto, 15], rtol=1e-3)
    h = fits.getheader(_products(out, "REDIMG"))
    assert h["ESO TEL ID"] and h["DATE-OBS"] == "1992-10-26T00:00:00.000"  # HIERARCH kept
    assert sum(str(c).startswith("ESO-LOG") for c in h["COMMENT"]) == 4


def test_findstars_masks_a_damaged_pixel_and_says_so(shared_data, tmp_path):
    """One pixel of the ESO image 80 000 ADU low in a bright star's Kron aperture (gp1-039).

    The pixel is masked as a defect and named in a warning (output and IMGSUM); the star's
    AUTO flux stays within 2 % of SExtractor's on the undamaged image (unmasked, it would
    lose the pixel's depth: 8 %), with FLAGS bit 1 (masked pixels in the aperture).
    """
    src = shared_data / "optical" / "sep"
    work = tmp_path / "sep"
    shutil.copytree(src, work)
    ref = np.loadtxt(src / "image.cat")
    star = int(np.argmax(ref[:, 15]))  # the brightest AUTO flux
    x, y = round(ref[star, 1]) - 1, round(ref[star, 2]) - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(work / "image.fits", mode="update") as hdul:
            hdul[0].data[y + 3, x + 3] -= 8.0e4  # 4.2 px off: inside its AUTO aperture
    out = tmp_path / "out"
    text = _run(["gp1", "module", "findstars", "--reduced", "-i", str(work / "image.fits"),
                 "-o", str(out)])  # fmt: skip
    assert "1 pixel(s) more than 30 rms below the background masked as defects" in text
    summary = json.loads(next(out.rglob("IMGSUM_*.json")).read_text())
    assert len(summary["warnings"]) == 1
    cat = Table.read(_products(out, "SRCCAT"), hdu=1)
    idx, dist = _sextractor_match(cat, ref[star : star + 1])
    assert dist[0] < 0.01
    assert float(cat["FLUX_AUTO"][idx[0]]) == pytest.approx(ref[star, 15], rel=0.02)
    assert int(cat["FLAGS"][idx[0]]) & 1


def test_sextractor_file_sets_the_options(shared_data):
    cfg = extract_config_from_sextractor(ExtractConfig(), shared_data / "optical/sep/default.sex")
    assert cfg.deblend_mincont == 1.0 and cfg.detect_thresh == 1.5 and cfg.back_size == 64
    assert cfg.phot_apertures == [10.0] and cfg.global_rms
    assert cfg.filter_kernel == [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]


def test_default_threshold_is_on_global_rms_as_sextractor(shared_data):
    # Without the file, SExtractor's own defaults: only deblending may split a few objects.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy on the ESO-LOG cards
        with fits.open(shared_data / "optical/sep/image.fits") as hdul:
            data = hdul[0].data.astype(float)
    ref = np.loadtxt(shared_data / "optical/sep/image.cat")
    cat = extract_sources(data).catalog
    _, dist = _sextractor_match(cat, ref)
    local = extract_sources(data, ExtractConfig(global_rms=False)).catalog
    _, dist_local = _sextractor_match(local, ref)
    assert (dist < 1e-3).sum() >= 59 > (dist_local < 1e-3).sum()


def test_findstars_without_sextractor_file_uses_defaults(shared_data, tmp_path):
    img = tmp_path / "image.fits"
    shutil.copy(shared_data / "optical/sep/image.fits", img)  # no default.sex next to it
    out = tmp_path / "out"
    _run(["gp1", "module", "findstars", "--reduced", "-i", str(img), "-o", str(out)])
    cat = Table.read(_products(out, "SRCCAT"), hdu=1)
    assert len(cat) == 69  # SExtractor's DEBLEND_MINCONT 0.005 splits four objects


def test_saao_raw_frame_reduced_with_its_own_overscan_sections(shared_data, tmp_path):
    raw = shared_data / "optical" / "raw" / "a8280271.fits"
    out = tmp_path / "out"
    _run(["gp1", "module", "reduction", "-i", str(raw), "-o", str(out)])
    red = _products(out, "REDIMG")
    with fits.open(red) as hdul:
        data, h = hdul[0].data, hdul[0].header
    assert data.shape == (520, 512)  # TRIMSEC [17:528,1:520]
    assert h["INSTRUME"] == "STE3 CCD" and red.parent.name == "STE3_CCD"
    assert h["DATE-OBS"] == "2013-07-13T00:57:33.000"  # DATE-OBS date + UT
    raw_data = fits.getdata(raw).astype(float)
    level = np.median(raw_data[:, 3:13])  # BIASSEC [4:13,1:520]
    assert np.median(data) == pytest.approx(np.median(raw_data[:, 16:528]) - level, abs=2.0)
