"""HEASARC selection rules over a list of index entries (pure: no I/O)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping

from svomflow.calibration.caldb.boundaries import boundaries_hold
from svomflow.calibration.caldb.entry import CaldbEntry, to_utc
from svomflow.errors import CalibrationNotFoundError

__all__ = ["choose_entry", "filter_entries", "names_match"]


def names_match(stored: str, wanted: str | None) -> bool:
    """Return whether an index name matches a requested one (``NONE``/empty on either side = any)."""
    a = (stored or "").strip().upper()
    b = (wanted or "").strip().upper()
    if a in ("", "NONE") or b in ("", "NONE"):
        return True
    return a == b


def filter_entries(
    entries: Iterable[CaldbEntry],
    *,
    instrument: str | None = None,
    codename: str | None = None,
    telescope: str | None = None,
    detector: str | None = None,
    all_qualities: bool = False,
) -> list[CaldbEntry]:
    """Return the entries matching the given names (quality 0 unless ``all_qualities``).

    Sorted by instrument, code name, validity start and id: the listing order of
    ``Caldb.list`` and ``RemoteCaldb.list``.
    """
    out = [
        e
        for e in entries
        if (all_qualities or e.quality == 0)
        and (instrument is None or e.instrument == instrument.strip().upper())
        and (codename is None or e.codename == codename.strip().upper())
        and (telescope is None or names_match(e.telescope, telescope))
        and (detector is None or names_match(e.detector, detector))
    ]
    return sorted(out, key=lambda e: (e.instrument, e.codename, e.valid_from, e.id or 0))


def _sort_key(e: CaldbEntry) -> tuple[_dt.datetime, int, int]:
    # Newest validity start first; on a tie the most recently registered entry wins.
    return (e.valid_from, e.registered_version or 0, e.id or 0)


def choose_entry(
    entries: Iterable[CaldbEntry],
    codename: str,
    *,
    instrument: str,
    time: object,
    telescope: str | None = None,
    detector: str | None = "NONE",
    filter: str | None = "NONE",
    boundary_values: Mapping[str, object] | None = None,
) -> CaldbEntry:
    """Pick the calibration file that HEASARC's rules select.

    Rules: same code name and instrument (and telescope when given); ``NONE`` detector or
    filter on either side matches anything; quality 0 only; every boundary on a parameter in
    ``boundary_values`` holds; among the rest, the newest validity start at or before
    ``time``; a tie on validity start goes to the most recently registered entry.

    Raises
    ------
    CalibrationNotFoundError
        With a message that says which rule removed the last candidates.
    """
    when = to_utc(time, what="observation time")
    values = dict(boundary_values or {})
    code = codename.strip().upper()
    stages: list[tuple[str, int]] = []

    pool = [
        e
        for e in entries
        if e.codename.upper() == code
        and e.instrument.upper() == instrument.strip().upper()
        and (telescope is None or names_match(e.telescope, telescope))
    ]
    stages.append(("with this code name and instrument", len(pool)))
    pool = [e for e in pool if names_match(e.detector, detector) and names_match(e.filter, filter)]
    stages.append((f"for detector {detector or 'NONE'} and filter {filter or 'NONE'}", len(pool)))
    pool = [e for e in pool if e.quality == 0]
    stages.append(("with quality 0", len(pool)))
    pool = [e for e in pool if boundaries_hold(e.boundaries, values)]
    if values:
        bounds = ", ".join(f"{k.upper()}={v}" for k, v in values.items())
        stages.append((f"whose boundaries hold for {bounds}", len(pool)))
    earliest = min((e.valid_from for e in pool), default=None)
    pool = [e for e in pool if e.valid_from <= when]
    stages.append((f"valid at or before {when.isoformat()}", len(pool)))

    if not pool:
        what = f"{code} for {telescope + '/' if telescope else ''}{instrument.upper()}"
        trail = "; ".join(f"{n} {label}" for label, n in stages)
        hint = ""
        if earliest is not None and earliest > when:
            hint = f" (the earliest candidate is valid from {earliest.isoformat()})"
        raise CalibrationNotFoundError(f"no calibration file {what}: {trail}{hint}")
    return max(pool, key=_sort_key)
