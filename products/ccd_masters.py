"""Master calibration frames of a CCD camera (BIAS, DARK, FLAT): the data object and its file.

:class:`MasterFrame` is what the nightly masters pipeline builds and what a reduction uses;
:func:`read_master` is the CALDB loader of the ``BIAS``, ``DARK`` and ``FLAT`` code names
(:mod:`svomflow.calibration.codes`). The file holds a primary header describing the master
and three images: ``SCI`` (values), ``ERR`` (1-sigma errors) and ``NFRAMES`` (frames kept per
pixel after clipping).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.products.ogip import write_hdulist

__all__ = ["MasterFrame", "read_master", "set_card"]

_COMMENTS = {
    "OBSTYPE": "master calibration type",
    "INSTRUME": "camera",
    "FILTER": "filter",
    "BINNING": "binning x by y",
    "CCDTEMP": "[deg C] mean CCD temperature of the inputs",
    "EXPTIME": "[s] exposure time of the inputs (darks, flats)",
    "NCOMBINE": "number of frames combined",
    "DATE-OBS": "UTC start of the first input frame",
    "DATE-END": "UTC start of the last input frame",
    "BUNIT": "unit of the SCI extension",
    "FRMNOISE": "[adu] median single-frame noise measured",
    "RDNOISE": "[adu] read noise used for the error map",
    "GAIN": "[e-/adu] gain",
    "CLIPSIG": "sigma-clipping threshold",
    "COMBMETH": "combination statistic",
    "MEDLEVEL": "median of the master",
    "MEDSCALE": "median scale of the inputs (flats: level in adu)",
}


@dataclass
class MasterFrame:
    """A master calibration frame with its error and per-pixel frame count.

    Attributes
    ----------
    kind
        ``BIAS``, ``DARK`` or ``FLAT`` (the CALDB code name).
    data, error
        Master values and 1-sigma errors (float32).
    count
        Frames kept per pixel after clipping (int16).
    meta
        Header keywords: camera, filter, temperature, exposure, number of frames, measured
        frame noise, dates.
    frames
        Per-input-frame statistics (file, level, noise, saturated fraction, scale).
    """

    kind: str
    data: np.ndarray
    error: np.ndarray
    count: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    frames: list[dict[str, Any]] = field(default_factory=list)

    def header_cards(self) -> list[tuple[str, Any, str]]:
        """Return the primary-header cards describing this master."""
        return [(k, v, _COMMENTS.get(k, "")) for k, v in self.meta.items() if v is not None]

    def hdus(self, *, extra: Sequence[tuple[str, Any, str]] = ()) -> list[Any]:
        """Return the HDUs of the master file (primary header, SCI, ERR, NFRAMES)."""
        prim = fits.PrimaryHDU()
        for k, v, c in [*self.header_cards(), *extra]:
            set_card(prim.header, k, v, c)
        for i, fr in enumerate(self.frames):
            prim.header[f"INPUT{i + 1:03d}"] = Path(fr["file"]).name[:68]
        sci = fits.ImageHDU(self.data.astype(np.float32), name="SCI")
        err = fits.ImageHDU(self.error.astype(np.float32), name="ERR")
        cnt = fits.ImageHDU(self.count.astype(np.int16), name="NFRAMES")
        return [prim, sci, err, cnt]

    def write(self, path: str | Path, *, extra: Sequence[tuple[str, Any, str]] = ()) -> Path:
        """Write the master as FITS atomically (tests, notebooks; flows publish products)."""
        return write_hdulist(self.hdus(extra=extra), path)


def set_card(header: fits.Header, key: str, value: Any, comment: str) -> None:
    """Set a card, shortening its comment so that it fits in 80 characters."""
    room = 80 - 8 - 2 - max(20, len(str(value)) + 2) - 3
    header[key] = (value, comment[: max(room, 0)])


_STRUCT = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "CHECKSUM", "DATASUM", "COMMENT", "HISTORY"}

# Several images of a night select the same master file: read it once. The key holds the
# file's size and modification time, so a replaced file is read again; masters are shared
# read-only (a reduction never writes into its masters).
_CACHE: OrderedDict[tuple[str, int, int], MasterFrame] = OrderedDict()
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()


def read_master(path: str | Path) -> MasterFrame:
    """Read a master written by :meth:`MasterFrame.write` (the BIAS/DARK/FLAT loader).

    Raises
    ------
    InputDataError
        When the file is missing or is not a master calibration file.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise InputDataError(f"{p}: not a master calibration file ({exc})") from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    master = _read(p)
    with _CACHE_LOCK:
        _CACHE[key] = master
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return master


def _read(p: Path) -> MasterFrame:
    try:
        with fits.open(p) as hdul:
            h = hdul[0].header
            data = np.asarray(hdul["SCI"].data, dtype=np.float32)
            err = np.asarray(hdul["ERR"].data, dtype=np.float32)
            cnt = np.asarray(hdul["NFRAMES"].data, dtype=np.int16)
            meta = {k: h[k] for k in h if k and not k.startswith("INPUT") and k not in _STRUCT}
    except (OSError, KeyError, ValueError) as exc:
        raise InputDataError(f"{p}: not a master calibration file ({exc})") from None
    return MasterFrame(str(meta.get("OBSTYPE", "")), data, err, cnt, meta)
