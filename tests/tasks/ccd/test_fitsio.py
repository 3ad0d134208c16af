"""Raw frames read the same whether plain, gzip'd or fpack'd; damaged files fail clearly."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import load_camera
from svomflow.products.ccd_frames import read_frame_info, read_image, read_image_header, read_raw

KEYS = {
    "INSTRUME": "DDRAGO-B",
    "EXPTYPE": "bias",
    "IMAGETYP": "BIAS",
    "EXPTIME": 0.0,
    "DATE-OBS": "2026-11-24T00:42:00.125",
    "FILTER": "r",
    "CCD-TEMP": -100.0,
    "XBINNING": 1,
    "YBINNING": 1,
}


def plain_frame(path: Path, data: np.ndarray | None = None) -> Path:
    """A raw COLIBRI-like frame: uint16, 48 rows, 64 + 32 overscan columns."""
    if data is None:
        rng = np.random.default_rng(3)
        data = rng.normal(1000.0, 8.0, (48, 96)).round().astype(np.uint16)
        data[5, 7] = 65535  # a saturated pixel, the top of the uint16 range
        data[6, 7] = 0
    h = fits.Header()
    for k, v in KEYS.items():
        h[k] = v
    h["COMMENT"] = "written by the camera"
    fits.PrimaryHDU(data, header=h).writeto(path)
    return path


def fpack(src: Path, dst: Path, **kw) -> Path:
    """Write ``src``'s primary image as fpack does: empty primary, then a CompImageHDU."""
    with fits.open(src) as hdul:
        comp = fits.CompImageHDU(hdul[0].data, header=hdul[0].header, **kw)
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(dst)
    return dst


@pytest.mark.parametrize(
    "kw",
    [
        {"compression_type": "RICE_1"},
        {"compression_type": "GZIP_2"},
        {"compression_type": "HCOMPRESS_1", "hcomp_scale": 0},  # scale 0: lossless
        {"compression_type": "RICE_1", "tile_shape": (16, 32)},  # 2-D tiles
    ],
)
def test_fpacked_frame_reads_as_the_plain_one(tmp_path, kw):
    cam = load_camera()
    plain = plain_frame(tmp_path / "f.fits")
    fz = fpack(plain, tmp_path / "f.fits.fz", **kw)
    data0, h0 = read_raw(plain, cam)
    data1, h1 = read_raw(fz, cam)
    assert data1.dtype == data0.dtype == np.uint16
    np.testing.assert_array_equal(data1, data0)
    # The original primary keywords, in the same values; no compression or extension card.
    assert dict(h1) == dict(h0)
    for k, v in KEYS.items():
        assert h1[k] == v
    assert h1["NAXIS1"] == 96 and h1["NAXIS2"] == 48 and h1["SIMPLE"] is True
    assert not [k for k in h1 if k.startswith("Z") or k in ("XTENSION", "EXTNAME", "PCOUNT")]
    assert list(h1["COMMENT"]) == ["written by the camera"]
    i0, i1 = read_frame_info(plain, cam), read_frame_info(fz, cam)
    assert (i1.shape, i1.exposure_type, i1.date_obs, i1.filter) == (
        i0.shape,
        i0.exposure_type,
        i0.date_obs,
        i0.filter,
    )


def test_gzip_frame_and_float_lossless(tmp_path):
    cam = load_camera()
    plain = plain_frame(tmp_path / "f.fits")
    gz = tmp_path / "f.fits.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    np.testing.assert_array_equal(read_raw(gz, cam)[0], read_raw(plain, cam)[0])
    assert dict(read_image_header(gz)) == dict(read_image_header(plain))
    # Float pixels: RICE quantises unless told not to; GZIP with quantize_level 0 is exact.
    fdata = np.random.default_rng(1).normal(0.0, 1.0, (48, 96)).astype(np.float32)
    fplain = plain_frame(tmp_path / "float.fits", fdata)
    exact = fpack(fplain, tmp_path / "exact.fits.fz", compression_type="GZIP_2", quantize_level=0)
    np.testing.assert_array_equal(read_image(exact)[0], fdata)
    lossy = fpack(fplain, tmp_path / "lossy.fits.fz", compression_type="RICE_1")
    diff = read_image(lossy)[0] - fdata
    assert 0 < np.abs(diff).max() < 0.1  # quantised to ~sigma/4 steps by default


def test_image_in_an_extension_merges_the_primary_keywords(tmp_path):
    data = np.arange(48 * 96, dtype=np.int32).reshape(48, 96)
    prim = fits.PrimaryHDU()
    prim.header["TELESCOP"] = "COLIBRI"
    prim.header["FILTER"] = "g"  # the image HDU's value wins
    prim.header["BZERO"] = 7  # scaling cards of an empty primary are not the image's
    prim.header["HIERARCH ESO TEL ALT"] = 45.0
    prim.header["OBSNOTE"] = "long " * 30  # a CONTINUE'd string
    sci = fits.ImageHDU(data, name="SCI")
    sci.header["FILTER"] = "r"
    sci.header["EXPTIME"] = 30.0
    sci.header["HIERARCH ESO TEL ALT"] = 46.5
    path = tmp_path / "mef.fits"
    fits.HDUList([prim, sci, fits.ImageHDU(data[:2], name="OTHER")]).writeto(path)
    got, h = read_image(path)
    np.testing.assert_array_equal(got, data)
    assert (h["TELESCOP"], h["FILTER"], h["EXPTIME"], h["BITPIX"]) == ("COLIBRI", "r", 30.0, 32)
    assert "BZERO" not in h and "EXTNAME" not in h
    assert h["ESO TEL ALT"] == 46.5 and h["OBSNOTE"] == ("long " * 30).rstrip()


def test_damaged_files_give_a_clear_error_naming_the_file(tmp_path):
    cam = load_camera()
    fz = fpack(plain_frame(tmp_path / "f.fits"), tmp_path / "f.fits.fz")
    blob = fz.read_bytes()
    # Cut inside the compressed data: the header still reads, the pixels do not.
    cut = tmp_path / "cut.fits.fz"
    cut.write_bytes(blob[: len(blob) - 2000])
    with pytest.raises(InputDataError, match=r"cut\.fits\.fz: .*truncated"):
        read_raw(cut, cam)
    with pytest.raises(InputDataError, match=r"cut\.fits\.fz"):
        read_frame_info(cut, cam)
    # Cut inside the compressed HDU's header.
    head = tmp_path / "head.fits.fz"
    head.write_bytes(blob[: 2880 + 1000])
    with pytest.raises(InputDataError, match=r"head\.fits\.fz"):
        read_frame_info(head, cam)
    # Garbage in the tile heap: the decompressor's own error, with the file name.
    bad = bytearray(blob)
    with fits.open(fz, disable_image_compression=True) as hdul:
        table = hdul[1].header  # the binary table holding the tiles: the heap follows it
        heap = hdul.fileinfo(1)["datLoc"] + table["NAXIS1"] * table["NAXIS2"]
    for k in range(heap + 10, heap + 1500, 7):
        bad[k] = (bad[k] * 31 + 7) % 256
    corrupt = tmp_path / "corrupt.fits.fz"
    corrupt.write_bytes(bytes(bad))
    with pytest.raises(InputDataError, match=r"corrupt\.fits\.fz: cannot read the image"):
        read_raw(corrupt, cam)
    # A FITS file with a table and no image.
    table = tmp_path / "table.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("A", "E")])]
    ).writeto(table)
    with pytest.raises(InputDataError, match=r"table\.fits: no HDU holds an image"):
        read_raw(table, cam)
