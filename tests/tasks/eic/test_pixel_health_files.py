"""BADPIX and UNIFMAP files of the pixel flow: readable by the analysis loaders, round trip."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.calibration.codes import load_calibration_file
from svomflow.errors import InputDataError
from svomflow.instruments.pixels import PixelMap
from svomflow.products.calibration_files import read_badpix, write_badpix
from svomflow.products.eic_pixel_files import (
    BadPixel,
    BadPixelTable,
    UniformityMap,
    badpix_hdus,
    module_map,
    read_bad_pixel_table,
    uniformity_hdus,
)
from svomflow.products.ogip import write_hdulist


def _table():
    return BadPixelTable(
        (80, 80),
        (
            BadPixel(1, 2, "DEAD", np.nan, 1.0, 20.0, -0.4),
            BadPixel(3, 4, "NOISY", 1.0e8, 0.4, 30.0, 1.2),
            BadPixel(5, 6, "INTERMIT", 1.1e8, 0.2, 9.0, 0.8),
        ),
    )


def test_badpix_file_reads_in_the_analysis_loader(tmp_path):
    path = write_hdulist(
        badpix_hdus(_table(), telescope="SVOM", instrument="ECLAIRS"), tmp_path / "b.fits"
    )
    pm = read_badpix(path)  # the loader the VHF and X-band flows use
    assert pm.dead[1, 2] and pm.dead.sum() == 1
    # an intermittent pixel is left out of the analyses like a noisy one
    assert pm.noisy[3, 4] and pm.noisy[5, 6] and pm.noisy.sum() == 2
    back = read_bad_pixel_table(path)
    assert [p.kind for p in back.pixels] == ["DEAD", "NOISY", "INTERMIT"]
    assert np.isnan(back.pixels[0].onset) and back.pixels[2].duty_cycle == pytest.approx(0.2)
    np.testing.assert_array_equal(back.to_pixel_map().bad, pm.bad)


def test_a_plain_badpix_file_reads_as_a_table(tmp_path):
    dead = np.zeros((80, 80), bool)
    dead[7, 7] = True
    path = write_badpix(
        tmp_path / "p.fits",
        PixelMap(dead, np.zeros_like(dead)),
        telescope="SVOM",
        instrument="ECLAIRS",
    )
    t = read_bad_pixel_table(path)
    assert [(p.y, p.z, p.kind) for p in t.pixels] == [(7, 7, "DEAD")]


def test_unifmap_loads_through_the_caldb_code(tmp_path):
    eff = np.full((4, 5), 1.0)
    eff[0, 0] = np.nan
    umap = UniformityMap(eff, np.full((4, 5), 0.01))
    path = write_hdulist(
        uniformity_hdus(umap, telescope="SVOM", instrument="ECLAIRS"), tmp_path / "u.fits"
    )
    back = load_calibration_file("UNIFMAP", path)
    assert back.measured.sum() == 19
    np.testing.assert_array_equal(back.error, umap.error)
    with pytest.raises(InputDataError):
        load_calibration_file("UNIFMAP", tmp_path / "missing.fits")


def test_module_map_tiles_the_plane():
    m = module_map((80, 80), (8, 4))
    assert m.max() == 199 and np.all(np.bincount(m.ravel()) == 32)
    assert m[0, 0] == m[7, 3] != m[8, 0]
    with pytest.raises(InputDataError):
        module_map((80, 80), (7, 4))
