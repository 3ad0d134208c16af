"""The record of one calibration file in the CALDB, and the UTC time conversions it uses."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from svomflow.calibration.caldb.boundaries import Boundary, normalize_boundaries
from svomflow.errors import SvomflowError

__all__ = [
    "CaldbEntry",
    "CalibrationIntegrityError",
    "mjd_utc",
    "normalize_name",
    "to_utc",
]

UTC = _dt.UTC
_MJD0 = _dt.datetime(1858, 11, 17, tzinfo=UTC)


class CalibrationIntegrityError(SvomflowError):
    """A registered calibration file is missing or was changed after registration."""


def to_utc(value: object, *, what: str = "time") -> _dt.datetime:
    """Convert a time to a timezone-aware UTC datetime.

    Accepts an astropy ``Time`` (any scale; converted to UTC), a ``datetime`` (naive means
    UTC), a ``date`` (midnight UTC) or an ISO 8601 string (``2025-01-02``,
    ``2025-01-02T03:04:05Z``). Numbers are refused: an MJD and a mission elapsed time look
    alike, and guessing between them would select the wrong calibration silently.
    """
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            return to_utc(_dt.datetime.fromisoformat(text), what=what)
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an ISO 8601 date/time") from None
    if type(value).__name__ == "Time" and hasattr(value, "utc"):
        if not value.isscalar:  # type: ignore[attr-defined]
            raise ValueError(f"{what} must be a single time, not an array")
        return value.utc.to_datetime(timezone=UTC)  # type: ignore[attr-defined]
    raise ValueError(
        f"{what} {value!r} must be an astropy Time, a datetime or an ISO 8601 string "
        "(numbers are ambiguous between MJD and mission time)"
    )


def mjd_utc(t: _dt.datetime) -> float:
    """Return the MJD (UTC calendar days) of a UTC datetime, as in HEASARC's ``REF_TIME``."""
    return (to_utc(t) - _MJD0).total_seconds() / 86400.0


def iso_utc(t: _dt.datetime) -> str:
    """Return a fixed-width ISO string (microseconds, UTC) that sorts like the times."""
    return to_utc(t).strftime("%Y-%m-%dT%H:%M:%S.%f")


def normalize_name(value: object, *, what: str, wildcard: bool = False) -> str:
    """Return an index name upper-cased and stripped; empty becomes ``NONE`` if allowed."""
    text = "" if value is None else str(value).strip().upper()
    if not text or text == "NONE":
        if wildcard:
            return "NONE"
        raise ValueError(f"{what} must not be empty")
    if any(c.isspace() for c in text) or any(ord(c) < 32 for c in text):
        raise ValueError(f"{what} {value!r} must not contain spaces or control characters")
    return text


@dataclass(frozen=True)
class CaldbEntry:
    """One calibration file as the index describes it.

    Attributes
    ----------
    id
        Entry number in the local CALDB (``None`` for a file given by path override).
    telescope, instrument, detector, filter
        ``TELESCOP``, ``INSTRUME``, ``DETNAM``, ``FILTER`` (upper case; ``NONE`` = any).
    codename
        Calibration code name (``CAL_CNAM``), e.g. ``GAIN``, ``MASTER_BIAS``.
    boundaries
        Boundary conditions (``CAL_CBD``).
    valid_from
        Validity start (``CAL_VSD``/``CAL_VST``), a UTC datetime.
    quality
        ``CAL_QUAL`` in the index version this entry was read from (0 = good).
    path
        Absolute path of the file (inside the CALDB tree, or the remote mirror's cache).
    sha256
        Checksum recorded at registration (``None`` if unknown, e.g. read from a bare CIF).
    registered_at
        When the entry was added (UTC).
    index_version
        Index version this entry was read from (the calibration context of a selection).
    registered_version
        Index version that added the entry.
    relpath
        Path relative to the CALDB root (``data/<telescope>/<instrument>/<class>/<file>``).
    extension
        ``CAL_XNO``: HDU number holding the dataset.
    cal_class
        ``CAL_CLAS``: ``BCF`` (basic) or ``CPF`` (calibration product file).
    description
        ``CAL_DESC``.
    source
        ``"caldb"`` for an index entry, ``"override"`` for a file given by path.
    """

    id: int | None
    telescope: str
    instrument: str
    detector: str
    filter: str
    codename: str
    boundaries: tuple[Boundary, ...]
    valid_from: _dt.datetime
    quality: int
    path: Path
    sha256: str | None
    registered_at: _dt.datetime | None = None
    index_version: int | None = None
    registered_version: int | None = None
    relpath: str = ""
    extension: int = 0
    cal_class: str = "BCF"
    description: str = ""
    source: str = field(default="caldb")

    @property
    def valid_from_mjd(self) -> float:
        """Validity start as MJD (UTC), HEASARC's ``REF_TIME``."""
        return mjd_utc(self.valid_from)

    def with_(self, **changes: Any) -> CaldbEntry:
        """Return a copy with some fields changed."""
        return replace(self, **changes)

    def verify(self) -> CaldbEntry:
        """Check the file still exists and has its registered checksum; return self.

        Raises
        ------
        CalibrationIntegrityError
            If the file is missing or its SHA-256 differs from the one recorded.
        """
        from svomflow.atomic import sha256_file

        if not self.path.is_file():
            raise CalibrationIntegrityError(
                f"calibration file {self.codename} (entry {self.id}) is missing: {self.path}"
            )
        if self.sha256 is None:
            return self
        actual = sha256_file(self.path)
        if actual != self.sha256:
            raise CalibrationIntegrityError(
                f"calibration file {self.path} (entry {self.id}, {self.codename}) was changed "
                f"after registration: sha256 {actual[:16]}... != registered {self.sha256[:16]}..."
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (used by snapshots, provenance and ``--json``)."""
        return {
            "id": self.id,
            "telescope": self.telescope,
            "instrument": self.instrument,
            "detector": self.detector,
            "filter": self.filter,
            "codename": self.codename,
            "boundaries": [b.to_string() for b in self.boundaries],
            "valid_from": to_utc(self.valid_from).isoformat(),
            "quality": self.quality,
            "path": str(self.path),
            "relpath": self.relpath,
            "sha256": self.sha256,
            "registered_at": None if self.registered_at is None else self.registered_at.isoformat(),
            "index_version": self.index_version,
            "registered_version": self.registered_version,
            "extension": self.extension,
            "cal_class": self.cal_class,
            "description": self.description,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, root: Path | None = None) -> CaldbEntry:
        """Build an entry from :meth:`to_dict` output; ``root`` re-bases ``relpath``."""
        relpath = data.get("relpath") or ""
        path = Path(root, relpath) if root is not None and relpath else Path(data["path"])
        reg = data.get("registered_at")
        return cls(
            id=data.get("id"),
            telescope=data["telescope"],
            instrument=data["instrument"],
            detector=data.get("detector", "NONE"),
            filter=data.get("filter", "NONE"),
            codename=data["codename"],
            boundaries=normalize_boundaries(data.get("boundaries") or ()),
            valid_from=to_utc(data["valid_from"]),
            quality=int(data.get("quality", 0)),
            path=path,
            sha256=data.get("sha256"),
            registered_at=None if reg is None else to_utc(reg),
            index_version=data.get("index_version"),
            registered_version=data.get("registered_version"),
            relpath=relpath,
            extension=int(data.get("extension", 0)),
            cal_class=data.get("cal_class", "BCF"),
            description=data.get("description", ""),
            source=data.get("source", "caldb"),
        )
