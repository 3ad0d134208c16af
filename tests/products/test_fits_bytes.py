"""FITS products written from their models are the files astropy writes, byte for byte."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits.hdu.base import _ValidHDU
from svomflow.products.catalogue.fits_bytes import fits_bytes
from svomflow.products.catalogue.models import FitsModel, TableBlock
from svomflow.products.ogip import (
    LightCurve,
    TimeReference,
    ebounds_hdu,
    gti_hdu,
    lightcurve_hdu,
    primary_hdu,
    rsp_hdus,
)

WHEN = "2026-01-02T03:04:05"
PROVENANCE = [
    ("PRODTYPE", "QLC", "svomflow product type code"),
    ("PRODVER", 3, "product version"),
    ("FLOWRUN", "none", "Prefect flow run id"),
    ("INFIL01", "eclairs_l1_events.fits", "input file"),
]


def _astropy_bytes(model: FitsModel, extra: list[tuple[str, object, str]]) -> bytes:
    """What the publisher wrote before: the model's HDUs, provenance cards, astropy's writeto."""
    hdul = model.to_fits()
    for key, value, comment in extra:
        hdul[0].header[key] = (value, comment)
    buf = io.BytesIO()
    hdul.writeto(buf, checksum=True)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _fixed_checksum_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # astropy writes the time in the CHECKSUM/DATASUM comments: the same time for both
    monkeypatch.setattr(_ValidHDU, "_get_timestamp", lambda self: WHEN)


def _lightcurve_model() -> FitsModel:
    t = np.arange(0.0, 50.0, 0.064)
    gti = np.array([[0.0, 20.0], [25.0, 50.0]])
    ref = TimeReference(mjdref=51910.0, timesys="TT")
    lc = LightCurve(
        time=t,
        timedel=np.full(t.size, 0.064),
        rate=np.random.default_rng(1).poisson(40.0, t.size) / 0.064,
        error=np.full(t.size, 3.0),
        fracexp=np.ones(t.size),
        gti=gti,
        timeref=ref,
        band_kev=(4.0, 120.0),
        timezero=1.23e8,
    )
    prim = primary_hdu(telescope="SVOM", instrument="ECLAIRS", extra=[("T0", 1.23e8, "[s] T0")])
    rate = lightcurve_hdu(lc, telescope="SVOM", instrument="ECLAIRS", extname="RATE")
    rate.header["EXTVER"] = (1, "band index")
    return FitsModel.from_hdus(
        [
            prim,
            rate,
            gti_hdu(gti[:, 0], gti[:, 1], timeref=ref, telescope="SVOM", instrument="ECLAIRS"),
        ]
    )


def _every_kind_model() -> FitsModel:
    """Every column format and card type the fast writer formats, with astropy's edge cases."""
    prim = fits.PrimaryHDU()
    prim.header["TELESCOP"] = ("SVOM", "mission")
    prim.header["QUOTE"] = ("it's", "a quote inside a string")
    prim.header["EMPTY"] = ("", "an empty string")
    prim.header["FLAG"] = (False, "a logical")
    prim.header["NPINT"] = (np.int64(-7), "a numpy integer")
    prim.header["F32"] = (np.float32(0.1), "a numpy float32")
    prim.header["TINY"] = (1e-300, "an exponent")
    prim.header["LONGF"] = (-1.2345678901234567e100, "a float with a long text")
    prim.header["NEGZERO"] = (-0.0, "")
    prim.header.add_comment("a comment in the middle")
    prim.header["AFTER"] = (1, "goes before the trailing comment")
    prim.header["FULL"] = ("x" * 20, "y" * 45)  # exactly 80 characters
    cols = [
        fits.Column("NAME", "5A", array=np.array(["ab", "abcdefg", ""])),
        fits.Column("OK", "L", array=np.array([True, False, True])),
        fits.Column("BYTE", "B", array=np.array([0, 7, 255], dtype=np.uint8)),
        fits.Column("SHORT", "I", array=np.array([-3, 0, 3], dtype=np.int16)),
        fits.Column("INT", "1J", array=np.array([1, 2, 3])),
        fits.Column("LONG", "K", array=np.array([2**40, -1, 0])),
        fits.Column("E", "E", unit="count/s", array=np.array([1.5, np.nan, -2.0])),
        fits.Column("D", "D", unit="s", array=np.array([1e-9, 2.0, np.inf])),
        fits.Column("SPEC", "4E", array=np.arange(12.0).reshape(3, 4)),
    ]
    tab = fits.BinTableHDU.from_columns(cols, name="EVERY")
    tab.header.comments["TTYPE1"] = "a description"
    tab.header["HDUCLASS"] = ("OGIP", "format conforms to OGIP standard")
    tab.header.add_history("made by a test")
    tab.header["EXTVER"] = (2, "after the history")
    empty = fits.BinTableHDU.from_columns([fits.Column("X", "D", array=np.zeros(0))], name="NONE")
    return FitsModel.from_hdus([prim, tab, empty])


