"""Spectral fitting: OGIP spectra, photon models, XSPEC statistics, fits, errors and fluxes.

Notebook API::

    from svomflow.tasks import spectral as sp
    n6 = sp.load("bn090217206_n6_srcspectra.pha")          # BACKFILE/RESPFILE from the header
    sp.apply_selection(n6)                                 # GBM NaI default: 8-900 keV
    n6.select_energy("8-30,40-900")                        # or the user's ranges
    res = sp.fit([n6, n9, b1], "band", stat="pgstat")
    sp.errors(res)                                         # delta-stat = 1 profile errors
    sp.flux(res, (8, 1000), kind="fluence")
    sp.plot(res, "fit.png")
"""

from svomflow.tasks.spectral.dataset import PreparedSpectrum, SpectrumDataset, load, parse_ranges
from svomflow.tasks.spectral.fit import FitResult, ParameterResult, compare, errors, fit
from svomflow.tasks.spectral.flux import FluxResult, flux
from svomflow.tasks.spectral.models import (
    Band,
    Blackbody,
    CutoffPowerLaw,
    PowerLaw,
    SmoothlyBrokenPowerLaw,
    SpectralModel,
    SumModel,
    make_model,
)
from svomflow.tasks.spectral.plot import plot
from svomflow.tasks.spectral.quick_spectrum import (
    DetectorTypeRanges,
    QuickSpectrum,
    QuickSpectrumConfig,
    detector_energy_ranges,
    quick_spectrum,
)
from svomflow.tasks.spectral.selection import (
    ChannelSelection,
    apply_selection,
    default_cross_norm,
    default_statistic,
    instrument_of,
)

__all__ = [
    "Band",
    "Blackbody",
    "ChannelSelection",
    "CutoffPowerLaw",
    "DetectorTypeRanges",
    "FitResult",
    "FluxResult",
    "ParameterResult",
    "PowerLaw",
    "PreparedSpectrum",
    "QuickSpectrum",
    "QuickSpectrumConfig",
    "SmoothlyBrokenPowerLaw",
    "SpectralModel",
    "SpectrumDataset",
    "SumModel",
    "apply_selection",
    "compare",
    "default_cross_norm",
    "default_statistic",
    "detector_energy_ranges",
    "errors",
    "fit",
    "flux",
    "instrument_of",
    "load",
    "make_model",
    "parse_ranges",
    "plot",
    "quick_spectrum",
]
