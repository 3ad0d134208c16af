"""Seeded mutations that turn a valid input file into a broken one.

Each mutation reads a source file and writes a broken copy; ``INVALID`` names the mutations
after which any number computed from the file is scientifically meaningless, so a run that
succeeds must flag its product.
"""

from __future__ import annotations

import gzip
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

Mutation = Callable[[Path, Path, np.random.Generator], None]


class NotApplicable(Exception):
    """The file has nothing the mutation could break in a meaningful way."""


_TIME_COLUMNS = ("TIME", "START", "STOP", "TSTART", "TSTOP")
_EXPOSURE_KEYS = ("EXPOSURE", "ONTIME", "LIVETIME", "EXPTIME")


def _read_bytes(src: Path) -> bytes:
    """Return the file's bytes, decompressed when it is gzipped (mutations act on FITS)."""
    raw = src.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _header_end(raw: bytes) -> int:
    """Return the byte offset just past the primary header's END card."""
    for start in range(0, len(raw), 80):
        if raw[start : start + 8] == b"END     ":
            return (start // 2880 + 1) * 2880
    return min(len(raw), 2880)


def truncate(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Cut the file at a random point between 1 % and 95 % of its length."""
    raw = _read_bytes(src)
    dst.write_bytes(raw[: int(len(raw) * rng.uniform(0.01, 0.95))])


def flip_header(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Flip 1 to 8 random bytes inside the primary header."""
    raw = bytearray(_read_bytes(src))
    for pos in rng.integers(0, _header_end(bytes(raw)), rng.integers(1, 9)):
        raw[pos] = int(rng.integers(0, 256))
    dst.write_bytes(bytes(raw))


def flip_data(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Flip 1 to 64 random bytes after the primary header (extension headers and data)."""
    raw = bytearray(_read_bytes(src))
    start = _header_end(bytes(raw))
    if start < len(raw):
        for pos in rng.integers(start, len(raw), rng.integers(1, 65)):
            raw[pos] = int(rng.integers(0, 256))
    dst.write_bytes(bytes(raw))


def not_fits(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Write text or random bytes under the file's name."""
    if rng.random() < 0.5:
        dst.write_text("this is not a FITS file\n" * int(rng.integers(1, 200)))
    else:
        dst.write_bytes(rng.integers(0, 256, int(rng.integers(0, 20000)), dtype=np.uint8).tobytes())


def truncated_gzip(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Gzip the file and cut the stream (the destination name ends in ``.gz``)."""
    packed = gzip.compress(_read_bytes(src), compresslevel=1)
    dst.write_bytes(packed[: int(len(packed) * rng.uniform(0.05, 0.95))])


def _edit(src: Path, dst: Path, edit: Callable[[fits.HDUList], None]) -> None:
    """Open ``src`` with astropy, apply ``edit`` and write ``dst`` without verification."""
    # edited in place and written from the open file: copying HDUs garbles variable-length
    # arrays (an RMF's MATRIX), which would break the file in ways the case does not name
    # (reading every HDU's data first would rescale a BSCALE'd primary image on write)
    with fits.open(io.BytesIO(src.read_bytes())) as hdul:  # no file handle left to astropy
        edit(hdul)
        hdul.writeto(dst, overwrite=True, output_verify="silentfix+ignore")


def _tables(hdul: fits.HDUList) -> list[int]:
    """Return the indices of the binary-table extensions that hold at least one column."""
    return [i for i, h in enumerate(hdul) if isinstance(h, fits.BinTableHDU) and len(h.columns)]


def _no_table_cards(header: fits.Header) -> fits.Header:
    """Return a copy of a table header without its column and size cards (rebuilt on write)."""
    out = header.copy()
    for key in list(out):
        if key.startswith(
            (
                "TTYPE",
                "TFORM",
                "TUNIT",
                "TNULL",
                "TSCAL",
                "TZERO",
                "TDIM",
                "TDISP",
                "TLMIN",
                "TLMAX",
                "NAXIS",
                "TFIELDS",
            )
        ):
            del out[key]
    return out


def _pick(rng: np.random.Generator, items: list):  # type: ignore[no-untyped-def]
    """Return one random element of a non-empty list."""
    return items[int(rng.integers(0, len(items)))]


def absurd_size(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Set NAXIS1/NAXIS2/PCOUNT of an extension header to absurd values in the raw bytes."""
    raw = bytearray(_read_bytes(src))
    key = _pick(rng, [b"NAXIS2  ", b"NAXIS1  ", b"PCOUNT  ", b"NAXIS   "])
    value = _pick(rng, [b"999999999999", b"-5", b"2147483647", b"0"])
    positions = [p for p in range(0, len(raw), 80) if raw[p : p + 8] == key]
    if positions:
        pos = _pick(rng, positions)
        raw[pos : pos + 80] = (key + b"= " + value.rjust(20)).ljust(80)
    dst.write_bytes(bytes(raw))


def drop_hdu(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Remove one extension (or all of them)."""

    def edit(hdul: fits.HDUList) -> None:
        if len(hdul) > 1:
            del hdul[int(rng.integers(1, len(hdul))) if rng.random() < 0.7 else slice(1, None)]

    _edit(src, dst, edit)


def drop_column(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Remove one column of one table."""

    def edit(hdul: fits.HDUList) -> None:
        tables = _tables(hdul)
        if tables:
            i = _pick(rng, tables)
            drop = _pick(rng, hdul[i].columns.names)
            cols = [c for c in hdul[i].columns if c.name != drop]
            hdul[i] = fits.BinTableHDU.from_columns(cols, header=_no_table_cards(hdul[i].header))

    _edit(src, dst, edit)


def drop_keyword(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Remove one non-structural keyword from one HDU."""
    structural = ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "TFIELDS")

    def edit(hdul: fits.HDUList) -> None:
        keys = [
            (i, k)
            for i, h in enumerate(hdul)
            for k in h.header
            if k and not k.startswith(structural) and not k[1:].startswith("FORM")
        ]
        if keys:
            i, key = _pick(rng, keys)
            del hdul[i].header[key]

    _edit(src, dst, edit)


def bad_keyword(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Give a keyword a value of the wrong kind (text for a number, a number for text, NaN)."""
    value = _pick(rng, ["garbage", -1.0e300, float("nan"), "", 0, -999])

    def edit(hdul: fits.HDUList) -> None:
        skip = (
            "SIMPLE",
            "BITPIX",
            "NAXIS",
            "XTENSION",
            "PCOUNT",
            "GCOUNT",
            "TFIELDS",
            "TFORM",
            "TTYPE",
            "EXTEND",
            "COMMENT",
            "HISTORY",
        )
        keys = [
            (i, k) for i, h in enumerate(hdul) for k in h.header if k and not k.startswith(skip)
        ]
        if keys:
            i, key = _pick(rng, keys)
            hdul[i].header[key] = value

    _edit(src, dst, edit)


def wrong_column_type(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Replace one column by a text column of the same length."""

    def edit(hdul: fits.HDUList) -> None:
        tables = [i for i in _tables(hdul) if len(hdul[i].data)]
        if tables:
            i = _pick(rng, tables)
            hdu = hdul[i]
            name = _pick(rng, hdu.columns.names)
            cols = [
                c
                if c.name != name
                else fits.Column(name=name, format="8A", array=np.full(len(hdu.data), "x"))
                for c in hdu.columns
            ]
            hdul[i] = fits.BinTableHDU.from_columns(cols, header=_no_table_cards(hdu.header))

    _edit(src, dst, edit)


def _float_column(
    hdul: fits.HDUList, rng: np.random.Generator, prefer: tuple[str, ...]
) -> tuple[fits.BinTableHDU, str] | None:
    """Return a table and the name of a floating-point column, preferring ``prefer``."""
    found = [
        (hdul[i], c.name)
        for i in _tables(hdul)
        if len(hdul[i].data)
        for c in hdul[i].columns
        if np.asarray(hdul[i].data[c.name]).dtype.kind == "f"
    ]
    best = [f for f in found if f[1].upper() in prefer]
    return _pick(rng, best or found) if found else None


def nan_inf(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Put NaN, +Inf or -Inf into some rows of a floating-point column."""

    def edit(hdul: fits.HDUList) -> None:
        images = [
            i for i, h in enumerate(hdul) if h.is_image and h.data is not None and h.data.size
        ]
        if images and not _tables(hdul):
            i = _pick(rng, images)
            pixels = np.asarray(hdul[i].data, dtype=np.float32)
            hit = rng.integers(0, pixels.size, max(1, pixels.size // 100))
            pixels.ravel()[hit] = _pick(rng, [np.nan, np.inf, -np.inf])
            header = hdul[i].header
            hdul[i] = (
                fits.ImageHDU(pixels, header=header)
                if i
                else fits.PrimaryHDU(pixels, header=header)
            )
            return
        hit = _float_column(
            hdul, rng, ("RATE", "COUNTS", "TIME", "SPECRESP", "MATRIX", "START", "STOP", "QUAT")
        )
        if hit:
            hdu, name = hit
            col = np.asarray(hdu.data[name])
            rows = rng.integers(0, len(col), max(1, len(col) // int(rng.integers(2, 50))))
            col[rows] = _pick(rng, [np.nan, np.inf, -np.inf])

    _edit(src, dst, edit)


#: Tables that hold the simulator's truth, which no analysis reads: emptying one leaves the
#: input valid, so the corpus does not count it as a bad input.
_TRUTH_TABLES = frozenset({"ORIGINS"})


def empty_table(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Keep the columns of one table (not a truth table) but no rows."""

    def edit(hdul: fits.HDUList) -> None:
        tables = [i for i in _tables(hdul) if hdul[i].name not in _TRUTH_TABLES]
        if tables:
            i = _pick(rng, tables)
            hdul[i] = fits.BinTableHDU(
                data=hdul[i].data[:0], header=_no_table_cards(hdul[i].header)
            )

    _edit(src, dst, edit)


def _time_edit(
    src: Path, dst: Path, rng: np.random.Generator, change: Callable[[np.ndarray], None]
) -> None:
    """Apply ``change`` in place to one time-like column."""

    def edit(hdul: fits.HDUList) -> None:
        hit = _float_column(hdul, rng, _TIME_COLUMNS)
        if hit is None or hit[1].upper() not in _TIME_COLUMNS:
            # reversing a spectrum's COUNTS would leave a valid file counted as a bad time
            raise NotApplicable("no time column")
        hdu, name = hit
        change(np.asarray(hdu.data[name]))

    _edit(src, dst, edit)


def reversed_times(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Reverse the order of a time column (and so START > STOP where both exist)."""
    _time_edit(src, dst, rng, lambda t: t.__setitem__(slice(None), t[::-1].copy()))


def duplicated_times(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Make a time column constant."""
    _time_edit(src, dst, rng, lambda t: t.__setitem__(slice(None), t[0] if len(t) else 0.0))


def far_future_times(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Shift a time column 1e12 s into the future."""
    _time_edit(src, dst, rng, lambda t: t.__iadd__(1.0e12))


def bad_exposure(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Set every exposure-like keyword the file has to a negative value.

    Zero is not used (EXPTIME = 0 is right for a bias frame), and no keyword is added to a
    file without one (an exposure nobody reads would leave the input valid).
    """
    value = _pick(rng, [-10.0, -1.0e9])

    def edit(hdul: fits.HDUList) -> None:
        found = False
        for hdu in hdul:
            for key in _EXPOSURE_KEYS:
                if key in hdu.header:
                    hdu.header[key] = value
                    found = True
        if not found:
            raise NotApplicable("no exposure keyword")

    _edit(src, dst, edit)


def path_like_header(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Put path-like values (``../../..``, absolute paths) in identifying keywords."""
    value = _pick(rng, ["../../../../tmp/escape", "/etc/passwd", "..", "a/../../b", "~root/x"])

    def edit(hdul: fits.HDUList) -> None:
        for hdu in hdul:
            for key in (
                "OBJECT",
                "TRIGID",
                "OBS_ID",
                "OBSID",
                "INSTRUME",
                "TELESCOP",
                "FILTER",
                "IMAGETYP",
                "DETNAM",
            ):
                if key in hdu.header or hdu is hdul[0]:
                    hdu.header[key] = value

    _edit(src, dst, edit)


MUTATIONS: dict[str, Mutation] = {
    "truncate": truncate,
    "flip_header": flip_header,
    "flip_data": flip_data,
    "not_fits": not_fits,
    "truncated_gzip": truncated_gzip,
    "absurd_size": absurd_size,
    "drop_hdu": drop_hdu,
    "drop_column": drop_column,
    "drop_keyword": drop_keyword,
    "bad_keyword": bad_keyword,
    "wrong_column_type": wrong_column_type,
    "nan_inf": nan_inf,
    "empty_table": empty_table,
    "reversed_times": reversed_times,
    "duplicated_times": duplicated_times,
    "far_future_times": far_future_times,
    "bad_exposure": bad_exposure,
    "path_like_header": path_like_header,
    "foreign": lambda src, dst, rng: None,  # the family swaps in another instrument's file
}

#: Mutations that need a table (not applied to image-only files).
TABLE_ONLY = frozenset(
    {
        "drop_column",
        "wrong_column_type",
        "empty_table",
        "reversed_times",
        "duplicated_times",
        "far_future_times",
    }
)

#: Mutations after which a number computed from the file must not be trusted unflagged.
INVALID = frozenset(
    {
        "nan_inf",
        "reversed_times",
        "duplicated_times",
        "far_future_times",
        "bad_exposure",
        "truncate",
        "empty_table",
    }
)


def mutate(
    name: str, src: Path, dst: Path, rng: np.random.Generator, foreign: Path | None = None
) -> str:
    """Write ``dst``, a copy of ``src`` broken by mutation ``name``.

    Parameters
    ----------
    name : str
        Key of :data:`MUTATIONS`, or ``none`` for an unchanged copy.
    src, dst : Path
        The valid source file and the path of the broken copy.
    rng : numpy.random.Generator
        The case's generator (same seed, same bytes).
    foreign : Path, optional
        Another instrument's file, used by the ``foreign`` mutation.

    Returns
    -------
    str
        The mutation really applied: ``flip_data`` when ``name`` could not change this file
        (astropy refused the edit, or the file has nothing it applies to: no time column, no
        exposure keyword).
    """
    if name in ("foreign", "none"):
        shutil.copyfile(foreign if name == "foreign" and foreign else src, dst)
        return name
    try:
        MUTATIONS[name](src, dst, rng)
        if dst.read_bytes() != _read_bytes(src):
            return name
    except Exception:  # astropy refused the edit, or NotApplicable: fall back to a byte flip
        pass
    flip_data(src, dst, rng)
    return "flip_data"
