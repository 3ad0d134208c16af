"""Relinking OGIP references to long published names never overflows a header card."""

from __future__ import annotations

import warnings

from astropy.io import fits
from svomflow.products.content import relink_ogip


def test_a_long_published_name_shortens_the_comment_not_the_value() -> None:
    h = fits.BinTableHDU.from_columns([fits.Column("COUNTS", "J", array=[1, 2])])
    h.header["ANCRFILE"] = ("arf_s01", "ancillary response file")
    long_name = "ARF_MXT_S01_e2e_alert_loop_12781574_v01.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy's "Card is too long" would be raised here
        (out,) = relink_ogip([h], {"arf_s01": long_name})
        card = out.header.cards["ANCRFILE"]
        assert out.header["ANCRFILE"] == long_name
        assert len(card.image) == 80
        assert "ancillary response file".startswith(out.header.comments["ANCRFILE"])
