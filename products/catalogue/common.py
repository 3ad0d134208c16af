"""Product types made by more than one pipeline (declared once here)."""

from __future__ import annotations

from svomflow.products.catalogue.models import FigureModel, FitsModel
from svomflow.products.catalogue.registry import declare
from svomflow.products.catalogue.types import Keyword

__all__: list[str] = []

declare(
    "RSP",
    "Response of a detector for the burst direction (OGIP RSP: SPECRESP MATRIX with the "
    "effective area, EBOUNDS)",
    # ECL: the coded-mask plane; GRM-GRDnn: one GRM detector
    instruments=("ECL", "GRM", "GRM-*"),
    model=FitsModel,
    keywords=(
        Keyword("HDUCLAS1", "response dataset", "RESPONSE", hdu="SPECRESP MATRIX"),
        Keyword("HDUCLAS2", "response matrix", "RSP_MATRIX", hdu="SPECRESP MATRIX"),
        Keyword("HDUCLAS3", "matrix includes the effective area", "FULL", hdu="SPECRESP MATRIX"),
        Keyword("DETNAM", "detector", hdu="SPECRESP MATRIX"),
    ),
    extensions=("SPECRESP MATRIX", "EBOUNDS"),
    ext="rsp",
)

# spectra, light curves and their previews: per instrument (ECL, GRM), per GRM detector
# (GRM-GRDnn), per MXT source (MXT-Snn)
_SOURCES = ("ECL", "GRM", "GRM-*", "MXT-S*")

declare(
    "PHA",
    "Count spectra (OGIP PHA type I, or type II with a row per interval) naming their "
    "RESPFILE, ANCRFILE and BACKFILE",
    instruments=_SOURCES,
    model=FitsModel,
    keywords=(Keyword("HDUCLAS1", "PHA dataset", "SPECTRUM", hdu="SPECTRUM"),),
    extensions=("SPECTRUM",),
)

declare(
    "LC",
    "Light curve of a burst or source (OGIP RATE; X-band: net, with photon and energy flux; "
    "MXT: PSF- and background-corrected)",
    instruments=("ECL", "GRM", "MXT-S*"),
    model=FitsModel,
    keywords=(Keyword("HDUCLAS1", "light curve dataset", "LIGHTCURVE", hdu="RATE"),),
    extensions=("RATE",),
)

declare(
    "LC-PREVIEW",
    "Preview of a light curve (X-band: photon flux with the common intervals shaded; MXT: "
    "count rate with its Bayesian blocks and the gaps labelled by cause)",
    instruments=("ECL", "GRM", "MXT-S*"),
    model=FigureModel,
)
