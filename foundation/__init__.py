"""svomflow: the science ground segment of a gamma-ray-burst mission modelled on SVOM.

The package is one import namespace over the repository's top-level folders:
``svomflow.flows`` (Prefect flows), ``svomflow.tasks`` (processing steps and numba
kernels), ``svomflow.calibration`` (CALDB and calibration builders), ``svomflow.products``
(product model, FITS I/O, products database), ``svomflow.config`` (configuration models,
loader and instrument definitions) and ``svomflow.simulation`` (instrument simulators).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("svomflow")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
