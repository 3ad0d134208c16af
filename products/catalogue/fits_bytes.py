"""The bytes of a FITS product written straight from its model, as astropy would write them.

Building astropy HDUs for a product (``BinTableHDU.from_columns``, one ``Header.set`` per
card, then the verification and checksums of ``HDUList.writeto``) costs about 10 ms of CPU
per small table, most of it in header machinery, and a VHF run writes some twenty such
products. :func:`fits_bytes` formats the same file directly from a
:class:`~svomflow.products.catalogue.models.FitsModel`'s blocks: the same cards in the same
order (astropy's rule included: a keyword card goes before the header's trailing
``COMMENT``/``HISTORY`` cards), the same big-endian rows, the same ``CHECKSUM``/``DATASUM``.
``tests/products/test_fits_bytes.py`` checks the files are byte-identical to astropy's.

It covers what products are made of: a primary header without data and binary tables of
fixed-width ``L``, ``A``, ``B``, ``I``, ``J``, ``K``, ``E`` and ``D`` columns (with repeat
counts, units and descriptions), header values that fit one card. Anything else (an image,
a variable-length or scaled column, a long string needing ``CONTINUE`` cards, a card that
astropy would refuse or shorten) returns None, and the caller writes the model with astropy.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["fits_bytes"]

Card = tuple[str, Any, str]

_BLOCK = 2880
_KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")
_PRINTABLE = re.compile(r"[ -~]*\Z")
_COMMENTARY = ("COMMENT", "HISTORY")
_FORMAT = re.compile(r"^(\d*)([LABIJKED])$")
# big-endian storage of each binary-table format code
_DTYPES = {"L": "u1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
# array kinds each format takes as it is (the casts astropy makes on assignment)
_KINDS = {"L": "biu", "B": "u", "I": "i", "J": "i", "K": "i", "E": "fi", "D": "fi", "A": "SU"}
# column attributes that would add keywords (TNULL, TSCAL, TDIM...) this writer does not
_UNSUPPORTED_COLUMN_ATTRIBUTES = (
    "null", "bscale", "bzero", "disp", "start", "dim", "coord_type", "coord_unit",
    "coord_ref_point", "coord_ref_value", "coord_inc", "time_ref_pos",
)  # fmt: skip
# keywords astropy derives from the data or ties to a column's attributes: a card of one of
# these among a block's cards would change the HDU, not only its header
_STRUCTURAL_PREFIXES = (
    "NAXIS", "TTYPE", "TFORM", "TUNIT", "TNULL", "TSCAL", "TZERO", "TDISP", "TBCOL", "TDIM",
    "TCTYP", "TCUNI", "TCRPX", "TCRVL", "TCDLT", "TRPOS",
)  # fmt: skip
_STRUCTURAL = {
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "TFIELDS",
    "EXTNAME", "CHECKSUM", "DATASUM", "BSCALE", "BZERO", "THEAP", "GROUPS", "END",
}  # fmt: skip
# "AXIS.1: 2": astropy reads such a string as a record-valued keyword card
_RECORD_VALUED = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*: +[-+0-9.]")


class _Unsupported(Exception):
    """The content needs astropy (see the module notes)."""


def _format_float(value: Any) -> str:
    # astropy's rule: str() with an upper-case exponent, at most 20 characters
    text = str(value).replace("e", "E")
    if len(text) > 20:
        idx = text.find("E")
        text = text[:20] if idx < 0 else text[: 20 - (len(text) - idx)] + text[idx:]
    return text


def _value_text(value: Any) -> str:
    """Return the value field of a card as astropy formats it."""
    if isinstance(value, str):
        if not _PRINTABLE.match(value) or _RECORD_VALUED.match(value):
            raise _Unsupported("non-printable or record-valued header value")
        if value == "":
            return "''"
        escaped = value.replace("'", "''")
        quoted = f"'{escaped:8}'"
        return f"{quoted:20}"
    if isinstance(value, bool | np.bool_):
        return f"{'T' if value else 'F':>20}"
    if isinstance(value, int | np.integer):
        return f"{value:>20d}"
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            raise _Unsupported("non-finite header value")  # astropy refuses it
        return f"{_format_float(value):>20}"
    raise _Unsupported(f"header value of type {type(value).__name__}")


def _image(key: str, value: Any, comment: str) -> str:
    """Return the 80-character image of a keyword card."""
    if not _PRINTABLE.match(comment):
        raise _Unsupported("non-printable comment")
    text = f"{key:8}= {_value_text(value)}" + (f" / {comment}" if comment else "")
    if len(text) > 80:
        raise _Unsupported("card longer than 80 characters")  # CONTINUE or a cut comment
    return f"{text:80}"


@dataclass
class _Header:
    """Cards of one HDU with astropy's placement rules for ``header[key] = (value, comment)``."""

    keys: list[str] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def set(self, key: str, value: Any, comment: str | None = None) -> None:
        """Update the first card of ``key`` in place, else add it before trailing commentary."""
        key = key.upper()
        if not _KEYWORD.match(key):
            raise _Unsupported(f"keyword {key!r}")
        if key in self.keys:
            i = self.keys.index(key)
            old = self.values[i]
            if isinstance(old, str) and isinstance(value, str) and old.rstrip() == value.rstrip():
                value = old  # astropy keeps the old value when only trailing spaces differ
            if comment is None:
                raise _Unsupported("update without a comment")
            self.values[i], self.images[i] = value, _image(key, value, comment)
            return
        i = len(self.keys)
        while i > 0 and self.keys[i - 1] in _COMMENTARY:
            i -= 1
        self.keys.insert(i, key)
        self.values.insert(i, value)
        self.images.insert(i, _image(key, value, comment or ""))

    def commentary(self, key: str, text: str) -> None:
        """Add a COMMENT or HISTORY card at the end."""
        if len(text) > 72 or not _PRINTABLE.match(text):
            raise _Unsupported("commentary needing several cards")
        self.keys.append(key)
        self.values.append(text)
        self.images.append(f"{key:8}{text:72}")

    def apply(self, cards: Iterable[Card]) -> None:
        """Apply a block's cards as ``models._apply_cards`` sets them on an astropy header."""
        for key, value, comment in cards:
            if key in _COMMENTARY:
                self.commentary(key, str(value))
            elif value is None:
                continue
            elif _structural(key.upper()):
                raise _Unsupported(f"structural keyword {key!r} among the cards")
            else:
                self.set(key, value, comment)

    def tobytes(self) -> bytes:
        """Return the header block(s): the cards, END, padded with blanks."""
        text = "".join(self.images) + f"{'END':80}"
        text += " " * (-len(text) % _BLOCK)
        return text.encode("ascii")


