"""Readers fixed after the corpus: broken OGIP files give InputDataError naming the file."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import load_camera
from svomflow.products.ccd_frames import read_frame_info, read_image_header, read_raw
from svomflow.products.events import read_events
from svomflow.products.ogip import check_fits_sizes
from svomflow.products.ogip_spectra import read_arf, read_pha, read_response_set
from svomflow.tasks.timing.binning import normalise_gti
from svomflow.tasks.vhf.lightcurve_input import is_lightcurve_file
from svomflow.tasks.xray.events import read_pass, read_saa

from .mutations import truncated_gzip, wrong_column_type
from .runner import SHARED

ASCA = SHARED / "xray" / "asca"
needs_asca = pytest.mark.skipif(not ASCA.is_dir(), reason="../shared/data/xray/asca is absent")


def _column_set(src: Path, dst: Path, ext: str, column: str, value: float) -> Path:
    """Copy ``src`` with ``value`` written into the first rows of one column."""
    with fits.open(src) as hdul:
        hdul[ext].data[column][:3] = value
        hdul.writeto(dst)
    return dst


@needs_asca
def test_read_arf_refuses_a_file_that_is_not_fits(tmp_path: Path) -> None:
    """Was an OSError traceback from astropy: now one InputDataError naming the file."""
    bad = tmp_path / "x.arf"
    bad.write_text("not a FITS file\n")
    with pytest.raises(InputDataError, match=re.escape("x.arf")):
        read_arf(bad)


@needs_asca
@pytest.mark.parametrize("value", [np.nan, np.inf, -1.0])
def test_read_arf_refuses_nan_inf_or_negative_area(value: float, tmp_path: Path) -> None:
    """An ARF with NaN, Inf or negative areas was used as it was."""
    bad = _column_set(ASCA / "s0_mar24.arf", tmp_path / "bad.arf", "SPECRESP", "SPECRESP", value)
    with pytest.raises(InputDataError, match=re.escape("bad.arf")):
        read_arf(bad)
    assert read_arf(ASCA / "s0_mar24.arf").specresp.size > 0


@needs_asca
def test_read_arf_refuses_a_text_column(tmp_path: Path) -> None:
    """A column of text where numbers are expected was a ValueError traceback."""
    for seed in range(6):
        dst = tmp_path / f"t{seed}.arf"
        wrong_column_type(ASCA / "s0_mar24.arf", dst, np.random.default_rng(seed))
        with pytest.raises(InputDataError, match=re.escape(dst.name)):
            read_arf(dst)


@needs_asca
@pytest.mark.parametrize("value", [np.nan, -np.inf])
def test_read_pha_refuses_non_finite_counts(value: float, tmp_path: Path) -> None:
    """-Inf rates reached the fit (LinAlgError); NaN counts gave an unflagged fit."""
    with fits.open(ASCA / "s0_mar24_bin.pha") as hdul:
        col = "RATE" if "RATE" in hdul["SPECTRUM"].columns.names else "COUNTS"
        data = hdul["SPECTRUM"].data
        if data[col].dtype.kind != "f":
            hdul["SPECTRUM"] = fits.BinTableHDU.from_columns(
                [
                    c
                    if c.name != col
                    else fits.Column(col, "E", array=np.asarray(data[col], float))
                    for c in data.columns
                ],
                header=hdul["SPECTRUM"].header,
            )
        hdul["SPECTRUM"].data[col][5] = value
        hdul.writeto(tmp_path / "bad.pha")
    with pytest.raises(InputDataError, match="NaN or infinite"):
        read_pha(tmp_path / "bad.pha")


@needs_asca
def test_read_response_refuses_nan_matrix(tmp_path: Path) -> None:
    """A response rewritten with NaN in ENERG_LO is refused with a user error naming it."""
    bad = _column_set(ASCA / "s0_mar24.rmf", tmp_path / "bad.rmf", "MATRIX", "ENERG_LO", np.nan)
    with pytest.raises(InputDataError, match="bad"):
        read_response_set(bad)


@needs_asca
def test_truncated_gzip_response_is_a_user_error(tmp_path: Path) -> None:
    """A cut .gz stream gives InputDataError naming the file, never zlib.error or EOFError."""
    dst = tmp_path / "cut.rmf.gz"
    truncated_gzip(ASCA / "s0_mar24.rmf", dst, np.random.default_rng(2))
    with pytest.raises(InputDataError, match=re.escape("cut.rmf.gz")):
        read_response_set(dst)


@pytest.mark.parametrize("gti", [[[0.0, -np.inf]], [[-np.inf, 5.0]], [[0.0, np.nan]], [[5.0, 1.0]]])
def test_normalise_gti_refuses_non_finite_or_reversed(gti: list[list[float]]) -> None:
    """A -Inf GTI bound crashed the binning further on; now a user error (still a ValueError)."""
    with pytest.raises(InputDataError):
        normalise_gti(np.array(gti))
    with pytest.raises(ValueError):
        normalise_gti(np.array(gti))


def _raw_frame(path: Path, data: np.ndarray, exptime: float) -> Path:
    """Write a small COLIBRI-like raw frame (48 rows, 64 + 32 overscan columns)."""
    header = fits.Header()
    for key, value in {
        "INSTRUME": "DDRAGO-B",
        "EXPTYPE": "dark",
        "IMAGETYP": "DARK",
        "EXPTIME": exptime,
        "DATE-OBS": "2026-11-24T00:42:00.125",
        "FILTER": "r",
        "CCD-TEMP": -100.0,
        "XBINNING": 1,
        "YBINNING": 1,
    }.items():
        header[key] = value
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def test_raw_frame_with_nan_pixels_is_refused(tmp_path: Path) -> None:
    """NaN pixels in a raw frame were reduced into an unflagged image."""
    cam = load_camera()
    data = np.full((48, 96), 1000.0, np.float32)
    ok = _raw_frame(tmp_path / "ok.fits", data, 10.0)
    assert read_raw(ok, cam)[0].shape == (48, 96)
    data[3, 4] = np.nan
    with pytest.raises(InputDataError, match="NaN or infinite"):
        read_raw(_raw_frame(tmp_path / "nan.fits", data, 10.0), cam)


def test_raw_frame_with_negative_exposure_is_refused(tmp_path: Path) -> None:
    """A negative EXPTIME was accepted into the nightly masters."""
    cam = load_camera()
    data = np.full((48, 96), 1000, np.uint16)
    assert read_frame_info(_raw_frame(tmp_path / "ok.fits", data, 10.0), cam).exptime == 10.0
    with pytest.raises(InputDataError, match="exposure time"):
        read_frame_info(_raw_frame(tmp_path / "neg.fits", data, -10.0), cam)


def test_negative_naxis_is_refused_not_looped_on(tmp_path: Path) -> None:
    """NAXIS2 = -5 made astropy read the same header for ever (a hang in gp1 reduction)."""
    path = _raw_frame(tmp_path / "f.fits", np.full((48, 96), 1000, np.uint16), 10.0)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"NAXIS2  ")
    raw[at : at + 80] = (b"NAXIS2  = " + b"-5".rjust(20)).ljust(80)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputDataError, match="negative"):
        check_fits_sizes(path)
    with pytest.raises(InputDataError):
        read_raw(path, load_camera())


def _event_file(
    path: Path, times: np.ndarray, gti: list[list[float]], header: dict[str, float] | None = None
) -> Path:
    """Write a small OGIP event list (TIME, ENERGY) with its GTI and ``header`` cards."""
    ev = fits.BinTableHDU.from_columns(
        [
            fits.Column("TIME", "D", array=times),
            fits.Column("ENERGY", "E", unit="keV", array=np.full(times.size, 50.0)),
        ],
        name="EVENTS",
    )
    for key, value in (header or {}).items():
        ev.header[key] = value
    g = np.asarray(gti, float).reshape(-1, 2)
    gti_hdu = fits.BinTableHDU.from_columns(
        [fits.Column("START", "D", array=g[:, 0]), fits.Column("STOP", "D", array=g[:, 1])],
        name="GTI",
    )
    fits.HDUList([fits.PrimaryHDU(), ev, gti_hdu]).writeto(path)
    return path


def test_event_gti_rows_that_are_broken_are_dropped_and_flagged(tmp_path: Path) -> None:
    """A NaN or reversed GTI row was intersected as it was; a GTI with none left is refused."""
    times = np.linspace(0.0, 99.0, 200)
    good = read_events(_event_file(tmp_path / "ok.fits", times, [[0.0, 100.0]]))
    assert good.flags == []
    events = read_events(
        _event_file(tmp_path / "g.fits", times, [[0.0, 40.0], [np.nan, 60.0], [60.0, 100.0]])
    )
    np.testing.assert_array_equal(events.gti + events.t0, [[0.0, 40.0], [60.0, 100.0]])
    assert any("1 GTI rows" in f for f in events.flags)
    with pytest.raises(InputDataError, match="no GTI row"):
        read_events(_event_file(tmp_path / "r.fits", times, [[100.0, 0.0]]))


@pytest.mark.parametrize("value", [-10.0, 0.0, -1.0e9])
def test_event_list_with_a_non_positive_exposure_keyword_is_flagged(
    value: float, tmp_path: Path
) -> None:
    """ONTIME/LIVETIME <= 0 in an event list (exposure taken from the GTIs) was silent."""
    times = np.linspace(0.0, 99.0, 200)
    ok = read_events(_event_file(tmp_path / "ok.fits", times, [[0.0, 100.0]], {"ONTIME": 100.0}))
    assert ok.flags == []
    bad = _event_file(tmp_path / "b.fits", times, [[0.0, 100.0]], {"ONTIME": value})
    assert [f for f in read_events(bad).flags if "ONTIME" in f]


def test_events_outside_their_gti_are_refused_or_flagged(tmp_path: Path) -> None:
    """Times shifted by 1e12 s were read into a light curve with no event of the file."""
    times = np.linspace(0.0, 99.0, 200)
    with pytest.raises(InputDataError, match="no event lies within the GTIs"):
        read_events(_event_file(tmp_path / "far.fits", times + 1.0e12, [[0.0, 100.0]]))
    times[:5] += 1.0e12
    part = read_events(_event_file(tmp_path / "part.fits", times, [[0.0, 100.0]]), t0=0.0)
    assert any("5 events more than a day outside" in f for f in part.flags)


def test_mxt_pass_with_a_text_column_is_a_user_error(tmp_path: Path) -> None:
    """A text RAWX column in an MXT pass was a numpy traceback (UFuncTypeError)."""
    inst = load_instrument("mxt")
    n = 20
    cols = [
        fits.Column(name="TIME", format="D", array=np.arange(n, dtype=float)),
        fits.Column(name="FRAME", format="J", array=np.arange(n)),
        fits.Column(name="RAWX", format="8A", array=np.full(n, "x")),
        fits.Column(name="RAWY", format="I", array=np.full(n, 20)),
        fits.Column(name="PHA", format="J", array=np.full(n, 300)),
    ]
    ev = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    ev.header["INSTRUME"] = str(inst.instrument)
    fits.HDUList([fits.PrimaryHDU(), ev]).writeto(tmp_path / "p.fits")
    with pytest.raises(InputDataError, match="RAWX is not numeric"):
        read_pass(tmp_path / "p.fits", inst)
    truncated_gzip(tmp_path / "p.fits", tmp_path / "cut.fits.gz", np.random.default_rng(1))
    with pytest.raises(InputDataError, match=re.escape("cut.fits.gz")):
        read_pass(tmp_path / "cut.fits.gz", inst)


@needs_asca
def test_read_pha_refuses_a_reversed_gti(tmp_path: Path) -> None:
    """A PHA whose GTI had START after STOP (a damaged file) was fitted without a flag."""
    with fits.open(ASCA / "s0_mar24_bin.pha") as hdul:
        start = np.array(hdul["GTI"].data["START"])
        hdul["GTI"].data["START"] = start[::-1]
        hdul["GTI"].data["STOP"] = start[::-1] - 1.0
        hdul.writeto(tmp_path / "bad.pha")
    with pytest.raises(InputDataError, match="START after STOP"):
        read_pha(tmp_path / "bad.pha")


def test_raw_frame_with_a_control_byte_in_a_header_card_is_read(tmp_path: Path) -> None:
    """A control byte in a card's comment was a ValueError traceback from calib nightly."""
    path = _raw_frame(tmp_path / "f.fits", np.full((48, 96), 1000, np.uint16), 0.0)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"FILTER  ")
    raw[at + 45] = 0x10  # after the value: a non-printable byte (as calib-010 flipped)
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="kept as COMMENT"):
        info = read_frame_info(path, load_camera())
    assert info.exptime == 0.0 and info.exposure_type == "dark"
    with pytest.warns(UserWarning, match="kept as COMMENT"):
        header = read_image_header(path)
    assert all(" " <= c <= "~" for c in str(header))


