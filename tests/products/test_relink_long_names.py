"""Relinking OGIP references to long published names never overflows a header card."""

from __future__ import annotations

import warnings
from pathlib import Path

from astropy.io import fits
from svomflow.products.catalogue import FitsModel
from svomflow.products.content import relink_ogip


def test_a_long_published_name_shortens_the_comment_not_the_value(tmp_path: Path) -> None:
    h = fits.BinTableHDU.from_columns([fits.Column("COUNTS", "J", array=[1, 2])], name="SPECTRUM")
    h.header["ANCRFILE"] = ("arf_s01", "ancillary response file")
    model = FitsModel.from_hdus([fits.PrimaryHDU(), h])
    long_name = "ARF_MXT_S01_e2e_alert_loop_12781574_v01.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy's "Card is too long" would be raised here
        relink_ogip(model, {"arf_s01": long_name}).write(tmp_path / "s.fits")
        with fits.open(tmp_path / "s.fits") as hdul:
            header = hdul["SPECTRUM"].header
            assert header["ANCRFILE"] == long_name
            assert len(header.cards["ANCRFILE"].image) == 80
            assert "ancillary response file".startswith(header.comments["ANCRFILE"])
    assert model.table("SPECTRUM").card("ANCRFILE") == "arf_s01"  # the model is left as it was
