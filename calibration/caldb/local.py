"""The local CALDB: an append-only SQLite index over a HEASARC-style file tree.

Layout under the root::

    data/<telescope>/<instrument>/<class>/<file>   registered files (read-only copies)
    index/caldb.sqlite                             the index (append-only tables)
    index/v000042.json                             immutable snapshot of index version 42
    index/latest.json                              the newest snapshot (for HTTP mirrors)
    orphans/<time>-<file>                          files a killed registration left (set aside)

Every change (a registration, a quality change) creates a new index version. The tables
are append-only (SQLite triggers refuse UPDATE and DELETE), so the index as it was at
version N can always be rebuilt: an entry belongs to version N if it was registered at or
before N, and its quality is the last quality recorded at or before N. Writers take SQLite's
write lock (``BEGIN IMMEDIATE``) so concurrent registrations from several processes are
serialised and none is lost.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from svomflow.atomic import atomic_write_bytes, sha256_file
from svomflow.calibration.caldb.boundaries import Boundary, normalize_boundaries
from svomflow.calibration.caldb.entry import (
    CaldbEntry,
    iso_utc,
    normalize_name,
    to_utc,
)
from svomflow.calibration.caldb.selection import choose_entry, filter_entries
from svomflow.errors import CalibrationNotFoundError, InputDataError
from svomflow.paths import safe_component, safe_join
from svomflow.products.lease import owner_alive, owner_id

__all__ = ["Caldb"]

#: The index version a registered file's name carries (``..._20261123_v7.fits``).
_VERSION_TAG = re.compile(r"_\d{8}_v(\d+)(?=\.|$)")

UTC = _dt.UTC

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    version     INTEGER PRIMARY KEY,
    created_at  TEXT NOT NULL,
    action      TEXT NOT NULL,
    entry_id    INTEGER
);
CREATE TABLE IF NOT EXISTS entries (
    id                  INTEGER PRIMARY KEY,
    registered_version  INTEGER NOT NULL UNIQUE REFERENCES versions(version),
    telescope   TEXT NOT NULL,
    instrument  TEXT NOT NULL,
    detector    TEXT NOT NULL,
    filter      TEXT NOT NULL,
    codename    TEXT NOT NULL,
    cal_class   TEXT NOT NULL,
    boundaries  TEXT NOT NULL,
    valid_from  TEXT NOT NULL,
    relpath     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    extension   INTEGER NOT NULL,
    description TEXT NOT NULL,
    registered_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_lookup ON entries (instrument, codename);
CREATE TABLE IF NOT EXISTS quality_events (
    version   INTEGER PRIMARY KEY REFERENCES versions(version),
    entry_id  INTEGER NOT NULL REFERENCES entries(id),
    quality   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS quality_by_entry ON quality_events (entry_id, version);
"""
_TABLES = ("versions", "entries", "quality_events")


def _immutable_triggers() -> str:
    out = []
    for table in _TABLES:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'the CALDB index is append-only'); END;"
            )
    return "\n".join(out)


