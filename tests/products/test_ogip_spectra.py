"""OGIP spectral readers: PHA I/II, header files, RMF groups and TLMIN, RSP2 selection, errors."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.products.ogip_spectra import (
    read_pha,
    read_response,
    read_response_set,
    select_response,
)


def _ebounds(n):
    e = np.linspace(10.0, 10.0 + n, n + 1)
    return fits.BinTableHDU.from_columns(
        [
            fits.Column("CHANNEL", "I", array=np.arange(n)),
            fits.Column("E_MIN", "E", array=e[:-1]),
            fits.Column("E_MAX", "E", array=e[1:]),
        ],
        name="EBOUNDS",
    )


def _rmf(path, tlmin, n_chan=6, tstarts=None):
    # Two energy rows: row 1 has two groups (channels tlmin+0..1 and tlmin+3..4), row 2 none.
    n_grp = np.array([2, 0], dtype=np.int16)
    f_chan = np.array(
        [np.array([tlmin, tlmin + 3], dtype=np.int16), np.array([], dtype=np.int16)], dtype=object
    )
    n_chn = np.array([np.array([2, 2], dtype=np.int16), np.array([], dtype=np.int16)], dtype=object)
    mat = np.array(
        [np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32), np.array([], dtype=np.float32)],
        dtype=object,
    )
    hdus = [fits.PrimaryHDU(), _ebounds(n_chan)]
    for k, ts in enumerate(tstarts or [None]):
        cols = [
            fits.Column("ENERG_LO", "E", array=[10.0, 20.0]),
            fits.Column("ENERG_HI", "E", array=[20.0, 30.0]),
            fits.Column("N_GRP", "I", array=n_grp),
            fits.Column("F_CHAN", "PI()", array=f_chan),
            fits.Column("N_CHAN", "PI()", array=n_chn),
            fits.Column("MATRIX", "PE()", array=mat * (k + 1)),
        ]
        h = fits.BinTableHDU.from_columns(cols, name="SPECRESP MATRIX")
        h.header["TLMIN4"] = tlmin
        h.header["DETCHANS"] = n_chan
        h.header["HDUCLAS2"] = "RSP_MATRIX"
        if ts is not None:
            h.header["TSTART"] = ts
            h.header["TSTOP"] = ts + 10.0
        hdus.append(h)
    fits.HDUList(hdus).writeto(path)


@pytest.mark.parametrize("tlmin", [0, 1])
def test_rmf_groups_honour_tlmin(tmp_path, tlmin):
    p = tmp_path / f"r{tlmin}.rsp"
    _rmf(p, tlmin)
    r = read_response(p)
    assert r.first_channel == tlmin
    expected = np.zeros((2, 6))
    expected[0, [0, 1, 3, 4]] = [0.1, 0.2, 0.3, 0.4]
    assert np.allclose(r.matrix, expected)
    assert r.has_area


def _pha2(path, nrows=3, backfile="bkg.pha{2}"):
    n = 6
    cols = [
        fits.Column("SPEC_NUM", "I", array=np.arange(1, nrows + 1)),
        fits.Column("COUNTS", f"{n}J", array=np.arange(nrows * n).reshape(nrows, n)),
        fits.Column("EXPOSURE", "D", array=np.arange(1, nrows + 1) * 2.0),
        fits.Column("BACKFILE", "20A", array=[backfile] * nrows),
    ]
    h = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    h.header["HDUCLASS"] = "OGIP"
    h.header["HDUCLAS1"] = "SPECTRUM"
    h.header["POISSERR"] = True
    h.header["BACKSCAL"] = 0.5
    fits.HDUList([fits.PrimaryHDU(), h]).writeto(path)


def test_pha_type2_rows_and_header_files(tmp_path):
    p = tmp_path / "src.pha"
    _pha2(p)
    with pytest.raises(InputDataError, match="type II file with 3 spectra"):
        read_pha(p)
    s = read_pha(p, row=2)
    assert s.exposure == 4.0
    assert np.allclose(s.counts, np.arange(6, 12))
    assert np.allclose(s.backscal, 0.5)
    assert s.backfile == "bkg.pha{2}"
    assert read_pha(f"{p}{{3}}").exposure == 6.0
    with pytest.raises(InputDataError, match="row 4 out of range"):
        read_pha(p, row=4)


def test_load_resolves_header_files_relative_to_pha(tmp_path, monkeypatch):
    from svomflow.tasks.spectral import load

    sub = tmp_path / "data"
    sub.mkdir()
    _pha2(sub / "src.pha")
    _pha2(sub / "bkg.pha", backfile="none")
    _rmf(sub / "resp.rsp", 1)
    monkeypatch.chdir(tmp_path)  # the header names are relative to the PHA, not the cwd
    ds = load(sub / "src.pha", row=1, rsp=sub / "resp.rsp")
    assert ds.background is not None and ds.background.row == 2
    assert ds.background.exposure == 4.0


def test_mismatched_channels_name_both_files(tmp_path):
    from svomflow.tasks.spectral import load

    _pha2(tmp_path / "src.pha", backfile="none")
    _rmf(tmp_path / "resp.rsp", 1, n_chan=8)
    with pytest.raises(InputDataError, match=r"src\.pha.*6 channels.*resp\.rsp.*8"):
        load(tmp_path / "src.pha", row=1, rsp=tmp_path / "resp.rsp")


def test_empty_spectrum_is_an_error(tmp_path):
    from svomflow.tasks.spectral import load

    p = tmp_path / "src.pha"
    cols = [
        fits.Column("CHANNEL", "I", array=np.arange(6)),
        fits.Column("COUNTS", "J", array=np.zeros(6)),
    ]
    h = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    h.header["EXPOSURE"] = 10.0
    fits.HDUList([fits.PrimaryHDU(), h]).writeto(p)
    _rmf(tmp_path / "resp.rsp", 0)
    with pytest.raises(InputDataError, match="no counts"):
        load(p, rsp=tmp_path / "resp.rsp")


@pytest.mark.parametrize("bad", [131, -26042, 3])
def test_channel_out_of_order_is_an_error(tmp_path, bad):
    """A damaged CHANNEL cell (a byte flip: a repeated, negative or high number) is refused."""
    channel = np.arange(6)
    channel[4] = bad
    cols = [
        fits.Column("CHANNEL", "J", array=channel),
        fits.Column("COUNTS", "J", array=np.full(6, 7)),
    ]
    h = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    h.header["EXPOSURE"] = 10.0
    fits.HDUList([fits.PrimaryHDU(), h]).writeto(tmp_path / "src.pha")
    # the row named is the first out of order: row 5 for a low number, row 6 for a high one
    row = 6 if bad > 4 else 5
    with pytest.raises(InputDataError, match=rf"CHANNEL is not increasing: row {row} "):
        read_pha(tmp_path / "src.pha")
    channel[4] = 4
    with fits.open(tmp_path / "src.pha", mode="update") as hdul:
        hdul[1].data["CHANNEL"] = channel
    assert read_pha(tmp_path / "src.pha").channel.tolist() == [0, 1, 2, 3, 4, 5]


def test_rsp2_selection_by_interval(tmp_path):
    p = tmp_path / "multi.rsp2"
    _rmf(p, 1, tstarts=[100.0, 110.0, 120.0])
    rs = read_response_set(p)
    assert len(rs) == 3
    with pytest.raises(InputDataError, match="RSP2"):
        read_response(p)
    assert select_response(rs, 111.0, 113.0).matrix[0, 0] == pytest.approx(0.2)
    # 105-115: half in matrix 1 (x1), half in matrix 2 (x2) -> mean factor 1.5
    assert select_response(rs, 105.0, 115.0, method="time").matrix[0, 0] == pytest.approx(0.15)
    edges = np.array([105.0, 110.0, 115.0])
    w = select_response(
        rs, 105.0, 115.0, method="counts", rate_curve=(edges, np.array([10.0, 30.0]))
    )
    assert w.matrix[0, 0] == pytest.approx(0.1 * (0.25 * 1 + 0.75 * 2))
    with pytest.raises(InputDataError, match="does not contain the interval"):
        select_response(rs, 50.0, 60.0)


@pytest.mark.realdata
def test_swift_xrt_rmf_first_channel_zero(shared_data):
    r = read_response(shared_data / "xray/swxpc0to12s6_20130101v014.rmf.gz")
    assert r.first_channel == 0
    assert r.matrix.shape == (2400, 1024)
    with fits.open(shared_data / "xray/swxpc0to12s6_20130101v014.rmf.gz") as h:
        raw = np.asarray(h[1].data["MATRIX"][1000], dtype=float)
    # F_CHAN = 0 with TLMIN = 0: matrix column c is channel c, no shift.
    assert np.allclose(r.matrix[1000], raw)
    assert 0.5 < r.matrix[1000].sum() <= 1.0 + 1e-6


@pytest.mark.realdata
def test_gbm_rsp2_and_cspec_row(shared_data):
    d = shared_data / "gbm/bn080916009"
    rs = read_response_set(d / "glg_cspec_n3_bn080916009_v00.rsp2")
    assert len(rs) == 3
    pha = read_pha(d / "glg_cspec_n3_bn080916009_v01.pha", row=1000)
    chosen = select_response(rs, pha.tstart, pha.tstop)
    assert chosen.tstart == rs[2].tstart  # after the last matrix's start


def test_relink_points_header_and_type2_column_at_published_names() -> None:
    """BACKFILE/RESPFILE in the header and the type II BACKFILE column follow the renames."""
    from astropy.io import fits
    from svomflow.products.catalogue import FitsModel
    from svomflow.products.content import relink_ogip

    prim = fits.PrimaryHDU()
    tab = fits.BinTableHDU.from_columns(
        [
            fits.Column("SPEC_NUM", "J", array=[1, 2]),
            fits.Column("BACKFILE", "12A", array=["w_bak.pha{1}", "w_bak.pha{2}"]),
        ],
        name="SPECTRUM",
    )
    tab.header["RESPFILE"] = "w.rsp"
    tab.header["ANCRFILE"] = "none"
    new_bak = "svom_grm_bak_sb00000042_v3.fits"
    model = FitsModel.from_hdus([prim, tab])
    out = relink_ogip(model, {"w_bak.pha": new_bak, "w.rsp": "svom_rsp_v1.fits"})
    spec = out.to_fits()[1]
    assert spec.header["RESPFILE"] == "svom_rsp_v1.fits"
    assert spec.header["ANCRFILE"] == "none"  # not a renamed file: untouched
    # the published names are longer than the column was: it was widened, rows kept
    assert list(spec.data["BACKFILE"]) == [f"{new_bak}{{1}}", f"{new_bak}{{2}}"]
    assert list(spec.data["SPEC_NUM"]) == [1, 2]
    assert spec.name == "SPECTRUM"
    # the product made by the step is not modified
    assert model.table("SPECTRUM").card("RESPFILE") == "w.rsp"
