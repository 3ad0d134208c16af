"""The calibration of one run: the selected files and their loaded data objects.

The adapter builds a :class:`CalibrationSet` in a flow's first task (select every file the
steps declare, fail early naming every missing one, load each into its data object) and
passes it to the steps, which only look objects up: a step never opens the CALDB or a file.
Keys are requirement names, ``<instrument>:<CODE>`` by default (``eclairs:EBOUNDS``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svomflow.atomic import sha256_file
from svomflow.calibration.caldb.entry import CaldbEntry
from svomflow.calibration.caldb.resolve import CalibrationRequirement, resolve_calibrations
from svomflow.calibration.codes import load_calibration_file
from svomflow.errors import CalibrationNotFoundError
from svomflow.products.provenance import CalibrationRef

__all__ = ["CalibrationSet", "calibration_key"]


def calibration_key(instrument: str, codename: str) -> str:
    """Return the key of an instrument's calibration file in a set (``eclairs:EBOUNDS``)."""
    return f"{instrument.lower()}:{codename.upper()}"


@dataclass
class CalibrationSet:
    """Selected calibration files (CALDB entries or overrides) and their loaded objects."""

    entries: dict[str, CaldbEntry] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        requirements: Iterable[CalibrationRequirement],
        time: object,
        *,
        caldb: Any | None = None,
        overrides: Mapping[str, str | os.PathLike[str] | None] | None = None,
        index_version: int | None = None,
    ) -> CalibrationSet:
        """Select every required file at ``time`` and load it (one error names all missing).

        Parameters
        ----------
        requirements
            What the steps need (names become the keys of the set).
        time
            Observation time (ISO string, datetime or astropy Time).
        caldb
            The CALDB to select from (default: ``open_caldb()``, opened only if needed).
        overrides
            ``{requirement name: path}`` used instead of a CALDB selection.
        index_version
            Select in this CALDB index version (reproduce an earlier calibration context).
        """
        reqs = list(requirements)
        if not reqs:
            return cls()
        entries = resolve_calibrations(reqs, time, caldb, overrides, index_version=index_version)
        out = cls(entries=dict(entries))
        out.load_all()
        return out

    @classmethod
    def from_files(cls, files: Mapping[str, str | os.PathLike[str]]) -> CalibrationSet:
        """Build a set from explicit files, ``{"<instrument>:<CODE>": path}`` (bench, tests)."""
        reqs = []
        for key in files:
            inst, _, code = key.partition(":")
            if not code:
                raise ValueError(f"calibration key {key!r} is not '<instrument>:<CODE>'")
            reqs.append(CalibrationRequirement(name=key, codename=code, instrument=inst))
        return cls.resolve(reqs, "2000-01-01", overrides=dict(files))

    def load_all(self) -> None:
        """Load every selected file into its data object (the adapter's first task)."""
        for key, entry in self.entries.items():
            if key not in self.objects:
                self.objects[key] = load_calibration_file(entry.codename, entry.path)

    def __contains__(self, key: object) -> bool:
        return key in self.entries or key in self.objects

    def has(self, instrument: str, codename: str) -> bool:
        """Whether the set holds ``codename`` for ``instrument``."""
        return calibration_key(instrument, codename) in self

    def get(self, instrument: str, codename: str) -> Any:
        """Return the loaded object of an instrument's calibration file.

        Raises
        ------
        CalibrationNotFoundError
            When the set has no such file (a step used a code its pipeline did not resolve).
        """
        key = calibration_key(instrument, codename)
        if key not in self.objects:
            known = ", ".join(sorted(self.objects)) or "none"
            raise CalibrationNotFoundError(
                f"no {codename} calibration for {instrument} (have: {known})"
            )
        return self.objects[key]

    def named(self, name: str) -> Any:
        """Return the loaded object of a requirement by its full name (``ddrago-b:DARK:img7``).

        Raises
        ------
        CalibrationNotFoundError
            When the set has no such file.
        """
        if name not in self.objects:
            raise CalibrationNotFoundError(f"no calibration {name!r} in this run")
        return self.objects[name]

    def optional(self, instrument: str, codename: str) -> Any | None:
        """Return the loaded object, or None when the set has no such file."""
        key = calibration_key(instrument, codename)
        return self.objects.get(key)

    def refs(
        self, codenames: Iterable[str] | None = None, instrument: str | None = None
    ) -> list[CalibrationRef]:
        """Provenance references of the files (optionally of some codes or one instrument)."""
        want = None if codenames is None else {c.upper() for c in codenames}
        out = []
        for key, e in self.entries.items():
            inst = key.partition(":")[0]
            if want is not None and e.codename.upper() not in want:
                continue
            if instrument is not None and inst != instrument.lower():
                continue
            out.append(
                CalibrationRef(
                    codename=e.codename,
                    path=str(e.path),
                    sha256=e.sha256 or sha256_file(e.path),
                    index_version=e.index_version,
                    override=e.source == "override",
                    name=key,
                )
            )
        return out

    def paths(self) -> dict[str, Path]:
        """``{key: path}`` of every selected file."""
        return {k: Path(e.path) for k, e in self.entries.items()}
