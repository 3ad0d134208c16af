"""Product types of the X-band analysis (``xband_analysis``): refined ECLAIRs + GRM products.

Instrument codes: ``ECL`` (ECLAIRs), ``GRM`` (the GRM as a whole), ``GRM-GRD01``... (one GRM
detector: responses and spectra are per detector) and ``ECLGRM`` (both instruments: common
intervals, joint fits, cross-instrument hardness and lag). Spectra name their background and
response (``BACKFILE``, ``RESPFILE``) with :func:`~svomflow.products.catalogue.link_name`;
the publisher writes the published file names there, so XSPEC finds the set in one folder.

The three previews are products of their own (``TINT-PREVIEW``, ``SP-PREVIEW``,
``LC-PREVIEW``): each draws more than its companion product holds (the instruments' light
curves under the intervals, the fitted spectra with the folded model, the intervals under a
light curve).
"""

from __future__ import annotations

from svomflow.products.catalogue.instrument_codes import joint_code
from svomflow.products.catalogue.models import FigureModel, FitsModel
from svomflow.products.catalogue.registry import declare
from svomflow.products.catalogue.types import Keyword

__all__ = ["JOINT_CODE"]

#: Instrument code of the products of both instruments together.
JOINT_CODE = joint_code(("eclairs", "grm"))

_ONE = ("ECL", "GRM")
_ALL = ("ECL", "GRM", JOINT_CODE)
_DETECTORS = ("ECL", "GRM", "GRM-*")
_TIMEZERO = "mission time of T0 (s)"

declare(
    "T90",
    "T90/T50 with errors in the instrument's T90 band, its light curve and fitted background",
    instruments=_ONE,
    model=FitsModel,
    keywords=(
        Keyword("QUALITY", "T90 quality: GOOD, FLAGGED or why none was measured"),
        Keyword("TIMEZERO", _TIMEZERO, hdu="DURATIONS"),
    ),
    extensions=("DURATIONS", "LIGHTCURVE"),
)

declare(
    "TINT",
    "Common time intervals: pre/post-burst, main, peak and time-resolved (s from T0 and mission s)",
    instruments=(JOINT_CODE, *_ONE),
    model=FitsModel,
    keywords=(
        Keyword("TIMEZERO", _TIMEZERO, hdu="INTERVALS"),
        Keyword("RESMETH", "time-resolved intervals method", hdu="INTERVALS"),
        Keyword("PEAKINST", "instrument of the peak interval", hdu="INTERVALS"),
    ),
    extensions=("INTERVALS",),
)

declare(
    "TINT-PREVIEW",
    "Preview: each instrument's T90-band light curve with the common intervals shaded",
    instruments=(JOINT_CODE, *_ONE),
    model=FigureModel,
)

declare(
    "PO",
    "Refined position: ECLAIRs imaging (RA/Dec, r90, S/N) or GRM count ratios (RA/Dec, errors)",
    instruments=_ONE,
    model=FitsModel,
    extensions=("POSITION",),
)

# RSP, PHA, LC, LC-PREVIEW: declared in common.py (made by several pipelines)

declare(
    "BAK",
    "Background spectra of every fitted interval, scaled by BACKSCAL (OGIP PHA type II)",
    instruments=_DETECTORS,
    model=FitsModel,
    keywords=(
        Keyword("HDUCLAS1", "PHA dataset", "SPECTRUM", hdu="SPECTRUM"),
        Keyword("HDUCLAS2", "background spectrum", "BKG", hdu="SPECTRUM"),
    ),
    extensions=("SPECTRUM",),
)

declare(
    "SP",
    "Spectral fits of the main, peak and time-resolved intervals: parameters, fluxes, fluences",
    instruments=_ALL,
    model=FitsModel,
    keywords=(
        Keyword("TIMEZERO", _TIMEZERO, hdu="FITRESULT"),
        Keyword("ERRCONF", "confidence of the errors", hdu="FITRESULT"),
    ),
    extensions=("FITRESULT",),
)

declare(
    "SP-PREVIEW",
    "Preview: count spectra of the main interval with the folded model and residuals",
    instruments=_ALL,
    model=FigureModel,
)

declare(
    "FLUENCE",
    "Fluences of the main interval in the configured bands (erg/cm2, profile errors)",
    instruments=_ALL,
    model=FitsModel,
    keywords=(Keyword("TIMEZERO", _TIMEZERO, hdu="FLUENCE"),),
    extensions=("FLUENCE",),
)

declare(
    "PF",
    "Peak fluxes on several timescales (count rate, photon and energy flux)",
    instruments=_ONE,
    model=FitsModel,
    keywords=(Keyword("TIMEZERO", _TIMEZERO, hdu="PEAKFLUX"),),
    extensions=("PEAKFLUX",),
)

declare(
    "HR",
    "Hardness ratio of the main interval (net counts hard / soft)",
    instruments=_ALL,
    model=FitsModel,
    keywords=(Keyword("TIMEZERO", _TIMEZERO, hdu="HARDNESS"),),
    extensions=("HARDNESS",),
)

declare(
    "LAG",
    "Spectral lag of the main interval (cross-correlation; positive: soft lags hard)",
    instruments=_ALL,
    model=FitsModel,
    keywords=(Keyword("LAGSIGN", "sign convention of the lag", hdu="LAG"),),
    extensions=("LAG",),
)

declare(
    "MWLC",
    "Mask-weighted (background-subtracted) ECLAIRs light curves per band, OGIP RATE + GTI",
    instruments=("ECL",),
    model=FitsModel,
    keywords=(
        Keyword("TIMEZERO", _TIMEZERO, hdu="RATE_4_150"),
        Keyword("HDUCLAS2", "background subtracted", "NET", hdu="RATE_4_150"),
        Keyword("MASKWT", "mask-weighted counts", hdu="RATE_4_150"),
    ),
    extensions=("RATE_4_150", "GTI"),
)