def _vhf_like_models() -> list[FitsModel]:
    ebounds = ebounds_hdu(np.arange(4.0, 120.0, 4.0), np.arange(8.0, 124.0, 4.0), telescope="SVOM",
                          instrument="GRM")  # fmt: skip
    e = np.linspace(10.0, 1000.0, 65)
    rsp = rsp_hdus(
        e[:-1],
        e[1:],
        np.random.default_rng(2).random((64, 32)),
        np.column_stack([np.linspace(10.0, 990.0, 32), np.linspace(40.0, 1020.0, 32)]),
        telescope="SVOM",
        instrument="GRM",
        detector="GRD01",
    )
    return [
        _lightcurve_model(),
        _every_kind_model(),
        FitsModel.from_hdus([fits.PrimaryHDU(), ebounds]),
        FitsModel.from_hdus(list(rsp)),
    ]


@pytest.mark.parametrize("k", range(4))
def test_written_files_are_astropys_byte_for_byte(k: int) -> None:
    model = _vhf_like_models()[k]
    mine = fits_bytes(model, PROVENANCE, when=WHEN)
    if mine is None:  # the response uses variable-length columns: astropy writes it
        assert k == 3 and any(
            str(c.format).lstrip("0123456789").startswith("P")
            for b in model.extensions
            if isinstance(b, TableBlock)
            for c in b.columns
        )
        return
    assert mine == _astropy_bytes(model, PROVENANCE)


def test_provenance_cards_replace_a_model_card_in_place() -> None:
    model = _lightcurve_model()
    model.primary.cards.append(("PRODVER", 1, "an earlier version"))
    extra = [*PROVENANCE, ("TELESCOP", "SVOM", "replaced in place")]
    assert fits_bytes(model, extra, when=WHEN) == _astropy_bytes(model, extra)


def test_the_checksums_verify_and_the_content_reads_back(tmp_path: Path) -> None:
    model = _every_kind_model()
    path = tmp_path / "p.fits"
    model.write(path, PROVENANCE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a wrong CHECKSUM/DATASUM is an astropy warning
        with fits.open(path, checksum=True) as hdul:
            assert hdul[0].header["PRODTYPE"] == "QLC"
            data = hdul["EVERY"].data
            assert list(data["NAME"]) == ["ab", "abcde", ""]
            assert list(data["OK"]) == [True, False, True]
            np.testing.assert_array_equal(data["SPEC"], np.arange(12.0).reshape(3, 4))
    assert FitsModel.read(path).table("EVERY").card("HDUCLASS") == "OGIP"


@pytest.mark.parametrize(
    "change",
    [
        "image",
        "scaled",
        "variable",
        "long string",
        "long comment",
        "hierarch",
        "record-valued",
        "column keyword",
    ],
)
def test_content_it_does_not_format_is_written_by_astropy(change: str, tmp_path: Path) -> None:
    """Outside the covered formats fits_bytes declines; write() gives astropy's file."""
    model = _lightcurve_model()
    if change == "image":
        model.primary.data = np.zeros((3, 4), dtype=np.float32)
    elif change == "scaled":
        col = fits.Column("S", "I", bscale=0.5, bzero=10.0, array=np.array([11.0, 12.5]))
        model.extensions.append(TableBlock("SCALED", [col]))
    elif change == "variable":  # a heap after the rows
        col = fits.Column("V", "PE()", array=[np.ones(2), np.ones(3)])
        model.extensions.append(TableBlock("VLA", [col]))
    elif change == "long string":  # CONTINUE cards
        model.primary.cards.append(("QUALREAS", "a reason " * 12, "why"))
    elif change == "long comment":  # astropy cuts it with a warning
        model.primary.cards.append(("NOTE", "x" * 30, "y" * 60))
    elif change == "hierarch":
        model.primary.cards.append(("ESO DET TEMP", 1.0, "a HIERARCH card"))
    elif change == "record-valued":  # astropy formats it as a record-valued keyword card
        model.primary.cards.append(("DP1", "AXIS.1: 2", ""))
    else:  # astropy applies it to the column (scaling its values), not only to the header
        model.table("RATE").cards.append(("TZERO2", 10.0, "an offset"))
    assert fits_bytes(model, PROVENANCE, when=WHEN) is None
    if change in ("long comment", "scaled", "column keyword"):
        return  # astropy's own path warns, or cannot scale these values back: as before
    model.write(tmp_path / "p.fits", PROVENANCE)
    with fits.open(tmp_path / "p.fits", checksum=True) as hdul:
        assert hdul[0].header["PRODTYPE"] == "QLC"
        assert len(hdul) == len(model.extensions) + 1


def test_a_nan_header_value_fails_as_with_astropy(tmp_path: Path) -> None:
    model = _lightcurve_model()
    model.primary.cards.append(("BAD", float("nan"), "not a FITS value"))
    assert fits_bytes(model, PROVENANCE) is None
    with pytest.raises(ValueError, match="nan"):
        model.write(tmp_path / "p.fits", PROVENANCE)