class Caldb:
    """A local calibration database (HEASARC CALDB rules, immutable index versions).

    Parameters
    ----------
    root
        Directory of the CALDB tree; created if needed.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        (self.root / "index").mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "index" / "caldb.sqlite"
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA + _immutable_triggers())
        if self._snapshot_version() > self.index_version:
            with self._write() as con:
                self._repair(con)

    def __repr__(self) -> str:
        return f"Caldb(root={str(self.root)!r})"

    # -- connection and transactions ------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN ourselves; the timeout makes a writer wait for
        # another process's write lock instead of failing at once.
        con = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=60000")
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _snapshot_version(self) -> int:
        """Return the version ``index/latest.json`` claims (0 when there is none)."""
        try:
            return int(
                json.loads((self.root / "index" / "latest.json").read_bytes())["index_version"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _repair(
        self, con: sqlite3.Connection, data_dir: Path | None = None, keep: Path | None = None
    ) -> None:
        """Remove what a writer killed inside its transaction left on disk (under the write lock).

        A transaction that never committed may have left the snapshots of its version
        (``latest.json`` ahead of the index, which HTTP mirrors would serve), a staged copy
        (``.tmp-*`` of a dead process) and, in ``data_dir``, the placed file of its version: a
        later registration that draws the same version number would find that name taken by
        other bytes and be refused. None of them is referenced by the committed index: the
        snapshots and staged copies are removed, a placed file is moved to ``orphans/``
        (``keep``: the file being registered in place, never moved).
        """
        (committed,) = con.execute("SELECT COALESCE(MAX(version), 0) FROM versions").fetchone()
        committed = int(committed)
        index = self.root / "index"
        for snap in index.glob("v*.json"):
            if snap.stem[1:].isdigit() and int(snap.stem[1:]) > committed:
                snap.unlink(missing_ok=True)
        if self._snapshot_version() > committed:
            if committed:
                self._write_snapshot(con, committed)
            else:
                (index / "latest.json").unlink(missing_ok=True)
        if data_dir is None or not data_dir.is_dir():
            return
        for f in data_dir.iterdir():
            if f.name.startswith(".tmp-") and "#" in f.name:
                writer = f.name.rsplit("#", 1)[1].replace("@", ":")
                if owner_alive(writer) is False:
                    f.unlink(missing_ok=True)
                continue
            tags = _VERSION_TAG.findall(f.name)
            if tags and int(tags[-1]) > committed and f.is_file() and f != keep:
                # set aside, not deleted: the bytes stay for whoever wants to look
                aside = self.root / "orphans"
                aside.mkdir(exist_ok=True)
                stamp = _dt.datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
                f.replace(aside / f"{stamp}-{f.name}")

    @staticmethod
    def _new_version(con: sqlite3.Connection, action: str, entry_id: int | None) -> int:
        (current,) = con.execute("SELECT COALESCE(MAX(version), 0) FROM versions").fetchone()
        version = int(current) + 1
        con.execute(
            "INSERT INTO versions (version, created_at, action, entry_id) VALUES (?, ?, ?, ?)",
            (version, _dt.datetime.now(UTC).isoformat(), action, entry_id),
        )
        return version

    # -- reading ----------------------------------------------------------------------------
    @property
    def index_version(self) -> int:
        """The newest index version (0 for an empty CALDB)."""
        with self._connect() as con:
            (v,) = con.execute("SELECT COALESCE(MAX(version), 0) FROM versions").fetchone()
        return int(v)

    def _entries_at(
        self,
        con: sqlite3.Connection,
        version: int | None,
        where: str = "",
        args: Sequence[Any] = (),
    ) -> tuple[int, list[CaldbEntry]]:
        (latest,) = con.execute("SELECT COALESCE(MAX(version), 0) FROM versions").fetchone()
        if version is None:
            version = int(latest)
        elif not 0 <= int(version) <= int(latest):
            raise CalibrationNotFoundError(
                f"CALDB index version {version} does not exist (newest is {latest})"
            )
        version = int(version)
        rows = con.execute(
            "SELECT e.*, (SELECT q.quality FROM quality_events q WHERE q.entry_id = e.id "
            "AND q.version <= ? ORDER BY q.version DESC LIMIT 1) AS quality "
            f"FROM entries e WHERE e.registered_version <= ? {where} ORDER BY e.id",
            (version, version, *args),
        ).fetchall()
        return version, [self._row_to_entry(r, version) for r in rows]

    def _row_to_entry(self, r: sqlite3.Row, version: int) -> CaldbEntry:
        return CaldbEntry(
            id=int(r["id"]),
            telescope=r["telescope"],
            instrument=r["instrument"],
            detector=r["detector"],
            filter=r["filter"],
            codename=r["codename"],
            boundaries=normalize_boundaries(json.loads(r["boundaries"])),
            valid_from=to_utc(r["valid_from"]),
            quality=int(r["quality"]),
            path=self.root / r["relpath"],
            sha256=r["sha256"],
            registered_at=to_utc(r["registered_at"]),
            index_version=version,
            registered_version=int(r["registered_version"]),
            relpath=r["relpath"],
            extension=int(r["extension"]),
            cal_class=r["cal_class"],
            description=r["description"],
        )

    def entries(self, index_version: int | None = None) -> list[CaldbEntry]:
        """Return every entry of an index version (all qualities), oldest first."""
        with self._connect() as con:
            return self._entries_at(con, index_version)[1]

    def get(self, entry_id: int, *, index_version: int | None = None) -> CaldbEntry:
        """Return one entry as it is in an index version."""
        with self._connect() as con:
            _, found = self._entries_at(con, index_version, "AND e.id = ?", (int(entry_id),))
        if not found:
            raise CalibrationNotFoundError(f"no CALDB entry {entry_id} in that index version")
        return found[0]

    def list(
        self,
        *,
        instrument: str | None = None,
        codename: str | None = None,
        telescope: str | None = None,
        detector: str | None = None,
        all_qualities: bool = False,
        index_version: int | None = None,
    ) -> list[CaldbEntry]:
        """Return the entries that match the given names (quality 0 unless ``all_qualities``).

        Sorted by instrument, code name and validity start.
        """
        return filter_entries(
            self.entries(index_version),
            instrument=instrument,
            codename=codename,
            telescope=telescope,
            detector=detector,
            all_qualities=all_qualities,
        )

    # -- selection ----------------------------------------------------------------------------
    def select(
        self,
        codename: str,
        *,
        instrument: str,
        time: object,
        telescope: str | None = None,
        detector: str = "NONE",
        filter: str = "NONE",
        index_version: int | None = None,
        verify: bool = True,
        **boundary_values: object,
    ) -> CaldbEntry:
        """Select the calibration file for an observation (HEASARC rules, see ``choose_entry``).

        Parameters
        ----------
        codename
            Calibration code name (``CAL_CNAM``).
        instrument, telescope, detector, filter
            Index names; ``NONE`` matches any.
        time
            Observation (start) time: astropy Time, datetime (naive = UTC) or ISO string.
        index_version
            Select in this index version instead of the newest (reproduces an old context).
        verify
            Check the selected file's SHA-256 against the one recorded at registration.
        **boundary_values
            Values of boundary parameters, e.g. ``energ=50.0`` or ``mode="FAST"``.

        Raises
        ------
        CalibrationNotFoundError
            When nothing satisfies the rules (the message says which rule removed the last
            candidates).
        CalibrationIntegrityError
            When the selected file is missing or was changed after registration.
        """
        with self._connect() as con:
            _, pool = self._entries_at(
                con,
                index_version,
                "AND e.instrument = ? AND e.codename = ?",
                (instrument.strip().upper(), codename.strip().upper()),
            )
        entry = choose_entry(
            pool,
            codename,
            instrument=instrument,
            time=time,
            telescope=telescope,
            detector=detector,
            filter=filter,
            boundary_values=boundary_values,
        )
        return entry.verify() if verify else entry

    # -- writing ------------------------------------------------------------------------------
    def register(
        self,
        path: str | os.PathLike[str],
        *,
        telescope: str,
        instrument: str,
        codename: str,
        valid_from: object,
        detector: str = "NONE",
        filter: str = "NONE",
        boundaries: Sequence[str | Boundary] | Mapping[str, object] | None = (),
        quality: int = 0,
        description: str = "",
        cal_class: str = "BCF",
        extension: int | None = None,
        copy: bool = True,
    ) -> CaldbEntry:
        """Add a calibration file to the CALDB and return its entry (a new index version).

        The file is checksummed and copied (``copy=True``) or hard-linked (``copy=False``;
        falls back to a copy across file systems) into
        ``data/<telescope>/<instrument>/<class>/`` under a name of its own,
        ``<stem>_<valid-from date>_v<index version><suffix>``
        (``candidate_bias_DDRAGOmB_1x1_20261123_v7.fits``), and made read-only: no later
        registration can reuse the path, so an old index version always resolves to the
        same bytes. A file already inside that tree is registered in place.

        Raises
        ------
        InputDataError
            If the file does not exist, or its target path holds other bytes.
        ValueError
            On an invalid name, boundary, quality or time.
        """
        src = Path(path).expanduser()
        if not src.is_file():
            raise InputDataError(f"calibration file not found: {src}")
        tel = normalize_name(telescope, what="telescope")
        ins = normalize_name(instrument, what="instrument")
        code = normalize_name(codename, what="code name")
        det = normalize_name(detector, what="detector", wildcard=True)
        flt = normalize_name(filter, what="filter", wildcard=True)
        cls = normalize_name(cal_class, what="calibration class")
        if cls not in ("BCF", "CPF"):
            raise ValueError(f"calibration class must be BCF or CPF, not {cal_class!r}")
        bounds = normalize_boundaries(boundaries)
        start = to_utc(valid_from, what="valid_from")
        if isinstance(quality, bool) or not isinstance(quality, int) or quality < 0:
            raise ValueError(f"quality must be a non-negative integer, not {quality!r}")
        if len(description) > 70:
            raise ValueError("description is longer than the 70 characters of CAL_DESC")
        xno = _default_extension(src, code) if extension is None else int(extension)

        sha = sha256_file(src)
        size = src.stat().st_size
        dest_dir = safe_join(
            self.root,
            "data",
            safe_component(tel.lower(), what="telescope"),
            safe_component(ins.lower(), what="instrument"),
            cls.lower(),
        )
        dest_dir.mkdir(parents=True, exist_ok=True)
        now = _dt.datetime.now(UTC)

        with self._stage(src.resolve(), dest_dir, copy=copy) as place, self._write() as con:
            self._repair(con, dest_dir, keep=src.resolve())  # a file registered in place stays
            version = self._new_version(con, "register", None)
            rel = place(f"{start:%Y%m%d}_v{version}", sha)
            if con.execute(
                "SELECT 1 FROM entries WHERE relpath = ? AND sha256 != ?", (rel, sha)
            ).fetchone():
                raise InputDataError(
                    f"refusing to register {src.name}: {rel} is registered with other bytes"
                    " (registered files are immutable)"
                )
            cur = con.execute(
                "INSERT INTO entries (registered_version, telescope, instrument, detector, filter,"
                " codename, cal_class, boundaries, valid_from, relpath, sha256, size, extension,"
                " description, registered_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    version,
                    tel,
                    ins,
                    det,
                    flt,
                    code,
                    cls,
                    json.dumps([b.to_string() for b in bounds]),
                    iso_utc(start),
                    rel,
                    sha,
                    size,
                    xno,
                    description,
                    now.isoformat(),
                ),
            )
            entry_id = int(cur.lastrowid or 0)
            con.execute(
                "INSERT INTO quality_events (version, entry_id, quality) VALUES (?, ?, ?)",
                (version, entry_id, quality),
            )
            self._write_snapshot(con, version)
            _, found = self._entries_at(con, version, "AND e.id = ?", (entry_id,))
        return found[0]

    @contextlib.contextmanager
    def _stage(self, src: Path, dest_dir: Path, *, copy: bool) -> Iterator[Any]:
        """Stage ``src`` beside its destination; yield ``place(tag, sha) -> relpath``.

        ``place`` links the staged copy to ``<stem>_<tag><suffix>`` (``os.link`` fails if the
        name exists: an atomic "create, never overwrite"); a name that holds other bytes is
        refused. If the block fails after placing, the new name is removed again, so a
        rolled-back registration leaves no file behind.
        """
        data_root = self.root / "data"
        if data_root in src.parents:  # already in the tree: registered where it is
            yield lambda tag, sha: src.relative_to(self.root).as_posix()
            return
        name = safe_component(src.name, what="calibration file name")
        stem, suffix = _split_name(name)
        # the writer's identity in the name: a copy staged by a killed process is recognised
        # (and removed) by the next registration in this folder
        writer = owner_id().replace(":", "@")
        fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{name}.", suffix=f"#{writer}", dir=dest_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        created: list[Path] = []

        def place(tag: str, sha: str) -> str:
            final = dest_dir / f"{stem}_{tag}{suffix}"
            try:
                os.link(tmp, final)
                created.append(final)
            except FileExistsError:
                if sha256_file(final) != sha:
                    raise InputDataError(
                        f"refusing to register {src.name}: {final.relative_to(self.root)} "
                        "already holds a different file (registered files are immutable)"
                    ) from None
            return final.relative_to(self.root).as_posix()

        try:
            self._copy_into(src, tmp, copy=copy)
            yield place
        except BaseException:
            for f in created:
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @staticmethod
    def _copy_into(src: Path, tmp: Path, *, copy: bool) -> None:
        """Make ``tmp`` a read-only copy of ``src`` (or a hard link when ``copy`` is False)."""
        if not copy:
            tmp.unlink()
            try:
                os.link(src, tmp)
                return
            except OSError:
                pass
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o444)

    def set_quality(self, entry: CaldbEntry | int, quality: int) -> CaldbEntry:
        """Record a new quality for an entry (a new index version); return the updated entry."""
        if isinstance(quality, bool) or not isinstance(quality, int) or quality < 0:
            raise ValueError(f"quality must be a non-negative integer, not {quality!r}")
        entry_id = entry.id if isinstance(entry, CaldbEntry) else int(entry)
        if entry_id is None:
            raise ValueError("a file given by path override is not in the index")
        with self._write() as con:
            self._repair(con)
            if con.execute("SELECT 1 FROM entries WHERE id = ?", (entry_id,)).fetchone() is None:
                raise CalibrationNotFoundError(f"no CALDB entry {entry_id}")
            version = self._new_version(con, f"quality={quality}", entry_id)
            con.execute(
                "INSERT INTO quality_events (version, entry_id, quality) VALUES (?, ?, ?)",
                (version, entry_id, quality),
            )
            self._write_snapshot(con, version)
            _, found = self._entries_at(con, version, "AND e.id = ?", (entry_id,))
        return found[0]

    def supersede(self, entry: CaldbEntry | int, quality: int = 5) -> CaldbEntry:
        """Mark an entry as no longer to be used (non-zero quality; HEASARC uses 5 for bad)."""
        if quality == 0:
            raise ValueError("superseding needs a non-zero quality")
        return self.set_quality(entry, quality)

    # -- snapshots and export -------------------------------------------------------------------
    def snapshot(self, index_version: int | None = None) -> dict[str, Any]:
        """Return an index version as a JSON-ready dict (what HTTP mirrors download)."""
        with self._connect() as con:
            version, entries = self._entries_at(con, index_version)
        return _snapshot_dict(version, entries)

    def _write_snapshot(self, con: sqlite3.Connection, version: int) -> None:
        # Written inside the write transaction so snapshots appear in version order.
        _, entries = self._entries_at(con, version)
        data = json.dumps(_snapshot_dict(version, entries), indent=1).encode()
        atomic_write_bytes(self.root / "index" / f"v{version:06d}.json", data)
        atomic_write_bytes(self.root / "index" / "latest.json", data)

    def export_indx(
        self,
        path: str | os.PathLike[str],
        *,
        index_version: int | None = None,
        telescope: str | None = None,
        instrument: str | None = None,
    ) -> Path:
        """Write a HEASARC calibration index file (FITS ``CIF`` table) for HEASoft tools.

        ``CAL_DIR`` is relative to this CALDB root (HEASoft's ``$CALDB``). All qualities are
        written, as HEASARC does, so superseded files stay visible with ``CAL_QUAL`` 5.
        """
        from svomflow.calibration.caldb.indx import write_indx

        version = self.index_version if index_version is None else int(index_version)
        entries = [
            e
            for e in self.entries(version)
            if (telescope is None or e.telescope == telescope.strip().upper())
            and (instrument is None or e.instrument == instrument.strip().upper())
        ]
        return write_indx(path, entries, index_version=version)

    def export_heasoft(self, *, index_version: int | None = None) -> builtins.list[Path]:
        """Write the per-instrument indices and ``caldb.config`` that HEASoft tools look up.

        Creates ``data/<telescope>/<instrument>/caldb.indx`` for every instrument and
        ``software/tools/caldb.config`` (one line per instrument: telescope, instrument,
        index device and directory, index file, data device and directory), so that with
        ``CALDB=<root>`` and ``CALDBCONFIG=<root>/software/tools/caldb.config`` quzcif and
        the other CALDB-aware tools find our files. Returns the files written.
        """
        from svomflow.calibration.caldb.indx import write_indx

        version = self.index_version if index_version is None else int(index_version)
        groups: dict[tuple[str, str], list[CaldbEntry]] = {}
        for e in self.entries(version):
            groups.setdefault((e.telescope, e.instrument), []).append(e)
        written, lines = [], []
        for (tel, ins), entries in sorted(groups.items()):
            rel = f"data/{tel.lower()}/{ins.lower()}"
            written.append(
                write_indx(self.root / rel / "caldb.indx", entries, index_version=version)
            )
            lines.append(f"{tel} {ins} CALDB {rel} caldb.indx CALDB {rel}")
        config = self.root / "software" / "tools" / "caldb.config"
        written.append(atomic_write_bytes(config, ("\n".join(lines) + "\n").encode()))
        return written


def _snapshot_dict(version: int, entries: Sequence[CaldbEntry]) -> dict[str, Any]:
    items = []
    for e in entries:
        d = e.to_dict()
        d.pop("path")  # absolute paths are machine-specific; relpath is what mirrors use
        items.append(d)
    return {"format": "svomflow-caldb-snapshot/1", "index_version": version, "entries": items}


def _split_name(name: str) -> tuple[str, str]:
    for suffix in (".fits.gz", ".fits.fz", ".fits", ".fit", ".fts"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    p = Path(name)
    return p.stem, p.suffix


def _default_extension(path: Path, codename: str) -> int:
    """Return the HDU holding ``codename`` (by CCNM0001 or EXTNAME), else 1 or 0 (no extension)."""
    with open(path, "rb") as fh:
        if fh.read(9) != b"SIMPLE  =":
            return 0  # not an (uncompressed) FITS file
    try:
        from astropy.io import fits

        with fits.open(path, memmap=False) as hdul:
            for i, hdu in enumerate(hdul):
                hdr = hdu.header
                if str(hdr.get("CCNM0001", "")).upper() == codename or (
                    i > 0 and str(hdr.get("EXTNAME", "")).upper() == codename
                ):
                    return i
            return 1 if len(hdul) > 1 else 0
    except (OSError, ValueError):
        return 0
