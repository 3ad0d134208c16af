"""Product types of the VHF quick analysis (``vhf_quick_analysis``), declared once.

Per instrument: the trigger time (TT), confidence levels (QCL), the quick position (QPO),
the on-board-like and quick light curves (OBLC, QLC), the peak flux (QPF), T90/T50 (QT90)
and the hardness ratio (QHR); for an instrument with a response model, the response of each
detector for the burst direction (RSP, declared in ``common.py``: the X-band analysis makes it
too) and the quick spectrum (QSP); for the burst, the
cross-instrument hardness ratio (QHR with the joint code), the crude class (CRCLASS) and an
HTML summary of all of it (QSUM).
The two figures keep their own type codes: QLCPLOT marks T90, T50 and the peak window
(numbers of QT90 and QPF) on the light curves of QLC, and QPOPLOT images the events of the
burst interval around the position of QPO, so neither is drawn from one product's data.

Instrument codes in product names are the mission's short codes (``TT_ECL``, ``QLC_GRM``,
``QHR_ECLGRM``); an instrument without one (a foreign mission's files, e.g. Fermi GBM TTE)
is named by its ``INSTRUME`` value, hence the ``*`` patterns.
"""

from __future__ import annotations

from svomflow.products.catalogue.models import FigureModel, FitsModel, TextModel
from svomflow.products.catalogue.registry import declare
from svomflow.products.catalogue.types import Keyword

__all__: list[str] = []


# any instrument whose event files are given: the mission's and foreign ones (GBM)
_ANY = ("ECL", "GRM", "*")

# every VHF FITS product: relative times from T0, the time reference, the quality
_HEADER = (
    Keyword("T0", "[s] reference time of relative times (MET)"),
    Keyword("MJDREFI", "integer part of the reference MJD"),
    Keyword("TIMESYS", "time system"),
    Keyword("QUALITY", "GOOD, FLAGGED (read FLAGnn) or why T90 is not measured"),
)


def _light_curve_keywords() -> tuple[Keyword, ...]:
    return (
        *_HEADER,
        Keyword("HDUCLAS1", "light curve dataset", "LIGHTCURVE", hdu="RATE"),
        Keyword("E_MIN", "[keV] lower edge of the band", hdu="RATE"),
        Keyword("E_MAX", "[keV] upper edge of the band", hdu="RATE"),
        Keyword("TIMEZERO", "[s] T0: TIME is relative to it", hdu="RATE"),
    )


declare(
    "TT",
    "Trigger time: the best rate-trigger window (time, timescale, band, significance), the "
    "table of every timescale and band, the image trigger and the on-board TRIGTIME",
    instruments=_ANY,
    model=FitsModel,
    keywords=_HEADER,
    extensions=("TRIGGER",),
)

declare(
    "QCL",
    "Confidence levels of the detection: rate-trigger, image-trigger and position S/N",
    instruments=_ANY,
    model=FitsModel,
    keywords=_HEADER,
    extensions=("CONFLVL",),
)

declare(
    "QPO",
    "Quick position: RA/Dec with the 90 % error radius (coded-mask image fit, or the GRM "
    "detectors' count ratios)",
    instruments=("ECL", "GRM"),
    model=FitsModel,
    keywords=_HEADER,
    extensions=("POSITION",),
)

declare(
    "OBLC",
    "On-board-like count light curves in the rate-trigger bands (OGIP RATE, 1 s bins)",
    instruments=_ANY,
    model=FitsModel,
    keywords=_light_curve_keywords(),
    extensions=("RATE", "GTI"),
)

declare(
    "QLC",
    "Quick light curves: the T90 band on the T90 clock, then the light-curve bands (OGIP "
    "RATE with the background model rate BKG_RATE)",
    instruments=_ANY,
    model=FitsModel,
    keywords=_light_curve_keywords(),
    extensions=("RATE", "GTI"),
)

declare(
    "QPF",
    "Peak flux: highest background-subtracted count rate per timescale (64/256/1024 ms)",
    instruments=_ANY,
    model=FitsModel,
    keywords=(
        *_HEADER,
        Keyword("E_MIN", "[keV] lower edge of the band", hdu="PEAKFLUX"),
        Keyword("E_MAX", "[keV] upper edge of the band", hdu="PEAKFLUX"),
    ),
    extensions=("PEAKFLUX",),
)

declare(
    "QT90",
    "T90 and T50 with their start times and 1-sigma errors in a stated band (NaN with the "
    "reason in QUALITY/QUALREAS when the burst is found but its T90 cannot be measured)",
    instruments=_ANY,
    model=FitsModel,
    keywords=(
        *_HEADER,
        Keyword("E_MIN", "[keV] lower edge of the band", hdu="T90"),
        Keyword("E_MAX", "[keV] upper edge of the band", hdu="T90"),
        Keyword("TIMEDEL", "[s] bin width of the T90 light curve", hdu="T90"),
    ),
    extensions=("T90",),
)

declare(
    "QHR",
    "Hardness ratio: hard / soft net counts over the burst interval (per instrument, or a "
    "soft band of one instrument and a hard band of another: ECLGRM)",
    instruments=_ANY,
    model=FitsModel,
    keywords=_HEADER,
    extensions=("HARDNESS",),
)

# RSP: declared in common.py (X-band and VHF both make it)

declare(
    "QSP",
    "Quick spectrum: joint fit of the detectors over the burst interval (parameters with "
    "1-sigma errors, photon and energy flux)",
    instruments=("GRM",),
    model=FitsModel,
    keywords=(
        *_HEADER,
        Keyword("MODEL", "photon model", hdu="SPECPARAM"),
        Keyword("STAT", "fit statistic", hdu="SPECPARAM"),
        Keyword("CONVERGE", "fit converged", hdu="SPECPARAM"),
    ),
    extensions=("SPECPARAM",),
)

declare(
    "CRCLASS",
    "Crude class of the burst (short, long or a non-GRB flag) with P(short) and the T90 used",
    instruments=("*",),
    model=FitsModel,
    keywords=_HEADER,
    extensions=("CLASS",),
)

declare(
    "QLCPLOT",
    "Preview: light curves of QLC with the background model, T90, T50 and the peak window",
    instruments=_ANY,
    model=FigureModel,
)

declare(
    "QPOPLOT",
    "Preview: sky image (S/N) of the burst interval with the position and its 90 % circle",
    instruments=("ECL",),
    model=FigureModel,
)

declare(
    "QSUM",
    "HTML summary of the quick analysis for the burst advocate: T0 in UTC and mission time, "
    "T90, peak flux, Epeak, fluence, hardness, class and positions with errors and units, "
    "the previews and the list of products (written by the flow after its steps)",
    instruments=("*",),
    model=TextModel,
)