def _saa_file(path: Path) -> Path:
    """Write a small weekly SAA file (extension SAA, START/STOP)."""
    cols = [
        fits.Column(name="START", format="D", array=[1.0, 10.0]),
        fits.Column(name="STOP", format="D", array=[2.0, 12.0]),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="SAA")]).writeto(path)
    return path


def _replace_bytes(path: Path, old: bytes, new: bytes) -> Path:
    """Replace the first ``old`` of the file's bytes by ``new`` (same length) in place."""
    raw = path.read_bytes()
    assert old in raw and len(old) == len(new)
    path.write_bytes(raw.replace(old, new, 1))
    return path


def test_unparsable_table_card_is_a_user_error(tmp_path: Path) -> None:
    """A control byte in TFORM1 was astropy's VerifyError traceback (mxt-027, mxt-083)."""
    assert read_saa(_saa_file(tmp_path / "ok.fits")).shape == (2, 2)
    bad = _replace_bytes(_saa_file(tmp_path / "s.fits"), b"TFORM1  = 'D", b"TFORM1  = \x01D")
    with pytest.raises(InputDataError, match=r"s\.fits: .*VerifyError"):
        read_saa(bad)


def test_unparsable_extension_is_a_user_error(tmp_path: Path) -> None:
    """An extension astropy cannot parse has no .data: AttributeError (mxt-044, mxt-090)."""
    bad = _replace_bytes(
        _saa_file(tmp_path / "s.fits"), b"XTENSION= 'BINTABLE'", b"XTENSION= XBINTABLE'"
    )
    # astropy warns that it treats the HDU as corrupted (an error under pytest's filter)
    with warnings.catch_warnings(), pytest.raises(InputDataError, match=r"s\.fits: .*Attr"):
        warnings.simplefilter("ignore")
        read_saa(bad)


