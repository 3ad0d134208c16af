"""The exported caldb.indx read back with astropy, column by column (HEASARC CIF layout)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from svomflow.calibration.caldb import read_indx


def test_export_columns(caldb, make_file):
    a = caldb.register(
        make_file("eclairs_gain_20240101.fits"),
        telescope="SVOM",
        instrument="ECLAIRS",
        codename="GAIN",
        valid_from="2024-01-01T06:30:15",
        boundaries=["ENERG(4-150)keV", "TEMP(-100--50)C"],
        description="ECLAIRs gain",
    )
    b = caldb.register(
        make_file("grm_arf.fits"),
        telescope="SVOM",
        instrument="GRM",
        codename="SPECRESP",
        detector="GRD01",
        filter="OPEN",
        valid_from="2024-03-02",
        cal_class="CPF",
        quality=0,
    )
    long_ins = caldb.register(
        make_file("bias.fits"),
        telescope="COLIBRI",
        instrument="COLIBRI_DDRAGO_B",
        codename="MASTER_BIAS",
        valid_from="2025-02-28T23:59:59",
    )
    caldb.supersede(b)
    out = caldb.export_indx(caldb.root / "caldb.indx")

    with fits.open(out) as hdul:
        assert hdul[1].name == "CIF" and hdul[1].header["CIFVERSN"] == "1992a"
        assert hdul[1].header["IDXVERS"] == 4
        cols = hdul[1].columns
        names = [c.name for c in cols]
        assert names == [
            "TELESCOP",
            "INSTRUME",
            "DETNAM",
            "FILTER",
            "CAL_DEV",
            "CAL_DIR",
            "CAL_FILE",
            "CAL_CLAS",
            "CAL_DTYP",
            "CAL_CNAM",
            "CAL_CBD",
            "CAL_XNO",
            "CAL_VSD",
            "CAL_VST",
            "REF_TIME",
            "CAL_QUAL",
            "CAL_DATE",
            "CAL_DESC",
        ]
        forms = {c.name: c.format for c in cols}
        assert forms["CAL_CBD"] == "630A" and cols["CAL_CBD"].dim == "(70,9)"
        assert forms["TELESCOP"] == "10A" and forms["DETNAM"] == "20A"
        assert forms["INSTRUME"] == "16A"  # widened for COLIBRI_DDRAGO_B, never truncated
        assert forms["CAL_XNO"] == "I" and forms["CAL_QUAL"] == "I" and forms["REF_TIME"] == "D"
        d = hdul[1].data
        assert list(d["TELESCOP"]) == ["SVOM", "SVOM", "COLIBRI"]
        assert list(d["INSTRUME"]) == ["ECLAIRS", "GRM", "COLIBRI_DDRAGO_B"]
        assert list(d["DETNAM"]) == ["NONE", "GRD01", "NONE"]
        assert list(d["FILTER"]) == ["NONE", "OPEN", "NONE"]
        assert list(d["CAL_DEV"]) == ["ONLINE"] * 3
        assert list(d["CAL_DIR"]) == [
            "data/svom/eclairs/bcf",
            "data/svom/grm/cpf",
            "data/colibri/colibri_ddrago_b/bcf",
        ]
        # the registered names carry the valid-from date and the index version
        assert list(d["CAL_FILE"]) == [
            "eclairs_gain_20240101_20240101_v1.fits",
            "grm_arf_20240302_v2.fits",
            "bias_20250228_v3.fits",
        ]
        assert list(d["CAL_CLAS"]) == ["BCF", "CPF", "BCF"]
        assert list(d["CAL_DTYP"]) == ["DATA"] * 3
        assert list(d["CAL_CNAM"]) == ["GAIN", "SPECRESP", "MASTER_BIAS"]
        assert d["CAL_CBD"].shape == (3, 9)
        assert list(d["CAL_CBD"][0]) == ["ENERG(4-150)keV", "TEMP(-100--50)C"] + ["NONE"] * 7
        assert list(d["CAL_CBD"][1]) == ["NONE"] * 9
        assert list(d["CAL_XNO"]) == [0, 0, 0]  # plain files: no extension
        assert list(d["CAL_VSD"]) == ["2024-01-01", "2024-03-02", "2025-02-28"]
        assert list(d["CAL_VST"]) == ["06:30:15", "00:00:00", "23:59:59"]
        # REF_TIME is the MJD of the validity start: MJD 60310 is 2024-01-01.
        np.testing.assert_allclose(
            d["REF_TIME"],
            [60310 + (6 * 3600 + 30 * 60 + 15) / 86400, 60371.0, 60734 + 86399 / 86400],
            rtol=0,
            atol=1e-9,
        )
        assert list(d["CAL_QUAL"]) == [0, 5, 0]
        today = a.registered_at.strftime("%d/%m/%y")
        assert list(d["CAL_DATE"]) == [today] * 3
        assert list(d["CAL_DESC"]) == ["ECLAIRs gain", "", ""]
        assert hdul[1].verify_checksum() == 1

    # Reading the index back gives the same selection inputs; CAL_DIR resolves under the root.
    back = read_indx(out, root=caldb.root)
    for orig, got in zip(caldb.entries(), back, strict=True):
        assert got.path == orig.path and got.path.is_file()
        assert (got.codename, got.valid_from, got.quality, got.boundaries) == (
            orig.codename,
            orig.valid_from,
            orig.quality,
            orig.boundaries,
        )
    assert long_ins.id == 3


def test_export_filters_and_old_version(caldb, make_file):
    caldb.register(
        make_file("a"), telescope="SVOM", instrument="MXT", codename="CTI", valid_from="2024-01-01"
    )
    caldb.register(
        make_file("b"), telescope="SVOM", instrument="GRM", codename="GAIN", valid_from="2024-01-01"
    )
    out = caldb.export_indx(caldb.root / "mxt.indx", instrument="mxt")
    assert list(fits.getdata(out, "CIF")["INSTRUME"]) == ["MXT"]
    out = caldb.export_indx(caldb.root / "v1.indx", index_version=1)
    assert len(fits.getdata(out, "CIF")) == 1


def test_heasoft_tree(caldb, make_file):
    for ins in ("ECLAIRS", "MXT"):
        caldb.register(
            make_file(f"{ins}.fits"),
            telescope="SVOM",
            instrument=ins,
            codename="GAIN",
            valid_from="2024-01-01",
        )
    written = caldb.export_heasoft()
    config = caldb.root / "software/tools/caldb.config"
    assert config in written
    assert config.read_text().splitlines() == [
        "SVOM ECLAIRS CALDB data/svom/eclairs caldb.indx CALDB data/svom/eclairs",
        "SVOM MXT CALDB data/svom/mxt caldb.indx CALDB data/svom/mxt",
    ]
    for ins in ("eclairs", "mxt"):
        d = fits.getdata(caldb.root / f"data/svom/{ins}/caldb.indx", "CIF")
        assert list(d["INSTRUME"]) == [ins.upper()]
        # CAL_DIR is relative to $CALDB (the root), as in HEASARC's own indices.
        assert (caldb.root / d["CAL_DIR"][0] / d["CAL_FILE"][0]).is_file()
    # read_indx finds the root from the standard location by itself.
    (e,) = read_indx(caldb.root / "data/svom/mxt/caldb.indx")
    assert e.path == caldb.root / "data/svom/mxt/bcf/MXT_20240101_v2.fits"
