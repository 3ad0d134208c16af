"""Which master calibrations a CCD frame or a group of frames needs, as CALDB requirements.

One rule for the reduction of science frames (GP1) and for the nightly masters: a bias is
selected by time; a flat by time and filter; a dark by time within its temperature
boundary (``CCDTEMP``), with the exposure boundary (``EXPTIME``) tried first and dropped
when no dark of that exposure exists (darks are stored as rates). The fallback is expressed
as an optional requirement followed by a plain one: a step takes the first of
:meth:`MasterSelection.names` that the calibration set holds.

Requirement names say everything the selection depends on, so two frames that select with
the same values share one requirement (one file read) and frames that differ never do.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any

from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet, calibration_key
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.ccd_masters import MasterFrame

__all__ = ["CODENAMES", "MasterSelection", "master_selection", "pick_master"]

#: Calibration type -> CALDB code name.
CODENAMES = {"bias": "BIAS", "dark": "DARK", "flat": "FLAT"}


@dataclass(frozen=True)
class MasterSelection:
    """How one master is selected for a frame (or a group): code, time and bounds.

    Attributes
    ----------
    camera
        Camera definition name (the prefix of requirement names, the key of a
        ``{camera: path}`` override).
    instrument, telescope
        CALDB instrument and telescope values.
    codename
        ``BIAS``, ``DARK`` or ``FLAT``.
    time
        Selection time (UTC).
    filter
        Filter (flats only; ``NONE`` otherwise).
    temperature, exptime
        Dark boundaries (``None``: not used).
    role
        What the master is for, when a frame needs the same code twice (``current``: the
        master a nightly candidate is compared with).
    """

    camera: str
    instrument: str
    telescope: str
    codename: str
    time: _dt.datetime
    filter: str = "NONE"
    temperature: float | None = None
    exptime: float | None = None
    role: str = ""

    def _name(self, with_exptime: bool) -> str:
        parts = [self.time.isoformat()]
        if self.filter != "NONE":
            parts.append(f"filter={self.filter}")
        if self.temperature is not None:
            parts.append(f"CCDTEMP={self.temperature!r}")
        if with_exptime and self.exptime is not None:
            parts.append(f"EXPTIME={self.exptime!r}")
        role = f"{self.role}:" if self.role else ""
        return f"{self.camera}:{self.codename}:{role}{';'.join(parts)}"

    def names(self) -> tuple[str, ...]:
        """Return the requirement names in order of preference (a dark's exposure-bounded one first)."""
        if self.codename == "DARK" and self.temperature is not None and self.exptime is not None:
            return (self._name(True), self._name(False))
        return (self._name(False),)

    def requirements(self, *, optional: bool) -> list[CalibrationRequirement]:
        """Return the CALDB requirements of this selection (the preferred dark always optional)."""
        out = []
        names = self.names()
        for i, name in enumerate(names):
            bounds: dict[str, Any] = {}
            if self.temperature is not None:
                bounds["CCDTEMP"] = float(self.temperature)
            if i == 0 and len(names) == 2 and self.exptime is not None:
                bounds["EXPTIME"] = float(self.exptime)
            out.append(
                CalibrationRequirement(
                    name=name,
                    codename=self.codename,
                    instrument=self.instrument,
                    telescope=self.telescope,
                    filter=self.filter,
                    boundary_values=bounds,
                    optional=optional or i < len(names) - 1,
                    time=self.time,
                )
            )
        return out

    def describe(self) -> str:
        """One line for messages: what was looked for."""
        what = [f"at {self.time.isoformat()}"]
        if self.filter != "NONE":
            what.append(f"filter {self.filter}")
        if self.temperature is not None:
            what.append(f"CCD temperature {self.temperature:g} C")
        if self.exptime is not None:
            what.append(f"exposure {self.exptime:g} s")
        return f"{self.codename} ({', '.join(what)})"


def master_selection(
    camera: CameraModel,
    kind: str,
    time: _dt.datetime,
    *,
    filter: str = "NONE",
    temperature: float | None = None,
    exptime: float | None = None,
    role: str = "",
) -> MasterSelection:
    """Return the selection of the master of ``kind`` (``bias``, ``dark``, ``flat``) at ``time``.

    Flats select by filter; darks within their temperature boundary when the temperature is
    known, and by exposure when one is given (with the fallback without it).
    """
    temp = temperature if kind == "dark" and temperature is not None else None
    if temp is not None and not math.isfinite(temp):
        temp = None
    return MasterSelection(
        camera=camera.name,
        instrument=camera.instrument,
        telescope=camera.telescope,
        codename=CODENAMES[kind],
        time=time,
        filter=filter if kind == "flat" else "NONE",
        temperature=None if temp is None else float(temp),
        exptime=float(exptime) if temp is not None and exptime is not None else None,
        role=role,
    )


def pick_master(
    calibration: CalibrationSet, selection: MasterSelection
) -> tuple[MasterFrame, dict[str, Any]] | None:
    """Return the first master of a selection the set holds, with its provenance record.

    The record holds the file's ``codename``, ``path``, ``sha256``, ``source`` (``caldb`` or
    ``override``) and CALDB ``index_version``. ``None`` when the set holds none of them.
    A set built from files for a notebook or a test (``CalibrationSet.from_files``) holds
    one master per code, ``<camera>:<CODE>``: it is used for every frame (not for a
    ``role``, which names a second master of the same code).
    """
    names = list(selection.names())
    if not selection.role:
        names.append(calibration_key(selection.camera, selection.codename))
    for name in names:
        if name in calibration.objects:
            entry = calibration.entries.get(name)
            record: dict[str, Any] = {"codename": selection.codename, "name": name}
            if entry is not None:
                record.update(
                    path=str(entry.path),
                    sha256=entry.sha256,
                    source=entry.source,
                    index_version=entry.index_version,
                )
            return calibration.named(name), record
    return None
