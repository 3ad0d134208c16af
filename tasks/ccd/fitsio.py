"""Locating the image of a frame file: plain, gzip'd (``.fits.gz``) or fpack'd (``.fits.fz``).

A camera writes its image in the primary HDU; fpack moves it into a tile-compressed
``CompImageHDU`` after an empty primary, and some archives put the image in an extension
with part of the keywords in the primary. Readers of raw and reference frames therefore take
the *first HDU holding an image*, with a header merged from the primary and that HDU: the
result looks like the primary header of the uncompressed file (``SIMPLE``, ``BITPIX``,
``NAXISn`` of the image, then the keywords), without the compression cards (``ZIMAGE``,
``ZBITPIX``...), the extension cards (``XTENSION``, ``EXTNAME``...) or the input's
``CHECKSUM``/``DATASUM``, so none of them is copied into a product.

Compressed HDUs cannot be memory-mapped: :func:`read_image` decompresses one whole frame,
and row-chunk readers slice ``hdu.section``, which decompresses only the tiles it touches.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from svomflow.errors import InputDataError

__all__ = [
    "FRAME_PATTERNS",
    "READ_ERRORS",
    "image_header",
    "image_index",
    "open_image",
    "read_image",
    "read_image_header",
]

#: File-name patterns of frame files (plain, gzip'd and fpack'd).
FRAME_PATTERNS = ("*.fits", "*.fit", "*.fts", "*.fits.fz", "*.fits.gz")


def _decompression_error() -> type[Exception]:
    """Return the (private) exception astropy's tile decompression raises on a corrupt tile.

    Its module moved between astropy versions; were neither found, a corrupt tile would
    raise astropy's own exception, not wrapped in :class:`InputDataError`.
    """
    import importlib

    for mod in (
        "astropy.io.fits.hdu.compressed._compression",  # current layout (astropy 8)
        "astropy.io.fits._tiled_compression._compression",  # earlier layout
    ):
        try:
            return importlib.import_module(mod).CfitsioException
        except (ImportError, AttributeError):
            continue
    return OSError  # pragma: no cover - already in READ_ERRORS, so nothing is added


#: Exceptions astropy raises on unreadable, truncated or corrupt files and tiles.
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    _decompression_error(),
)

# Cards that describe an HDU's layout or bytes rather than the observation.
_LAYOUT = re.compile(
    r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|GROUPS|EXTNAME|EXTVER|EXTLEVEL"
    r"|INHERIT|CHECKSUM|DATASUM|END)$"
)
# Tile-compression cards (FITS standard 4.0, section 10), should an astropy version show them.
_COMPRESSION = re.compile(
    r"^(ZIMAGE|ZSIMPLE|ZEXTEND|ZBLOCKED|ZTENSION|ZBITPIX|ZNAXIS\d*|ZTILE\d+|ZCMPTYPE|ZNAME\d+"
    r"|ZVAL\d+|ZMASKCMP|ZQUANTIZ|ZDITHER0|ZPCOUNT|ZGCOUNT|ZHECKSUM|ZDATASUM|ZBLANK|ZSCALE|ZZERO)$"
)
# Pixel-scaling cards belong to the image HDU only (an empty primary has no pixels to scale).
_SCALING = {"BSCALE", "BZERO", "BLANK"}

# Warnings astropy gives for a cut or damaged file before it fails (or reads garbage).
_DAMAGE = ("File may have been truncated", "Error validating header")


@contextmanager
def _damage_is_error() -> Iterator[None]:
    """Turn astropy's truncation and bad-header warnings into exceptions inside the block."""
    with warnings.catch_warnings():
        for msg in _DAMAGE:
            warnings.filterwarnings("error", message=msg, category=AstropyUserWarning)
        yield


def image_index(hdul: fits.HDUList) -> int | None:
    """Return the index of the first HDU holding a non-empty image, or None.

    Only headers are read: a compressed HDU is not decompressed here.
    """
    for i, hdu in enumerate(hdul):
        if not getattr(hdu, "is_image", False) or isinstance(hdu, fits.GroupsHDU):
            continue
        h = hdu.header
        naxis = int(h.get("NAXIS", 0))
        if naxis > 0 and all(int(h.get(f"NAXIS{k}", 0)) > 0 for k in range(1, naxis + 1)):
            return i
    return None


def image_header(hdul: fits.HDUList, index: int) -> fits.Header:
    """Return the header of image HDU ``index`` merged with the primary keywords.

    The layout cards come from the image HDU (as astropy shows it, i.e. the uncompressed
    image), then the primary's keywords, then the image HDU's, which win on a conflict.
    Layout, checksum and compression cards of either HDU are left out.
    """
    img = hdul[index].header
    out = fits.Header()
    out["SIMPLE"] = (True, "conforms to FITS standard")
    out["BITPIX"] = img["BITPIX"]
    out["NAXIS"] = img["NAXIS"]
    for k in range(1, int(img["NAXIS"]) + 1):
        out[f"NAXIS{k}"] = img[f"NAXIS{k}"]
    sources = [hdul[0].header, img] if index > 0 else [img]
    for src_i, src in enumerate(sources):
        last = src_i == len(sources) - 1
        for card in src.cards:
            key = card.keyword
            if _LAYOUT.match(key) or _COMPRESSION.match(key):
                continue
            if key in _SCALING and not last:
                continue
            if key in ("COMMENT", "HISTORY", "") or key not in out:
                out.append(fits.Card.fromstring(card.image))  # keeps HIERARCH, long strings
            else:
                out[key] = (card.value, card.comment)
    return out


def open_image(
    path: str | Path, *, memmap: bool = False, scaled: bool = True
) -> tuple[fits.HDUList, int]:
    """Open a frame file and return the open HDU list and the index of its image HDU.

    The caller closes the list. ``scaled=False`` leaves BSCALE/BZERO unapplied (raw
    integers), as chunk readers that scale in float32 themselves want.

    Raises
    ------
    InputDataError
        If the file is missing, not FITS, truncated, or holds no image.
    """
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"{p}: no such file")
    try:
        with _damage_is_error():
            hdul = fits.open(p, memmap=memmap, do_not_scale_image_data=not scaled)
            try:
                index = image_index(hdul)
            except BaseException:
                hdul.close()
                raise
    except (*READ_ERRORS, AstropyUserWarning) as exc:
        raise InputDataError(f"{p}: not a readable FITS file ({exc})") from None
    if index is None:
        hdul.close()
        raise InputDataError(f"{p}: no HDU holds an image")
    return hdul, index


def read_image_header(path: str | Path) -> fits.Header:
    """Read the merged header of a frame's image HDU (no pixel data is read).

    Raises
    ------
    InputDataError
        As :func:`open_image`.
    """
    hdul, index = open_image(path, memmap=True)
    with hdul:
        return image_header(hdul, index)


def read_image(path: str | Path) -> tuple[np.ndarray, fits.Header]:
    """Read a frame's image (BSCALE/BZERO applied, e.g. ``uint16``) and merged header.

    A compressed image is decompressed whole, one frame in memory at a time.

    Raises
    ------
    InputDataError
        As :func:`open_image`, or when the pixels cannot be read or decompressed.
    """
    p = Path(path)
    hdul, index = open_image(p, memmap=False)
    with hdul:
        header = image_header(hdul, index)
        try:
            with _damage_is_error():
                data = np.array(hdul[index].data)
        except (*READ_ERRORS, AstropyUserWarning) as exc:
            raise InputDataError(f"{p}: cannot read the image ({exc})") from None
    return data, header
