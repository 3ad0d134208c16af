"""A simulator re-run registers its calibration once, however its files were stamped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from svomflow.config import load_instrument
from svomflow.simulation.calibration import fits_content_digest, register_calibration


def _write(path: Path, gain: float, when: str) -> None:
    table = fits.BinTableHDU.from_columns([fits.Column("GAIN", "D", array=np.full(4, gain))])
    table.header["DATE"] = when
    hdul = fits.HDUList([fits.PrimaryHDU(), table])
    for hdu in hdul:
        hdu.add_checksum(when=f"written {when}")
    hdul.writeto(path, overwrite=True)


def test_same_content_written_later_is_already_current(tmp_path: Path) -> None:
    inst = load_instrument("grm")
    root = tmp_path / "caldb"
    first, later, changed = tmp_path / "a.fits", tmp_path / "b.fits", tmp_path / "c.fits"
    _write(first, 1.0, "2026-12-05T10:00:00")
    _write(later, 1.0, "2026-12-05T11:00:00")
    _write(changed, 1.01, "2026-12-05T11:00:00")
    assert first.read_bytes() != later.read_bytes()  # the stamps differ
    assert fits_content_digest(first) == fits_content_digest(later)
    assert fits_content_digest(first) != fits_content_digest(changed)

    assert register_calibration({"EBOUNDS": first}, inst, caldb_root=root) == {
        "EBOUNDS": "registered"
    }
    assert register_calibration({"EBOUNDS": later}, inst, caldb_root=root) == {
        "EBOUNDS": "already current"
    }
    assert register_calibration({"EBOUNDS": changed}, inst, caldb_root=root) == {
        "EBOUNDS": "registered"
    }
