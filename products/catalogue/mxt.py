"""Product types of the MXT pipeline: events, sources, responses, per-source LC and spectra.

Per-source products carry the source in their instrument code, ``MXT-S01``, as the GRM
detectors' do (``GRM-GRD01``): ``ARF_MXT-S01``, ``PHA_MXT-S01``, ``LC_MXT-S01``,
``LC-PREVIEW_MXT-S01``. PHA, LC and LC-PREVIEW are declared with the other pipelines' in
:mod:`~svomflow.products.catalogue.common`.
"""

from __future__ import annotations

import re

from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.products.catalogue.models import FigureModel, FitsModel
from svomflow.products.catalogue.registry import declare
from svomflow.products.catalogue.types import Keyword

__all__ = ["source_code", "source_index"]

_SOURCE = re.compile(r"^(?P<inst>[A-Z0-9]+)-S(?P<index>\d+)$")


def source_code(index: int) -> str:
    """Return the instrument code of MXT source ``index`` (1-based): ``MXT-S01``."""
    if index < 1:
        raise ValueError(f"MXT source numbers start at 1, not {index}")
    return f"{instrument_code('mxt')}-S{index:02d}"


def source_index(code: str) -> int | None:
    """Return the source number of a per-source instrument code (``MXT-S03`` -> 3), else None."""
    m = _SOURCE.match(code)
    return int(m["index"]) if m is not None and m["inst"] == instrument_code("mxt") else None


_MXT = ("MXT",)

declare(
    "EVT",
    "MXT calibrated X-ray events (energy, PI, pattern) with GTIs and the gaps labelled by cause",
    instruments=_MXT,
    model=FitsModel,
    keywords=(
        Keyword("HDUCLAS1", "event list", "EVENTS", hdu="EVENTS"),
        Keyword("NEVENTS", "calibrated X-ray events", hdu="EVENTS"),
        Keyword("NINVPAT", "events dropped: invalid pattern", hdu="EVENTS"),
        Keyword("RA_PNT", "[deg] pointing RA", hdu="EVENTS"),
        Keyword("DEC_PNT", "[deg] pointing Dec", hdu="EVENTS"),
        Keyword("PA_PNT", "[deg] roll (PA of +Z)", hdu="EVENTS"),
    ),
    extensions=("EVENTS", "GTI", "GAPS"),
)

declare(
    "SRCLIST",
    "MXT source list: RA/Dec with the 90 % error radius, counts, rates and detection likelihood",
    instruments=_MXT,
    model=FitsModel,
    keywords=(
        Keyword("EXPOSURE", "[s] GTI exposure", hdu="SRCLIST"),
        Keyword("MLTHRESH", "detection likelihood threshold", hdu="SRCLIST"),
        Keyword("NCAND", "stage-1 candidates", hdu="SRCLIST"),
        Keyword("PSFCALIB", "PSF shape fitted on the field's bright sources", hdu="SRCLIST"),
        Keyword("PSFCFWHM", "[arcmin] core FWHM of the PSF used", hdu="SRCLIST"),
        Keyword("PSFARMLN", "[arcmin] arm length of the PSF used", hdu="SRCLIST"),
        Keyword("NARMSRC", "sources explained by a brighter source's arm", hdu="SRCLIST"),
    ),
    extensions=("SRCLIST",),
)

declare(
    "RMF",
    "MXT redistribution matrix (Gaussian CCD resolution onto the PI channels)",
    instruments=_MXT,
    model=FitsModel,
    keywords=(
        Keyword("HDUCLAS1", "response dataset", "RESPONSE", hdu="MATRIX"),
        Keyword("HDUCLAS2", "redistribution matrix", "RSP_MATRIX", hdu="MATRIX"),
    ),
    extensions=("MATRIX", "EBOUNDS"),
)

declare(
    "QIMG",
    "Preview: MXT counts image with every source's 90 % error circle",
    instruments=_MXT,
    model=FigureModel,
)

declare(
    "ARF",
    "Ancillary response of an MXT source: effective area x PSF fraction in its circle",
    instruments=("MXT-S*",),
    model=FitsModel,
    keywords=(
        Keyword("HDUCLAS2", "effective area", "SPECRESP", hdu="SPECRESP"),
        Keyword("PSFFRAC", "PSF fraction in the extraction circle", hdu="SPECRESP"),
    ),
    extensions=("SPECRESP",),
)
