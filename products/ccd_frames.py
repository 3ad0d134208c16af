"""Raw CCD frames as data: locate the image (plain, gzip'd or fpack'd), read headers and pixels.

A camera writes its image in the primary HDU; fpack moves it into a tile-compressed
``CompImageHDU`` after an empty primary, and some archives put the image in an extension
with part of the keywords in the primary. Readers of raw and reference frames therefore take
the *first HDU holding an image*, with a header merged from the primary and that HDU: the
result looks like the primary header of the uncompressed file (``SIMPLE``, ``BITPIX``,
``NAXISn`` of the image, then the keywords), without the compression cards (``ZIMAGE``,
``ZBITPIX``...), the extension cards (``XTENSION``, ``EXTNAME``...) or the input's
``CHECKSUM``/``DATASUM``, so none of them is copied into a product.

Compressed HDUs cannot be memory-mapped: :func:`read_image` decompresses one whole frame,
and :class:`FrameStack` row reads slice ``hdu.section``, which decompresses only the tiles
they touch. The header values a pipeline needs (:class:`RawFrameInfo`) come from the camera
definition's keyword table (:class:`~svomflow.instruments.ccd_camera.CameraModel`).
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.ogip import check_fits_sizes, reading_file

__all__ = [
    "FRAME_PATTERNS",
    "READ_ERRORS",
    "FrameStack",
    "HeaderFixWarning",
    "RawFrameInfo",
    "image_header",
    "image_index",
    "observation_start",
    "open_image",
    "parse_date_obs",
    "read_frame_info",
    "read_image",
    "read_image_header",
    "read_raw",
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
# astropy's complaint about each card it cannot parse: image_header says it once per header.
_CARD_COMPLAINT = "The following header keyword is invalid"


@contextmanager
def _damage_is_error() -> Iterator[None]:
    """Turn astropy's truncation and bad-header warnings into exceptions inside the block."""
    with warnings.catch_warnings():
        for msg in _DAMAGE:
            warnings.filterwarnings("error", message=msg, category=AstropyUserWarning)
        warnings.filterwarnings("ignore", message=_CARD_COMPLAINT, category=AstropyUserWarning)
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
    fixed: list[str] = []
    with warnings.catch_warnings():
        # astropy's own per-card complaint is replaced by one warning for the header
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        warnings.filterwarnings("ignore", message=_CARD_COMPLAINT, category=AstropyUserWarning)
        _copy_cards(sources, out, fixed)
    if fixed:
        warnings.warn(
            f"{len(fixed)} header card(s) not valid FITS value cards kept as COMMENT "
            f"({', '.join(sorted(set(fixed)))})",
            HeaderFixWarning,
            stacklevel=2,
        )
    return out


def _copy_cards(sources: list[fits.Header], out: fits.Header, fixed: list[str]) -> None:
    """Append the cards of ``sources`` to ``out`` (later ones win); list the fixed ones."""
    for src_i, src in enumerate(sources):
        last = src_i == len(sources) - 1
        for card in src.cards:
            key = card.keyword
            if _LAYOUT.match(key) or _COMPRESSION.match(key):
                continue
            if key in _SCALING and not last:
                continue
            copy = _valid_copy(card)
            if copy is None:
                fixed.append(key)
                # the text is kept, as a comment; a flipped byte may make it non-printable,
                # which astropy refuses even in a COMMENT
                out.append(("COMMENT", _printable(_card_text(card).rstrip())))
            elif key in ("COMMENT", "HISTORY", "") or key not in out:
                out.append(copy)  # keeps HIERARCH, long strings
            else:
                out[key] = (copy.value, copy.comment)


def _card_text(card: fits.Card) -> str:
    """Return the 80 characters of a card as read, even when astropy cannot fix them.

    ``Card.image`` re-verifies the card, and its "fix" raises ValueError on a non-printable
    character; the text as read is then astropy's private ``_image``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return str(card.image)
        except ValueError:
            return str(getattr(card, "_image", None) or card.keyword)


def _printable(text: str) -> str:
    """Return ``text`` with every character outside printable ASCII replaced by ``?``."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


class HeaderFixWarning(UserWarning):
    """A header card of an input file could not be copied as it was and was kept as text."""