def test_mxt_pass_whose_events_are_an_image_is_a_user_error(tmp_path: Path) -> None:
    """An EVENTS extension turned into an image had no .columns: AttributeError (mxt-087)."""
    inst = load_instrument("mxt")
    cols = [fits.Column(name="TIME", format="D", array=np.arange(4.0))]
    ev = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    ev.header["INSTRUME"] = str(inst.instrument)
    fits.HDUList([fits.PrimaryHDU(), ev]).writeto(tmp_path / "p.fits")
    _replace_bytes(tmp_path / "p.fits", b"XTENSION= 'BINTABLE'", b"XTENSION= 'IMAGE   '")
    with pytest.raises(InputDataError, match=r"p\.fits: "):
        read_pass(tmp_path / "p.fits", inst)


def test_absurd_naxis_is_refused_before_reading(tmp_path: Path) -> None:
    """NAXIS = 999999999999 made the size check list a trillion axes: memory for ever.

    Found in-process as ``calib-047-absurd_size-bias0`` (13 GB and rising); the FITS limit
    is 999 axes.
    """
    path = tmp_path / "f.fits"
    fits.PrimaryHDU(np.zeros((4, 6), np.int16)).writeto(path)
    _replace_bytes(path, b"NAXIS   =                    2", b"NAXIS   =         999999999999")
    with pytest.raises(InputDataError, match="NAXIS = 999999999999"):
        check_fits_sizes(path)


def test_absurd_naxis_in_an_event_file_is_a_user_error(tmp_path: Path) -> None:
    """NAXIS = 2147483647 in a table made astropy look for NAXIS3: a KeyError traceback.

    ``vhf-039-absurd_size-eclairs``: the check of whether the input is a binned light curve
    (made before the event reader) let the KeyError through; the event reader refused it.
    """
    times = np.linspace(0.0, 99.0, 200)
    path = _event_file(tmp_path / "e.fits", times, [[0.0, 100.0]])
    raw = path.read_bytes()
    events_header = raw.index(b"XTENSION", 2880)
    naxis = raw.index(b"NAXIS   =                    2", events_header)
    path.write_bytes(
        raw[:naxis] + b"NAXIS   =           2147483647" + raw[naxis + 30 :]
    )  # fmt: skip
    assert not is_lightcurve_file(path)
    with pytest.raises(InputDataError, match=r"e\.fits: .*NAXIS3"):
        read_events(path)
