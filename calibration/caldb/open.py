"""Where the CALDB is, and opening it (a local directory or a remote CALDB's URL)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from svomflow.calibration.caldb.local import Caldb

__all__ = ["default_caldb_location", "open_caldb"]


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