def _valid_copy(card: fits.Card) -> fits.Card | None:
    """Return a copy of ``card`` whose value and comment parse, or None.

    A keyword without ``= `` in columns 9-10 (legal FITS "commentary" text such as ESO's
    ``ESO-LOG 03:04:08> ...``) or a value astropy cannot parse makes a card whose value
    cannot be set or re-read; such cards are returned as None for the caller to keep as
    COMMENT text.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            copy = fits.Card.fromstring(_card_text(card))
            _ = copy.value, copy.comment
            if getattr(copy, "_invalid", False):  # astropy flags unparsable cards so
                return None
            copy.verify("exception")
        except (ValueError, fits.VerifyError):
            return None
    return copy


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
    check_fits_sizes(p)  # a negative NAXISn sends astropy round the same header for ever
    try:
        with _damage_is_error():
            # astropy's warnings while it opens are raised only once the list exists, so
            # that a damaged file is closed (an exception inside fits.open leaks its handle)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AstropyUserWarning)
                hdul = fits.open(p, memmap=memmap, do_not_scale_image_data=not scaled)
            try:
                for w in caught:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
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
    with reading_file(path), hdul:  # a damaged header card is the file's fault, one line
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


# DATE-OBS as FITS wrote it before 1997 (FITS standard 4.0, section 9.1.1): DD/MM/YY, 19YY.
_OLD_FITS_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{2})$")
# Keywords that hold the start time of day when DATE-OBS holds the date only.
TIME_KEYWORDS = ("TIME-OBS", "UTSTART", "UT-START", "UT")


def parse_date_obs(value: object, *, path: str | Path = "") -> _dt.datetime:
    """Parse a FITS DATE-OBS value: ISO 8601, or the pre-1997 ``DD/MM/YY`` form (19YY).

    UTC is assumed when no zone is given; a date without a time is midnight.

    Raises
    ------
    InputDataError
        When the value is neither form.
    """
    text = str(value).strip()
    old = _OLD_FITS_DATE.match(text)
    if old:
        day, month, year = (int(g) for g in old.groups())
        text = f"{1900 + year:04d}-{month:02d}-{day:02d}"
    try:
        t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputDataError(
            f"{path}: DATE-OBS {text!r} is not an ISO date-time (nor DD/MM/YY)"
        ) from None
    return t.replace(tzinfo=_dt.UTC) if t.tzinfo is None else t.astimezone(_dt.UTC)


def observation_start(header: fits.Header, keyword: str = "DATE-OBS") -> _dt.datetime | None:
    """Return the start of the exposure from a header, or None when it does not say.

    ``keyword`` in any form :func:`parse_date_obs` reads; when it holds a date only, the
    time of day from ``TIME-OBS``, ``UTSTART``, ``UT-START`` or ``UT`` (``hh:mm:ss[.s]``);
    without a usable ``keyword``, ``MJD-OBS``.
    """
    if keyword in header:
        try:
            t = parse_date_obs(header[keyword])
        except InputDataError:
            t = None
        if t is not None and "T" not in str(header[keyword]):
            for key in TIME_KEYWORDS:
                clock = _clock(header.get(key))
                if clock is not None:
                    return t + clock
        if t is not None:
            return t
    mjd = header.get("MJD-OBS")
    if isinstance(mjd, int | float) and not isinstance(mjd, bool) and np.isfinite(mjd):
        epoch = _dt.datetime(1858, 11, 17, tzinfo=_dt.UTC)
        return epoch + _dt.timedelta(days=float(mjd))
    return None


def _clock(value: object) -> _dt.timedelta | None:
    """Return ``hh:mm:ss[.s]`` as a time of day, or None when it is not one."""
    m = re.match(r"^\s*(\d{1,2}):(\d{2}):(\d{2}(?:\.\d*)?)\s*$", str(value or ""))
    if not m:
        return None
    h, mi, sec = int(m.group(1)), int(m.group(2)), float(m.group(3))
    if h > 23 or mi > 59 or sec >= 61:
        return None
    return _dt.timedelta(hours=h, minutes=mi, seconds=sec)


@dataclass(frozen=True)
class RawFrameInfo:
    """Header values of one raw frame that grouping, validation and reduction need."""

    path: Path
    exposure_type: str
    camera: str
    filter: str
    exptime: float
    temperature: float
    binning: str
    date_obs: _dt.datetime
    observer: str
    shape: tuple[int, int]

    @property
    def mjd(self) -> float:
        """Modified Julian date (UTC) of the start of the exposure."""
        epoch = _dt.datetime(1858, 11, 17, tzinfo=_dt.UTC)
        return (self.date_obs - epoch).total_seconds() / 86400.0


def read_frame_info(path: str | Path, camera: CameraModel) -> RawFrameInfo:
    """Read the header values of a raw frame (no pixel data; a ``.fz`` is not decompressed).

    Raises
    ------
    InputDataError
        If the file is not a readable FITS image or a required keyword is missing.
    """
    p = Path(path)
    h = read_image_header(p)
    naxis = (int(h.get("NAXIS2", 0)), int(h.get("NAXIS1", 0)))
    if int(h["NAXIS"]) != 2:
        raise InputDataError(f"{p}: the image has {h['NAXIS']} axes, not 2")

    def val(name: str, default: object = ...) -> object:
        try:
            return camera.header_value(h, name, default)
        except InputDataError as exc:
            raise InputDataError(f"{p}: {exc}") from None

    try:
        exptime = float(val("exposure_time"))  # type: ignore[arg-type]
        temp = float(val("temperature", np.nan))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputDataError(f"{p}: exposure time or temperature is not a number") from None
    if not np.isfinite(exptime) or exptime < 0:
        raise InputDataError(f"{p}: exposure time must be finite and not negative (got {exptime})")
    bx = val("binning_x", 1)
    by = val("binning_y", 1)
    return RawFrameInfo(
        path=p,
        exposure_type=str(val("exposure_type")).strip().lower(),
        camera=str(val("camera")).strip(),
        filter=str(val("filter", "NONE")).strip() or "NONE",
        exptime=exptime,
        temperature=temp,
        binning=f"{bx}x{by}",
        date_obs=parse_date_obs(val("date_obs"), path=p),
        observer=str(val("observer", "")).strip(),
        shape=naxis,
    )


def read_raw(path: str | Path, camera: CameraModel) -> tuple[np.ndarray, fits.Header]:
    """Read a raw frame's pixels (as stored, usually uint16) and merged header.

    Raises
    ------
    InputDataError
        If the file is unreadable or truncated, or its width leaves no overscan strip.
    """
    p = Path(path)
    data, header = read_image(p)
    if data.ndim != 2 or data.shape[1] <= camera.overscan_columns:
        raise InputDataError(
            f"{p}: image of shape {data.shape} has no room for the "
            f"{camera.overscan_columns} overscan columns of {camera.name}"
        )
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise InputDataError(
            f"{p}: {bad} raw pixel(s) are NaN or infinite (a raw frame holds counts)"
        )
    return data, header


class FrameStack:
    """The raw frames of one master, read on demand: whole frames or row chunks.

    A master combines tens of full frames; holding them all would need tens of GB for a
    large camera. This data object keeps only the header values and opens the files when
    a builder asks for a frame (:meth:`frame`) or a block of rows (:meth:`rows`, inside
    :meth:`open`), so memory stays one frame plus one chunk per frame, and a builder run on
    a Dask worker reads its frames there instead of receiving them through the scheduler.

    Parameters
    ----------
    infos
        Header values of the frames (:func:`read_frame_info`), in combination order.
    """

    def __init__(self, infos: Sequence[RawFrameInfo]) -> None:
        self.infos = list(infos)
        self._open: list[tuple[fits.HDUList, int, tuple[float, float]]] = []

    def __len__(self) -> int:
        return len(self.infos)

    def frame(self, i: int, camera: CameraModel) -> np.ndarray:
        """Return frame ``i``'s pixels as stored (see :func:`read_raw`)."""
        return read_raw(self.infos[i].path, camera)[0]

    @contextmanager
    def open(self) -> Iterator[FrameStack]:
        """Keep every frame open (memory-mapped, unscaled) for :meth:`rows` inside the block."""
        try:
            for info in self.infos:
                hdul, index = open_image(info.path, memmap=True, scaled=False)
                h = hdul[index].header
                scaling = (float(h.get("BSCALE", 1.0)), float(h.get("BZERO", 0.0)))
                self._open.append((hdul, index, scaling))
            yield self
        finally:
            for hdul, _, _ in self._open:
                hdul.close()
            self._open = []

    def rows(self, i: int, rows: slice, cols: slice) -> np.ndarray:
        """Return rows ``rows`` (columns ``cols``) of frame ``i`` in float32, scaled.

        Only those rows are read; for an fpack'd frame only the tiles holding them are
        decompressed. BZERO/BSCALE are applied here, in float32.

        Raises
        ------
        InputDataError
            When the rows cannot be read (naming the file).
        """
        hdul, index, (bscale, bzero) = self._open[i]
        try:
            block = np.asarray(hdul[index].section[rows, cols])
        except READ_ERRORS as exc:
            raise InputDataError(f"{self.infos[i].path}: cannot read rows ({exc})") from None
        img = block.astype(np.float32)
        if bscale != 1.0:
            img *= np.float32(bscale)
        if bzero != 0.0:
            img += np.float32(bzero)
        return img
