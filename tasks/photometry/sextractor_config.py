"""SExtractor configuration files (``default.sex``, ``*.conv``) as extraction settings.

SExtractor reads ``default.sex`` from its working directory; a user who made a catalogue
with it keeps that file next to the images. :func:`extract_config_from_sextractor` applies
such a file over an :class:`~svomflow.tasks.photometry.extract.ExtractConfig`, so that
findstars repeats that SExtractor run. Only the options that change detection and
measurement are read (table below); the others (catalogue name, check images, memory,
star/galaxy network) do not apply and are ignored.

=================  ========================================
SExtractor option  ExtractConfig field
=================  ========================================
DETECT_THRESH      ``detect_thresh`` (sigma form only)
DETECT_MINAREA     ``detect_minarea``
FILTER             ``filter``
FILTER_NAME        ``filter_kernel`` (the ``.conv`` file)
DEBLEND_NTHRESH    ``deblend_nthresh``
DEBLEND_MINCONT    ``deblend_mincont``
CLEAN              ``clean``
CLEAN_PARAM        ``clean_param``
BACK_SIZE          ``back_size`` (first value)
BACK_FILTERSIZE    ``back_filtersize`` (first value)
WEIGHT_TYPE        ``global_rms`` (``NONE``: global rms)
PHOT_APERTURES     ``phot_apertures``
PHOT_AUTOPARAMS    ``kron_factor``, ``kron_min_radius``
MAG_ZEROPOINT      ``mag_zeropoint``
=================  ========================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from svomflow.errors import InputDataError
from svomflow.tasks.photometry.extract import ExtractConfig

__all__ = ["extract_config_from_sextractor", "read_conv_file", "read_sextractor_file"]


def read_sextractor_file(path: str | Path) -> dict[str, list[str]]:
    """Return the options of a SExtractor configuration file (name -> its values).

    Comments (``#`` to the end of the line) and blank lines are skipped; values are split
    on blanks and commas.

    Raises
    ------
    InputDataError
        When the file cannot be read.
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise InputDataError(f"cannot read SExtractor configuration {path}: {exc}") from None
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].replace(",", " ").split()
        if words:
            out[words[0].upper()] = words[1:]
    return out


def read_conv_file(path: str | Path) -> list[list[float]]:
    """Return the kernel of a SExtractor ``.conv`` filter file (``CONV NORM`` or ``NONORM``).

    Raises
    ------
    InputDataError
        When the file cannot be read or its rows are not a rectangle of numbers.
    """
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        raise InputDataError(f"cannot read filter file {path}: {exc}") from None
    rows: list[list[float]] = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text or text.upper().startswith("CONV"):
            continue
        try:
            rows.append([float(v) for v in text.split()])
        except ValueError:
            raise InputDataError(f"{path}: filter row {text!r} is not numbers") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise InputDataError(f"{path}: the filter is not a rectangle of numbers")
    return rows


def _num(values: list[str], cast: type = float) -> Any:
    return cast(float(values[0])) if cast is int else cast(values[0])


def _flag(values: list[str]) -> bool:
    return values[0].upper().startswith("Y")


def extract_config_from_sextractor(base: ExtractConfig, path: str | Path) -> ExtractConfig:
    """Return ``base`` with the options of a SExtractor configuration file applied.

    ``FILTER_NAME`` is read relative to the configuration file. A detection threshold given
    as a surface brightness (``<mag>,<ZP>``) is not supported and is left at ``base``'s.

    Raises
    ------
    InputDataError
        When the file or its filter cannot be read, or a value is not a number.
    """
    opts = read_sextractor_file(path)
    upd: dict[str, Any] = {}
    try:
        scalars: dict[str, tuple[str, Any]] = {
            "DETECT_MINAREA": ("detect_minarea", lambda v: _num(v, int)),
            "FILTER": ("filter", _flag),
            "DEBLEND_NTHRESH": ("deblend_nthresh", lambda v: _num(v, int)),
            "DEBLEND_MINCONT": ("deblend_mincont", _num),
            "CLEAN": ("clean", _flag),
            "CLEAN_PARAM": ("clean_param", _num),
            "BACK_SIZE": ("back_size", lambda v: _num(v, int)),
            "BACK_FILTERSIZE": ("back_filtersize", lambda v: _num(v, int)),
            "MAG_ZEROPOINT": ("mag_zeropoint", _num),
            "PHOT_APERTURES": ("phot_apertures", lambda v: [float(x) for x in v]),
        }
        for key, (field, conv) in scalars.items():
            if opts.get(key):
                upd[field] = conv(opts[key])
        thresh = opts.get("DETECT_THRESH", [])
        if len(thresh) == 1:
            upd["detect_thresh"] = float(thresh[0])
        auto = opts.get("PHOT_AUTOPARAMS", [])
        if len(auto) >= 2:
            upd["kron_factor"], upd["kron_min_radius"] = float(auto[0]), float(auto[1])
    except ValueError as exc:
        raise InputDataError(f"{path}: a value is not a number ({exc})") from None
    if opts.get("WEIGHT_TYPE"):
        upd["global_rms"] = opts["WEIGHT_TYPE"][0].upper() == "NONE"
    if opts.get("FILTER_NAME") and upd.get("filter", base.filter):
        conv_path = Path(path).parent / opts["FILTER_NAME"][0]
        upd["filter_kernel"] = read_conv_file(conv_path)
    merged = {**base.model_dump(), **upd}
    kernel = merged.get("filter_kernel")
    if kernel is not None and not np.all(np.isfinite(np.asarray(kernel, float))):
        raise InputDataError(f"{path}: the filter kernel has non-finite values")
    return ExtractConfig.model_validate(merged)
