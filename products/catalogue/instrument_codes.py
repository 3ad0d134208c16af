"""Instrument codes in product names (``QLC_ECL``, ``RSP_GRM-GRD01``, ``QHR_ECLGRM``).

An instrument's code is data: ``product_code`` in its definition
(``config/instruments/<name>.yaml``), else its ``INSTRUME`` value; an instrument without a
definition (a foreign mission's files, e.g. Fermi GBM) is named by its ``INSTRUME`` value.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from svomflow.config import available_instruments, load_instrument

__all__ = ["detector_code", "instrument_code", "joint_code"]


@cache
def _codes() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in available_instruments():
        defn = load_instrument(name)
        code = str(defn.get("product_code", defn.instrument)).upper()
        out[name.lower()] = code
        out[defn.instrument.lower()] = code
    return out


def instrument_code(instrument: str) -> str:
    """Return the code of an instrument (definition name or ``INSTRUME``) in product names."""
    return _codes().get(instrument.lower(), instrument.upper())


def joint_code(instruments: Sequence[str]) -> str:
    """Return the code of a product made from several instruments (``ECLGRM``)."""
    return "".join(instrument_code(n) for n in instruments)


def detector_code(instrument: str, detector: str, n_detectors: int) -> str:
    """Return the code of one detector's products: the instrument's for one, ``GRM-GRD01``."""
    code = instrument_code(instrument)
    return code if n_detectors == 1 else f"{code}-{detector}"
