"""The calibration database: HEASARC CALDB rules over an immutable, versioned local index.

``select`` is the only way code finds a calibration file (ARCHITECTURE.md §5)::

    from svomflow.calibration.caldb import open_caldb, select
    entry = select("GAIN", instrument="ECLAIRS", time="2025-03-01T12:00:00")
    entry.path, entry.sha256, entry.index_version   # what products record

The CALDB lives under ``$SVOMFLOW_CALDB`` (a directory, or the ``http(s)://`` URL of a
remote CALDB that is mirrored on demand), else ``$SVOMFLOW_HOME/caldb``.
"""

from __future__ import annotations

from typing import Any

from svomflow.calibration.caldb.boundaries import Boundary, parse_boundary
from svomflow.calibration.caldb.entry import CaldbEntry, CalibrationIntegrityError
from svomflow.calibration.caldb.indx import read_indx, write_indx
from svomflow.calibration.caldb.local import Caldb
from svomflow.calibration.caldb.open import default_caldb_location, open_caldb
from svomflow.calibration.caldb.resolve import CalibrationRequirement, resolve_calibrations
from svomflow.calibration.caldb.selection import choose_entry

__all__ = [
    "Boundary",
    "Caldb",
    "CaldbEntry",
    "CalibrationIntegrityError",
    "CalibrationRequirement",
    "choose_entry",
    "default_caldb_location",
    "open_caldb",
    "parse_boundary",
    "read_indx",
    "resolve_calibrations",
    "select",
    "write_indx",
]


def select(codename: str, *, instrument: str, time: object, **kwargs: Any) -> CaldbEntry:
    """Select a calibration file from the default CALDB (see :meth:`Caldb.select`)."""
    return open_caldb().select(codename, instrument=instrument, time=time, **kwargs)
