"""Resolve all the calibration files a flow needs at once, failing early with one message."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from svomflow.calibration.caldb.entry import CaldbEntry, normalize_name, to_utc
from svomflow.errors import CalibrationNotFoundError, InputDataError

__all__ = ["CalibrationRequirement", "SupportsSelect", "resolve_calibrations"]


class SupportsSelect(Protocol):
    """What ``resolve_calibrations`` needs from a CALDB (local ``Caldb`` or ``RemoteCaldb``)."""

    def select(self, codename: str, **kwargs: Any) -> CaldbEntry:
        """Return the entry selected by HEASARC rules, or raise CalibrationNotFoundError."""
        ...


@dataclass(frozen=True)
class CalibrationRequirement:
    """A calibration file a step needs (declared as a module constant next to the step).

    Attributes
    ----------
    name
        Key of the resolved file in the result, and of a path override (``override_<name>``
        in stpipe's terms), e.g. ``"gain"``.
    codename, instrument, telescope, detector, filter
        What to select (``NONE`` = any).
    boundary_values
        Boundary parameter values, e.g. ``{"energ": 50.0}``.
    optional
        If true, a missing file is left out of the result instead of being an error.
    time
        Observation time of this selection when it differs from the run's (an image of a
        night); ``None`` uses the time given to :func:`resolve_calibrations`.
    """

    name: str
    codename: str
    instrument: str
    telescope: str | None = None
    detector: str = "NONE"
    filter: str = "NONE"
    boundary_values: Mapping[str, object] = field(default_factory=dict)
    optional: bool = False
    time: object | None = None

    @classmethod
    def coerce(cls, value: CalibrationRequirement | Mapping[str, Any]) -> CalibrationRequirement:
        """Accept a requirement or a mapping with the same keys (e.g. from a config file)."""
        if isinstance(value, CalibrationRequirement):
            return value
        data = dict(value)
        data.setdefault("name", str(data.get("codename", "")).lower())
        return cls(**data)


def _override_entry(req: CalibrationRequirement, path: str | os.PathLike[str]) -> CaldbEntry:
    from svomflow.atomic import sha256_file

    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise InputDataError(f"calibration override for {req.name!r} not found: {p}")
    return CaldbEntry(
        id=None,
        telescope=(req.telescope or "NONE").upper(),
        instrument=normalize_name(req.instrument, what="instrument"),
        detector=normalize_name(req.detector, what="detector", wildcard=True),
        filter=normalize_name(req.filter, what="filter", wildcard=True),
        codename=normalize_name(req.codename, what="code name"),
        boundaries=(),
        valid_from=to_utc("1970-01-01"),
        quality=0,
        path=p,
        sha256=sha256_file(p),
        relpath="",
        source="override",
    )


def resolve_calibrations(
    requirements: Iterable[CalibrationRequirement | Mapping[str, Any]],
    time: object,
    caldb: SupportsSelect | None = None,
    overrides: Mapping[str, str | os.PathLike[str] | None] | None = None,
    *,
    index_version: int | None = None,
) -> dict[str, CaldbEntry]:
    """Select every required calibration file for an observation time, or fail with one error.

    Parameters
    ----------
    requirements
        What the flow's steps need (``CalibrationRequirement`` or mappings).
    time
        Observation start: astropy Time, datetime (naive = UTC) or ISO string.
    caldb
        The CALDB to select from (default ``open_caldb()``).
    overrides
        ``{requirement name: path}``: use this file instead of selecting one (a ``None``
        value means no override). The file is checksummed; its entry has ``source="override"``.
    index_version
        Select in this index version (reproduces an earlier calibration context).

    Returns
    -------
    dict
        ``{requirement name: CaldbEntry}`` in requirement order.

    Raises
    ------
    CalibrationNotFoundError
        Naming every missing (or corrupted) file at once, so an operator fixes them in one go.
    """
    reqs = [CalibrationRequirement.coerce(r) for r in requirements]
    names = [r.name for r in reqs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"calibration requirement names used twice: {', '.join(dup)}")
    overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "")}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(
            f"calibration override(s) for unknown requirement(s): {', '.join(unknown)} "
            f"(known: {', '.join(names)})"
        )
    when = to_utc(time, what="observation time")
    if caldb is None and len(overrides) < len(reqs):
        from svomflow.calibration.caldb.open import open_caldb

        caldb = open_caldb()

    out: dict[str, CaldbEntry] = {}
    problems: list[str] = []
    for req in reqs:
        try:
            if req.name in overrides:
                out[req.name] = _override_entry(req, overrides[req.name])  # type: ignore[arg-type]
                continue
            assert caldb is not None
            out[req.name] = caldb.select(
                req.codename,
                instrument=req.instrument,
                telescope=req.telescope,
                detector=req.detector,
                filter=req.filter,
                time=when if req.time is None else to_utc(req.time, what="observation time"),
                index_version=index_version,
                **dict(req.boundary_values),
            )
        except (CalibrationNotFoundError, InputDataError) as exc:
            if not req.optional:
                problems.append(f"{req.name}: {exc}")
        except Exception as exc:
            # Integrity errors and bad values are reported with the others, not one by one.
            from svomflow.errors import SvomflowError

            if isinstance(exc, (SvomflowError, ValueError)):
                problems.append(f"{req.name}: {exc}")
            else:
                raise
    if problems:
        where = f" in {caldb!r}" if caldb is not None else ""
        raise CalibrationNotFoundError(
            f"{len(problems)} of {len(reqs)} calibration file(s) unavailable{where} for "
            f"{when.isoformat()}: "
            + " | ".join(problems)
            + " (register them with `svomflow caldb register`, point $SVOMFLOW_CALDB at the "
            "CALDB that has them, or give a file with the step's override_<code>)"
        )
    return out