def _structural(key: str) -> bool:
    return key in _STRUCTURAL or any(
        key.startswith(p) and key[len(p) :].isdigit() for p in _STRUCTURAL_PREFIXES
    )


def _column_array(column: Any, code: str, repeat: int) -> tuple[np.ndarray, np.dtype]:
    """Return a column's values and their storage type, as astropy would store them."""
    if any(getattr(column, a, None) is not None for a in _UNSUPPORTED_COLUMN_ATTRIBUTES):
        raise _Unsupported(f"column {column.name!r} has scaling, nulls or dimensions")
    if column.array is None:
        raise _Unsupported(f"column {column.name!r} has no values")
    array = np.asarray(column.array)
    if array.dtype.kind not in _KINDS[code]:
        raise _Unsupported(f"column {column.name!r} of {array.dtype} as {code}")
    if code == "A":
        if array.ndim != 1:
            raise _Unsupported(f"column {column.name!r}: strings of several dimensions")
        try:  # astropy stores ASCII, NUL-padded and cut to the width
            return array.astype(f"S{repeat}"), np.dtype(f"S{repeat}")
        except UnicodeEncodeError as exc:
            raise _Unsupported(f"column {column.name!r}: non-ASCII text") from exc
    shape = (array.shape[0],) if repeat == 1 else (array.shape[0], repeat)
    if array.shape != shape:
        raise _Unsupported(f"column {column.name!r} of shape {array.shape} as {repeat}{code}")
    if code == "L":
        if array.dtype == bool:
            return np.where(array, ord("T"), ord("F")).astype("u1"), np.dtype("u1")
        # fits.Column keeps a logical column as its stored bytes (T, F, or 0 for null)
        return array.astype("u1"), np.dtype("u1")
    return array, np.dtype(_DTYPES[code])


def _table_rows(columns: Sequence[Any]) -> tuple[bytes, int, int, list[str]]:
    """Return a table's rows (big-endian, packed), its row width, row count and formats."""
    fields: list[tuple[str, np.dtype, tuple[int, ...]]] = []
    arrays = []
    formats = []
    for k, c in enumerate(columns):
        fmt = str(c.format)
        m = _FORMAT.match(fmt)
        if m is None:
            raise _Unsupported(f"column format {fmt!r}")
        repeat = int(m.group(1) or 1)
        if repeat < 1:
            raise _Unsupported(f"column format {fmt!r}")
        array, dtype = _column_array(c, m.group(2), repeat)
        shape = (repeat,) if repeat > 1 and m.group(2) != "A" else ()
        fields.append((f"f{k}", dtype, shape))
        arrays.append(array)
        formats.append(fmt)
    nrows = {len(a) for a in arrays}
    if len(nrows) > 1:
        raise _Unsupported("columns of different lengths")
    n = nrows.pop() if nrows else 0
    rows = np.zeros(n, dtype=np.dtype(fields))
    for (name, _, _), array in zip(fields, arrays, strict=True):
        rows[name] = array
    return rows.tobytes(), rows.dtype.itemsize, n, formats


