"""The calibration database: HEASARC CALDB rules over an immutable, versioned local index.

``select`` is the only way code finds a calibration file (ARCHITECTURE.md §5)::

    from svomflow.calibration.caldb import open_caldb, select
    entry = select("GAIN", instrument="ECLAIRS", time="2025-03-01T12:00:00")
    entry.path, entry.sha256, entry.index_version   # what products record

The CALDB lives under ``$SVOMFLOW_CALDB`` (a directory, or the ``http(s)://`` URL of a
remote CALDB that is mirrored on demand), else ``$SVOMFLOW_HOME/caldb``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from svomflow.calibration.caldb.boundaries import Boundary, parse_boundary
from svomflow.calibration.caldb.entry import CaldbEntry, CalibrationIntegrityError
from svomflow.calibration.caldb.indx import read_indx, write_indx
from svomflow.calibration.caldb.local import Caldb
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


def default_caldb_location() -> str:
    """Return ``$SVOMFLOW_CALDB`` if set, else ``$SVOMFLOW_HOME/caldb``."""
    env = os.environ.get("SVOMFLOW_CALDB", "").strip()
    if env:
        return env
    from svomflow.paths import data_home

    return str(data_home() / "caldb")


def open_caldb(root: str | os.PathLike[str] | None = None) -> Any:
    """Open the CALDB at ``root`` (default: :func:`default_caldb_location`).

    A directory gives a local :class:`Caldb`; an ``http://`` or ``https://`` URL gives a
    :class:`~svomflow.calibration.caldb.client.RemoteCaldb` that mirrors the remote index and
    fetches selected files into the local cache.
    """
    location = default_caldb_location() if root is None else os.fspath(root)
    if location.startswith(("http://", "https://")):
        from svomflow.calibration.caldb.client import RemoteCaldb

        return RemoteCaldb(location)
    return Caldb(Path(location))


def select(codename: str, *, instrument: str, time: object, **kwargs: Any) -> CaldbEntry:
    """Select a calibration file from the default CALDB (see :meth:`Caldb.select`)."""
    return open_caldb().select(codename, instrument=instrument, time=time, **kwargs)
