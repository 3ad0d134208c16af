"""VHF quick-analysis steps: inputs by instrument, timing, positions, spectrum, products.

The science is in the shared step packages (:mod:`svomflow.tasks.timing`,
:mod:`~svomflow.tasks.coded_mask`, :mod:`~svomflow.tasks.localisation`,
:mod:`~svomflow.tasks.spectral`, :mod:`~svomflow.tasks.classification`); this package
assembles them per instrument (:mod:`.timing`, :mod:`.position`), runs them all
(:func:`svomflow.tasks.vhf.pipeline.analyse`) and writes the products (:mod:`.publish`).
"""

from svomflow.tasks.vhf.config import VHFConfig

__all__ = ["VHFConfig"]
