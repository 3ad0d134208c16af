"""Publishing products: atomic write, versioning, idempotence and the database record.

A product is identified by (type code, instrument, observation id) and versioned: re-running
a flow on the same inputs with the same configuration, calibration and software returns the
existing version (no new row, no rewrite); anything else makes version N+1 and marks the
previous one superseded, which stays on disk and in the database.

Products are published in batches (all products of one step call): one transaction reserves
a version row (checksum ``pending``, with this process as owner and a lease) for each, every
file is written to a temporary file and fsynced, all are renamed into place with one fsync
per directory, and one transaction records them, writes their announcements to the outbox
(:mod:`svomflow.products.announcements`) and supersedes the older versions. A run
killed in between leaves reserved rows whose lease the next use of the store finds expired
(:meth:`ProductStore.reconcile`): their rows, files and temporary files are removed, so no
listing ever shows a version without its file.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from astropy.io import fits
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, func, select
from svomflow.atomic import TMP_PREFIX, AtomicBatch, sha256_file
from svomflow.paths import safe_join
from svomflow.products import announcements
from svomflow.products.database import (
    OutboxRow,
    ProcessingStatus,
    ProductRow,
    make_engine,
    select_products,
)
from svomflow.products.lease import expired, keep_alive, lease_expiry, owner_id
from svomflow.products.naming import product_filename
from svomflow.products.provenance import Provenance

__all__ = [
    "ABANDONED",
    "STATES",
    "FitsContent",
    "LazyFits",
    "ProductRef",
    "ProductStore",
    "PublishRequest",
]

STATES = ("received", "running", "done", "failed", "superseded")
_PENDING = "pending"

ABANDONED = "abandoned"
# how often one process reconciles one database (each ProductStore() asks)
_RECONCILE_EVERY = 30.0

HDUs = Sequence[fits.PrimaryHDU | fits.ImageHDU | fits.BinTableHDU]
Card = tuple[str, Any, str]


class FitsContent(Protocol):
    """FITS content that writes itself (a catalogue ``FitsModel``), primary cards set last."""

    def write(self, path: Path, primary_cards: Sequence[Card]) -> None:
        """Write the file to ``path`` with ``primary_cards`` set on the primary header."""


@dataclass(frozen=True)
class LazyFits:
    """FITS content built only when it is written (after the batch's file names are known).

    ``build`` returns HDUs or a :class:`FitsContent`.
    """

    build: Callable[[], HDUs | FitsContent]


Content = HDUs | LazyFits | Callable[[Path], None]


@dataclass
class PublishRequest:
    """One product to publish: its content, what it is, and its provenance.

    ``content`` is FITS HDUs (a PrimaryHDU first; provenance keywords are added to it),
    :class:`LazyFits`, or a callable that writes the file (PNG, JSON, HTML) to the path it
    is given. ``type_code``, ``instrument`` and ``obs_id`` build the file name and folder
    (checked so that header-derived values cannot escape the output root).
    """

    content: Content
    type_code: str
    instrument: str
    obs_id: str
    provenance: Provenance
    ext: str = "fits"


@dataclass
class _Slot:
    """The reservation of one request: its row, version and path, or the existing product."""

    row_id: str
    version: int
    path: Path
    existing: bool  # the identical product exists intact: nothing to write
    new_row: bool  # a pending row of ours (removed if the batch fails)


@dataclass(frozen=True)
class ProductRef:
    """A small reference to a recorded product (what Prefect tasks return, not arrays)."""

    id: str
    type_code: str
    instrument: str
    obs_id: str
    version: int
    path: str
    checksum: str
    created_new: bool


def _ref(row: ProductRow, created: bool) -> ProductRef:
    return ProductRef(
        id=row.id,
        type_code=row.type_code,
        instrument=row.instrument,
        obs_id=row.obs_id,
        version=row.version,
        path=row.path,
        checksum=row.checksum,
        created_new=created,
    )


def _provenance_cards(prov: Provenance, type_code: str, version: int) -> list[tuple[str, Any, str]]:
    cards: list[tuple[str, Any, str]] = [
        ("PRODTYPE", type_code, "svomflow product type code"),
        ("PRODVER", version, "product version"),
        ("SOFTVER", prov.software[:68], "software that made the product"),
        ("CFGHASH", prov.config_hash(), "hash of the merged configuration"),
        ("FLOWRUN", prov.flow_run_id or "none", "Prefect flow run id"),
        ("NINPUTS", len(prov.inputs), "number of input files"),
    ]
    for i, ref in enumerate(prov.inputs[:99], start=1):
        name = Path(ref.path).name[:68]
        # value + comment must fit one 80-character card (astropy warns, then truncates)
        cards.append((f"INFIL{i:02d}"[:8], name, "input file"[: max(0, 65 - len(name))]))
    for i, cal in enumerate(prov.calibration[:99], start=1):
        cards.append(
            (
                f"CALFL{i:02d}"[:8],
                Path(cal.path).name[:68],
                f"calibration {cal.codename}"[: max(0, 65 - len(Path(cal.path).name[:68]))],
            )
        )
    return cards


class ProductStore:
    """Write products under an output root and record them in the products database."""

    def __init__(self, out_root: str | os.PathLike[str], database_url: str | None = None):
        self.out_root = Path(out_root)
        self.engine = make_engine(database_url)
        self._maybe_reconcile()

    # --- publishing -----------------------------------------------------------------
    def publish(
        self,
        content: Content,
        *,
        type_code: str,
        instrument: str,
        obs_id: str,
        provenance: Provenance,
        ext: str = "fits",
    ) -> ProductRef:
        """Write one product atomically and record it; idempotent for identical provenance.

        See :class:`PublishRequest` for the parameters and :meth:`publish_many`.
        """
        request = PublishRequest(content, type_code, instrument, obs_id, provenance, ext)
        return self.publish_many([request])[0]

    def publish_many(
        self,
        requests: Sequence[PublishRequest],
        *,
        before_write: Callable[[Sequence[Path]], None] | None = None,
    ) -> builtins.list[ProductRef]:
        """Publish a batch of products: one reservation, one rename pass, one record.

        Every file is written to a fsynced temporary file, the files are renamed into place
        with one fsync per directory, then one transaction records them all. Products whose
        identical version exists intact are returned as they are (``created_new`` false).

        Parameters
        ----------
        requests
            The products, in order.
        before_write
            Called with the final path of every request (same order) once versions are
            reserved and before any content is built (links between products of a batch).

        Returns
        -------
        list of ProductRef
            One reference per request, in order.
        """
        if not requests:
            return []
        slots = self._reserve_all(requests)
        try:
            if before_write is not None:
                before_write([slot.path for slot in slots])
            checksums = self._write_all(requests, slots)
            return self._finish(requests, slots, checksums)
        except BaseException:
            self._release([slot for slot in slots if slot.new_row or not slot.existing])
            raise

    def _reserve_all(self, requests: Sequence[PublishRequest]) -> builtins.list[_Slot]:
        """Reserve every request, waiting for products another live process is writing."""
        slots: dict[int, _Slot] = {}
        deadline = time.monotonic() + 120.0
        attempt = 0
        while True:
            attempt += 1
            todo = [i for i in range(len(requests)) if i not in slots]
            slots.update(self._reserve(requests, todo))
            if len(slots) == len(requests):
                return [slots[i] for i in range(len(requests))]
            if time.monotonic() > deadline:
                self._release([s for s in slots.values() if s.new_row])
                busy = requests[min(set(range(len(requests))) - set(slots))]
                raise RuntimeError(
                    f"could not record {busy.type_code} for {busy.obs_id}: another run has "
                    "been writing the identical product for 120 s"
                )
            time.sleep(min(0.05 * attempt, 1.0))

    def _reserve(self, requests: Sequence[PublishRequest], todo: Sequence[int]) -> dict[int, _Slot]:
        """Claim version rows for ``todo`` in one transaction; busy ones are left out.

        A concurrent writer of the same version or identity makes the transaction fail;
        nothing is then reserved and the caller tries again.
        """
        out: dict[int, _Slot] = {}
        me, until = owner_id(), lease_expiry()
        with Session(self.engine) as s:
            claimed: dict[str, _Slot] = {}
            try:
                for i in todo:
                    req = requests[i]
                    identity = req.provenance.identity(
                        type_code=req.type_code, instrument=req.instrument, obs_id=req.obs_id
                    )
                    if identity in claimed:  # the same product twice in one batch: written once
                        dup = claimed[identity]
                        out[i] = _Slot(dup.row_id, dup.version, dup.path, True, False)
                        continue
                    slot = self._claim(s, req, identity, me, until)
                    if slot is not None:
                        out[i] = claimed[identity] = slot
                s.commit()
            except (IntegrityError, OperationalError):
                s.rollback()
                return {}
        if any(slot.new_row or not slot.existing for slot in out.values()):
            keep_alive(self.engine)
        return out

    def _claim(
        self, s: Session, req: PublishRequest, identity: str, me: str, until: datetime
    ) -> _Slot | None:
        """Return the slot of one request in an open session, None when someone writes it."""
        folder = safe_join(self.out_root, req.obs_id, req.instrument)
        existing = s.exec(select(ProductRow).where(ProductRow.identity == identity)).first()
        if existing is not None:
            if existing.checksum == _PENDING or existing.owner is not None:
                if not expired(existing.owner, existing.lease_until, existing.created):
                    return None  # a live run is writing it
                _remove_leftovers(Path(existing.path), keep=existing.checksum != _PENDING)
            elif Path(existing.path).is_file() and sha256_file(existing.path) == existing.checksum:
                return _Slot(existing.id, existing.version, Path(existing.path), True, False)
            # a dead writer's reservation, or a file lost or damaged: (re)write this version
            existing.owner, existing.lease_until = me, until
            s.add(existing)
            pending = existing.checksum == _PENDING
            return _Slot(existing.id, existing.version, Path(existing.path), False, pending)
        latest = s.exec(
            select(func.max(ProductRow.version)).where(
                ProductRow.type_code == req.type_code,
                ProductRow.instrument == req.instrument,
                ProductRow.obs_id == req.obs_id,
            )
        ).one()
        version = int(latest or 0) + 1
        path = folder / product_filename(
            req.type_code, req.instrument, req.obs_id, version, req.ext
        )
        row = ProductRow(
            type_code=req.type_code,
            instrument=req.instrument,
            obs_id=req.obs_id,
            version=version,
            identity=identity,
            path=str(path),
            checksum=_PENDING,
            flow_name=req.provenance.flow_name,
            flow_run_id=req.provenance.flow_run_id,
            owner=me,
            lease_until=until,
        )
        s.add(row)
        s.flush()  # the next request of the same product sees this version
        return _Slot(row.id, version, path, False, True)

    def _write_all(
        self, requests: Sequence[PublishRequest], slots: Sequence[_Slot]
    ) -> dict[int, str]:
        """Write the files of a batch atomically; return their checksums by request index."""
        checksums: dict[int, str] = {}
        written: set[str] = set()
        with AtomicBatch() as batch:
            for i, (req, slot) in enumerate(zip(requests, slots, strict=True)):
                if slot.existing or slot.row_id in written:
                    continue
                written.add(slot.row_id)
                req.provenance.finished = datetime.now(UTC)
                tmp = batch.write(slot.path, _writer(req, slot.version))
                checksums[i] = sha256_file(tmp)
            batch.commit()
        return checksums

    def _finish(
        self,
        requests: Sequence[PublishRequest],
        slots: Sequence[_Slot],
        checksums: dict[int, str],
    ) -> builtins.list[ProductRef]:
        # the announced key values are read from the renamed files before the transaction
        keys = {
            i: announcements.key_values_of(
                slots[i].path, requests[i].type_code, requests[i].instrument
            )
            for i in checksums
        }
        for attempt in range(8):
            try:
                refs = self._record(requests, slots, checksums, keys)
                break
            except OperationalError:
                # PostgreSQL breaks a deadlock by failing one transaction: try it again
                if attempt == 7:
                    raise
                time.sleep(0.05 * (attempt + 1))
        if checksums:  # committed: announce now if a bus is configured (best effort)
            announcements.send_soon(self.engine)
        return refs

    def _record(
        self,
        requests: Sequence[PublishRequest],
        slots: Sequence[_Slot],
        checksums: dict[int, str],
        keys: dict[int, announcements.KeyValues] | None = None,
    ) -> builtins.list[ProductRef]:
        """Record the written versions and supersede the older ones, in one transaction.

        Each new version's announcement goes to the outbox in the same transaction, so it
        exists exactly when the version does.

        Products are taken in (type, instrument, observation, version) order and their older
        rows oldest first, each flushed before the next: concurrent writers then lock rows
        in the same order and cannot deadlock (the ORM alone would update them in
        primary-key order, which is random).
        """
        with Session(self.engine) as s:
            rows = {slot.row_id: s.get(ProductRow, slot.row_id) for slot in slots}
            order = sorted(
                checksums,
                key=lambda i: (
                    requests[i].type_code,
                    requests[i].instrument,
                    requests[i].obs_id,
                    slots[i].version,
                ),
            )
            for i in order:
                row = rows[slots[i].row_id]
                assert row is not None
                older = self._supersede_older(s, row)
                row.path, row.checksum = str(slots[i].path), checksums[i]
                row.provenance = requests[i].provenance.model_dump(mode="json")
                row.created = datetime.now(UTC)
                row.owner, row.lease_until = None, None
                s.add(row)
                s.flush()
                # a row reserved by this batch was never recorded, so never announced
                self._outbox(s, row, older, (keys or {}).get(i), announced=not slots[i].new_row)
            # the references hold what this transaction writes: taken before the commit,
            # which would expire the rows (one more SELECT per product to read them back)
            refs = []
            for i, slot in enumerate(slots):
                row = rows[slot.row_id]
                assert row is not None
                refs.append(_ref(row, created=i in checksums))
            s.commit()
            return refs

    def _outbox(
        self,
        s: Session,
        row: ProductRow,
        older: builtins.list[ProductRow],
        keys: announcements.KeyValues | None,
        *,
        announced: bool = True,
    ) -> None:
        """Add the announcement of a recorded version to the outbox (once per version).

        ``announced`` false says the version cannot have been announced yet (its row was
        reserved by this batch): the outbox is not searched for it.
        """
        if announced and s.exec(select(OutboxRow.id).where(OutboxRow.product_id == row.id)).first():
            return  # a lost file rewritten: this version was announced already
        msg = announcements.announcement_for(
            product_id=row.id,
            type_code=row.type_code,
            instrument=row.instrument,
            obs_id=row.obs_id,
            version=row.version,
            path=row.path,
            checksum=row.checksum,
            created=row.created,
            out_root=self.out_root,
            flow_name=row.flow_name,
            flow_run_id=row.flow_run_id,
            supersedes=older[-1].id if older else None,
            key_values=keys,
        )
        s.add(
            OutboxRow(
                product_id=row.id,
                msg_id=msg.announcement_id,
                subject=msg.subject,
                payload=announcements.payload_json(msg),
            )
        )
        s.flush()

    @staticmethod
    def _supersede_older(s: Session, row: ProductRow) -> builtins.list[ProductRow]:
        older = s.exec(
            select(ProductRow)
            .where(
                ProductRow.type_code == row.type_code,
                ProductRow.instrument == row.instrument,
                ProductRow.obs_id == row.obs_id,
                ProductRow.version < row.version,
                ProductRow.superseded == False,  # noqa: E712 - SQL expression
            )
            .order_by(ProductRow.version)  # type: ignore[arg-type]
        ).all()
        for old in older:
            old.superseded = True
            old.superseded_by = row.id
            s.add(old)
            s.flush()
        return list(older)

    def _release(self, slots: Sequence[_Slot]) -> None:
        """Give up reservations of a failed batch: remove our pending rows and their files."""
        if not slots:
            return
        with contextlib.suppress(Exception), Session(self.engine) as s:
            for slot in slots:
                row = s.get(ProductRow, slot.row_id)
                if row is None:
                    continue
                if row.checksum == _PENDING:
                    _remove_leftovers(Path(row.path), keep=False)
                    s.delete(row)
                else:  # a rewrite of a lost file: the row stays, the lease goes
                    row.owner, row.lease_until = None, None
                    s.add(row)
            s.commit()

    # --- reconciliation -------------------------------------------------------------
    def _maybe_reconcile(self) -> None:
        engine, now = self.engine, time.monotonic()
        with _RECONCILED_LOCK:
            if now - _RECONCILED.get(engine, -1e9) < _RECONCILE_EVERY:
                return
            _RECONCILED[engine] = now
        try:
            self.reconcile()
        except OperationalError:  # a busy database: the next use will do it
            with _RECONCILED_LOCK:
                _RECONCILED.pop(engine, None)

    def reconcile(self) -> tuple[int, int]:
        """Clean up after killed runs; return (reservations removed, statuses abandoned).

        A reserved version whose writer is dead or whose lease expired never became a
        product: its row, its file (renamed but never recorded) and its temporary files are
        removed. A ``running`` status whose run is dead or whose lease expired becomes
        ``failed`` with the reason ``abandoned``.
        """
        removed = 0
        with Session(self.engine) as s:
            held = s.exec(select(ProductRow).where(ProductRow.owner != None)).all()  # noqa: E711
            pending = s.exec(select(ProductRow).where(ProductRow.checksum == _PENDING)).all()
            for row in {r.id: r for r in [*held, *pending]}.values():
                if not expired(row.owner, row.lease_until, row.created):
                    continue
                if row.checksum == _PENDING:
                    _remove_leftovers(Path(row.path), keep=False)
                    s.delete(row)
                    removed += 1
                else:
                    _remove_leftovers(Path(row.path), keep=True)
                    row.owner, row.lease_until = None, None
                    s.add(row)
            s.commit()
        return removed, self._abandon_dead_runs()

    def _abandon_dead_runs(self) -> int:
        n = 0
        with Session(self.engine) as s:
            running = s.exec(select(ProcessingStatus).where(ProcessingStatus.state == "running"))
            for st in running.all():
                if not expired(st.owner, st.lease_until, st.updated):
                    continue
                since = f"{st.updated:%Y-%m-%d %H:%M:%S} UTC"
                st.state = "failed"
                st.reason = f"{ABANDONED}: the run stopped without a word (running since {since})"
                st.owner, st.lease_until, st.updated = None, None, datetime.now(UTC)
                s.add(st)
                n += 1
            s.commit()
        return n

    # --- queries --------------------------------------------------------------------
    def list(
        self,
        *,
        obs_id: str | None = None,
        type_code: str | None = None,
        instrument: str | None = None,
        include_superseded: bool = False,
    ) -> list[ProductRow]:
        """Return product rows matching the filters (current versions unless asked)."""
        self._maybe_reconcile()
        with Session(self.engine) as s:
            return select_products(
                s,
                obs_id=obs_id,
                type_code=type_code,
                instrument=instrument,
                include_superseded=include_superseded,
            )

    def get(self, product_id: str) -> ProductRow | None:
        """Return one product row by id (a unique prefix of at least 6 characters works).

        A reserved version still being written, or one whose file is gone, is not a
        product: None.
        """
        self._maybe_reconcile()
        with Session(self.engine) as s:
            row = s.get(ProductRow, product_id)
            if row is None and len(product_id) >= 6:
                rows = s.exec(select(ProductRow).where(ProductRow.id.startswith(product_id))).all()  # type: ignore[attr-defined]
                row = rows[0] if len(rows) == 1 else None
            if row is None or row.checksum == _PENDING or not Path(row.path).is_file():
                return None
            return row

    # --- processing status ----------------------------------------------------------
    def set_status(
        self,
        key: str,
        flow_name: str,
        state: str,
        *,
        reason: str | None = None,
        flow_run_id: str | None = None,
    ) -> None:
        """Record the processing state of ``key`` (a burst id or input file) for a flow.

        ``running`` takes a lease that this process renews while it lives; a run killed
        without a word is then reported ``failed`` (``abandoned``) by the next reader.
        """
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; one of {', '.join(STATES)}")
        for attempt in range(10):
            with Session(self.engine) as s:
                row = s.exec(
                    select(ProcessingStatus).where(
                        ProcessingStatus.key == key, ProcessingStatus.flow_name == flow_name
                    )
                ).first()
                if row is None:
                    row = ProcessingStatus(key=key, flow_name=flow_name, state=state)
                row.state, row.reason, row.updated = state, reason, datetime.now(UTC)
                if state == "running":
                    row.owner, row.lease_until = owner_id(), lease_expiry()
                else:
                    row.owner, row.lease_until = None, None
                if flow_run_id:
                    row.flow_run_id = flow_run_id
                s.add(row)
                try:
                    s.commit()
                    if state == "running":
                        keep_alive(self.engine)
                    return
                except IntegrityError:
                    s.rollback()
                    time.sleep(0.02 * (attempt + 1))
        raise RuntimeError(f"could not record status of {key}")

    def statuses(self, key: str | None = None) -> builtins.list[ProcessingStatus]:
        """Return processing states (all, or those of one key), most recent first.

        A ``running`` state whose run died is reported (and recorded) as ``failed``.
        """
        self._abandon_dead_runs()
        with Session(self.engine) as s:
            stmt = select(ProcessingStatus)
            if key:
                stmt = stmt.where(ProcessingStatus.key == key)
            return list(s.exec(stmt.order_by(ProcessingStatus.updated.desc())))  # type: ignore[attr-defined]


# when each engine (one per database and process) was last reconciled
_RECONCILED: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
_RECONCILED_LOCK = threading.Lock()


def _writer(req: PublishRequest, version: int) -> Callable[[Path], None]:
    """Return the function that writes a request's content to a (temporary) path."""
    content = req.content
    if callable(content) and not isinstance(content, LazyFits):
        return content

    def write_fits(tmp: Path) -> None:
        built = content.build() if isinstance(content, LazyFits) else content
        cards = _provenance_cards(req.provenance, req.type_code, version)
        if not isinstance(built, Sequence):  # FitsContent: writes its own bytes
            built.write(tmp, cards)
            return
        hdul = fits.HDUList(list(built))
        for key, value, comment in cards:
            hdul[0].header[key] = (value, comment)
        hdul.writeto(tmp, checksum=True)

    return write_fits


def _remove_leftovers(path: Path, *, keep: bool) -> None:
    """Remove the temporary files of ``path`` (and ``path`` itself unless ``keep``)."""
    if not keep:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if path.parent.is_dir():
        for tmp in path.parent.glob(f"{TMP_PREFIX}{path.name}.*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