def _checksum(data: bytes, start: int = 0) -> int:
    """Return the FITS ones'-complement 32-bit sum of ``data`` (a multiple of 4 bytes)."""
    total = start + int(np.frombuffer(data, dtype=">u4").sum(dtype=np.uint64))
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


_EXCLUDE = (0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60)


def _encode(value: int) -> str:
    """Return the 16-character ASCII encoding of a checksum (FITS checksum convention)."""
    chars = [0] * 16
    for i in range(4):
        byte = (value >> ((3 - i) * 8)) & 0xFF
        q, r = byte // 4 + ord("0"), byte % 4
        ch = [q + r, q, q, q]
        changed = True
        while changed:  # step out of the punctuation between digits and letters
            changed = False
            for x in _EXCLUDE:
                for j in (0, 2):
                    if ch[j] == x or ch[j + 1] == x:
                        ch[j] += 1
                        ch[j + 1] -= 1
                        changed = True
        for j in range(4):
            chars[4 * j + i] = ch[j]
    return "".join(chr(chars[(i + 15) % 16]) for i in range(16))


def _hdu(header: _Header, data: bytes, when: str) -> bytes:
    """Return one HDU's bytes with its DATASUM and CHECKSUM cards added as astropy adds them."""
    padded = data + b"\0" * (-len(data) % _BLOCK)
    datasum = _checksum(padded)
    header.set("DATASUM", str(datasum), f"data unit checksum updated {when}")
    at = header.keys.index("DATASUM")
    header.keys.insert(at, "CHECKSUM")
    header.values.insert(at, "0" * 16)
    header.images.insert(at, _image("CHECKSUM", "0" * 16, f"HDU checksum updated {when}"))
    total = _checksum(header.tobytes(), datasum)
    value = _encode(~total & 0xFFFFFFFF)
    header.values[at], header.images[at] = (
        value,
        _image("CHECKSUM", value, f"HDU checksum updated {when}"),
    )
    return header.tobytes() + padded


def _primary_header(cards: Iterable[Card], extra: Iterable[Card]) -> _Header:
    h = _Header()
    h.keys += ["SIMPLE", "BITPIX", "NAXIS", "EXTEND"]
    h.values += [True, 8, 0, True]
    h.images += [
        _image("SIMPLE", True, "conforms to FITS standard"),
        _image("BITPIX", 8, "array data type"),
        _image("NAXIS", 0, "number of array dimensions"),
        _image("EXTEND", True, ""),
    ]
    h.apply(cards)
    for key, value, comment in extra:
        h.set(key, value, comment)
    return h


def _table_hdu(block: Any, when: str) -> bytes:
    """Return a binary-table HDU's bytes (``TableBlock.to_hdu`` as astropy writes it)."""
    rows, width, n, formats = _table_rows(block.columns)
    h = _Header()
    for key, value, comment in (
        ("XTENSION", "BINTABLE", "binary table extension"),
        ("BITPIX", 8, "array data type"),
        ("NAXIS", 2, "number of array dimensions"),
        ("NAXIS1", width, "length of dimension 1"),
        ("NAXIS2", n, "length of dimension 2"),
        ("PCOUNT", 0, "number of group parameters"),
        ("GCOUNT", 1, "number of groups"),
        ("TFIELDS", len(formats), "number of table fields"),
    ):
        h.set(key, value, comment)
    for i, (c, fmt) in enumerate(zip(block.columns, formats, strict=True), start=1):
        h.set(f"TTYPE{i}", str(c.name), block.descriptions.get(c.name, ""))
        h.set(f"TFORM{i}", fmt, "")
        if c.unit:
            h.set(f"TUNIT{i}", str(c.unit), "")
    if not block.extname:
        raise _Unsupported("a table without a name")
    h.set("EXTNAME", block.extname, "extension name")
    h.apply(block.cards)
    return _hdu(h, rows, when)


def fits_bytes(
    model: Any, extra_primary: Sequence[Card] = (), when: str | None = None
) -> bytes | None:
    """Return the file ``model.to_fits()`` with ``extra_primary`` cards writes, or None.

    Parameters
    ----------
    model : FitsModel
        The content: a primary block without data, then binary tables.
    extra_primary
        Cards set on the primary header after the model's own (provenance).
    when
        The time written in the checksum comments (default: now, local, to the second,
        as astropy writes it).

    Returns
    -------
    bytes or None
        The file, byte-identical to ``HDUList.writeto(path, checksum=True)`` of the HDUs
        built by astropy; None when the content needs astropy (see the module notes).
    """
    when = when or datetime.datetime.now().isoformat()[:19]
    try:
        if model.primary.data is not None:
            raise _Unsupported("a primary image")
        parts = [_hdu(_primary_header(model.primary.cards, extra_primary), b"", when)]
        for block in model.extensions:
            if not hasattr(block, "columns"):  # an ImageBlock (models imports this module)
                raise _Unsupported("an image extension")
            parts.append(_table_hdu(block, when))
    except _Unsupported:
        return None
    return b"".join(parts)
