"""Calibration history read back from the QC history products, for the calibration pages.

Two sources, one shape (:class:`Candidate`):

- the nightly master calibration (COLIBRI cameras): the newest ``QCHIST`` table of each
  camera, one row per candidate master and night (level, noise, fraction of deviant pixels,
  passed, reason); the candidate's image is its ``MASTER-PREVIEW`` product and the master
  in use when it was judged is the previous promoted candidate of the same type and filter;
- the calibration promotion gate (EIC and any CALDB code): the newest ``CALQCH`` table of
  each code, one row per candidate and QC figure, with the current file's value.

The tables are read once per file version (cached on path and modification time).
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func
from sqlmodel import Session, col, select
from svomflow.products.database import ProductRow

__all__ = ["Candidate", "Combo", "candidates", "combos", "master_in_use", "preview_of"]


@dataclass(frozen=True)
class Combo:
    """What a history is kept for: an instrument (camera), a calibration type, a filter."""

    instrument: str
    caltype: str
    filter: str
    source: str  # "nightly" (QCHIST) or "gate" (CALQCH)

    @property
    def key(self) -> str:
        """Identifier of the combination in URLs."""
        return f"{self.source}:{self.instrument}:{self.caltype}:{self.filter}"

    @classmethod
    def parse(cls, key: str) -> Combo:
        """Return the combination an URL key names."""
        source, instrument, caltype, filt = key.split(":", 3)
        return cls(instrument, caltype, filt, source)


@dataclass(frozen=True)
class Candidate:
    """One calibration candidate as judged: its QC figures, verdict and reason."""

    combo: Combo
    time: _dt.datetime
    night: str
    key: str  # the nightly group, or the candidate file's checksum
    figures: dict[str, float]
    current: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    promoted: bool = False
    reason: str = ""
    file: str = ""


def _utc(text: str) -> _dt.datetime:
    t = _dt.datetime.fromisoformat(text.strip())
    return t.replace(tzinfo=_dt.UTC) if t.tzinfo is None else t.astimezone(_dt.UTC)


def _text(v: object) -> str:
    """Return a table cell as text ('' for a masked, i.e. empty, cell)."""
    return "" if np.ma.is_masked(v) else str(v).strip()


def _finite(v: object) -> float | None:
    if np.ma.is_masked(v):
        return None
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _newest(session: Session, type_code: str) -> list[ProductRow]:
    """Return the newest current product of ``type_code`` per instrument code (a whole history)."""
    newest = (
        select(ProductRow.instrument, func.max(ProductRow.created).label("created"))
        .where(ProductRow.type_code == type_code)
        .where(ProductRow.superseded == False)  # noqa: E712 - SQL expression
        .where(ProductRow.checksum != "pending")
        .group_by(ProductRow.instrument)
        .subquery()
    )
    stmt = select(ProductRow).join(
        newest,
        (col(ProductRow.instrument) == newest.c.instrument)
        & (col(ProductRow.created) == newest.c.created),
    )
    return [r for r in session.exec(stmt.where(ProductRow.type_code == type_code))]


@functools.lru_cache(maxsize=64)
def _read_nightly(path: str, mtime: float) -> tuple[Candidate, ...]:
    from astropy.table import Table

    out = []
    for r in Table.read(path, hdu="QCHIST"):
        combo = Combo(
            _text(r["CAMERA"]), _text(r["TYPE"]).upper(), _text(r["FILTER"]) or "NONE", "nightly"
        )
        figures = {
            name.lower(): v
            for name in ("LEVEL", "NOISE", "FRACTION")
            if (v := _finite(r[name])) is not None
        }
        figures["n_frames"] = float(r["NFRAMES"])
        out.append(
            Candidate(
                combo=combo,
                time=_utc(_text(r["DATE_OBS"])),
                night=_text(r["NIGHT"]),
                key=_text(r["GROUP"]),
                figures=figures,
                promoted=bool(r["PASSED"]),
                reason=_text(r["REASON"]),
            )
        )
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _read_gate(path: str, mtime: float) -> tuple[Candidate, ...]:
    from astropy.table import Table

    by_candidate: dict[tuple[str, str, str, str], Candidate] = {}
    for r in Table.read(path, hdu="CALQCH"):
        combo = Combo(
            _text(r["INSTRUME"]), _text(r["CODENAME"]), _text(r["DETNAM"]) or "NONE", "gate"
        )
        k = (combo.instrument, combo.caltype, combo.filter, _text(r["CANDIDATE"]))
        c = by_candidate.get(k)
        if c is None:
            t = _utc(_text(r["TIME"]))
            c = Candidate(
                combo=combo,
                time=t,
                night=t.date().isoformat(),
                key=_text(r["CANDIDATE"]),
                figures={},
                promoted=bool(r["PROMOTED"]),
                reason=_text(r["REASON"]),
                file=_text(r["FILE"]),
            )
            by_candidate[k] = c
        name = _text(r["FIGURE"])
        if name and (v := _finite(r["VALUE"])) is not None:
            c.figures[name] = v
            c.units[name] = _text(r["UNIT"])
            if (cur := _finite(r["CURRENT"])) is not None:
                c.current[name] = cur
    return tuple(by_candidate.values())


def _all(session: Session) -> list[Candidate]:
    out: list[Candidate] = []
    for type_code, reader in (("QCHIST", _read_nightly), ("CALQCH", _read_gate)):
        for row in _newest(session, type_code):
            p = Path(row.path)
            try:
                out.extend(reader(str(p), p.stat().st_mtime))
            except (OSError, KeyError, ValueError):
                continue  # a history being rewritten or of an older layout: skipped
    return out


def combos(session: Session) -> list[Combo]:
    """Return every (instrument, type, filter) with a history, sorted."""
    return sorted(
        {c.combo for c in _all(session)},
        key=lambda c: (c.instrument, c.caltype, c.filter, c.source),
    )


def candidates(
    session: Session, combo: Combo, start: _dt.datetime | None, end: _dt.datetime | None
) -> list[Candidate]:
    """Return the candidates of ``combo`` judged in ``[start, end]``, oldest first."""
    out = [
        c
        for c in _all(session)
        if c.combo == combo
        and (start is None or c.time >= start)
        and (end is None or c.time <= end)
    ]
    return sorted(out, key=lambda c: c.time)


def master_in_use(history: Sequence[Candidate], candidate: Candidate) -> Candidate | None:
    """Return the promoted candidate that was the master when ``candidate`` was judged."""
    earlier = [c for c in history if c.promoted and c.time < candidate.time]
    # a nightly group (same binning, exposure) keeps its key from night to night
    same_group = [c for c in earlier if c.key == candidate.key]
    pool = same_group or earlier
    return max(pool, key=lambda c: c.time) if pool else None


def preview_of(session: Session, candidate: Candidate, type_code: str) -> ProductRow | None:
    """Return the preview product (``MASTER-PREVIEW``, ``QC-PREVIEW``) of a nightly candidate."""
    rows = session.exec(
        select(ProductRow)
        .where(ProductRow.type_code == type_code)
        .where(ProductRow.obs_id == candidate.night)
        .where(col(ProductRow.instrument).startswith(candidate.combo.instrument))
        .where(ProductRow.superseded == False)  # noqa: E712 - SQL expression
        .where(ProductRow.checksum != "pending")
    )
    for r in rows:
        if (r.provenance or {}).get("content", {}).get("group") == candidate.key:
            return r
    return None
