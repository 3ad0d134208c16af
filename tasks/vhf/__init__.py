"""VHF quick analysis: the steps, their configuration and the pipeline ``VHF_PIPELINE``.

The science is in the shared step packages (:mod:`svomflow.tasks.timing`,
:mod:`~svomflow.tasks.coded_mask`, :mod:`~svomflow.tasks.localisation`,
:mod:`~svomflow.tasks.spectral`, :mod:`~svomflow.tasks.classification`); this package
declares the VHF steps on them, per instrument (:mod:`.timing`, :mod:`.position`,
:mod:`.trigger`, :mod:`.spectrum`) and for the burst (:mod:`.joint`), and connects them in
:mod:`.pipeline`. Steps return their products; the runners publish them.
"""

from svomflow.tasks.vhf.config import VHFConfig

__all__ = ["VHFConfig"]
