"""Publishing products: atomic write, versioning, idempotence and the database record.

A product is identified by (type code, instrument, observation id) and versioned: re-running
a flow on the same inputs with the same configuration, calibration and software returns the
existing version (no new row, no rewrite); anything else makes version N+1 and marks the
previous one superseded, which stays on disk and in the database.
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from astropy.io import fits
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, func, select
from svomflow.paths import safe_join
from svomflow.products.atomic import atomic_path, sha256_file
from svomflow.products.database import (
    ProcessingStatus,
    ProductRow,
    make_engine,
    select_products,
)
from svomflow.products.naming import product_filename
from svomflow.products.provenance import Provenance

__all__ = ["STATES", "ProductRef", "ProductStore"]

STATES = ("received", "running", "done", "failed", "superseded")
_PENDING = "pending"

HDUs = Sequence[fits.PrimaryHDU | fits.ImageHDU | fits.BinTableHDU]


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

    # --- publishing -----------------------------------------------------------------
    def publish(
        self,
        content: HDUs | Callable[[Path], None],
        *,
        type_code: str,
        instrument: str,
        obs_id: str,
        provenance: Provenance,
        ext: str = "fits",
    ) -> ProductRef:
        """Write a product atomically and record it; idempotent for identical provenance.

        Parameters
        ----------
        content
            FITS HDUs (a PrimaryHDU first; provenance keywords are added to it), or a
            callable that writes the file (PNG, JSON, HTML) to the path it is given.
        type_code, instrument, obs_id
            What the product is; these build the file name and directory (checked so that
            header-derived values cannot escape the output root).
        provenance
            The record from :meth:`Provenance.start`; ``finished`` is set here.
        ext
            File extension.
        """
        identity = provenance.identity(type_code=type_code, instrument=instrument, obs_id=obs_id)
        folder = safe_join(self.out_root, obs_id, instrument)
        deadline = time.monotonic() + 120.0
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            row_id, version, rewrite = self._reserve(
                identity, type_code, instrument, obs_id, folder, ext, provenance
            )
            if row_id is None:  # another process is writing this very product: wait for it
                time.sleep(min(0.05 * attempt, 1.0))
                continue
            if version == 0:  # already published, file intact
                with Session(self.engine) as s:
                    row = s.get(ProductRow, row_id)
                    assert row is not None
                    return _ref(row, created=False)
            path = folder / product_filename(type_code, instrument, obs_id, version, ext)
            provenance.finished = datetime.now(UTC)
            try:
                self._write(content, path, provenance, type_code, version)
            except BaseException:
                if not rewrite:
                    self._release(row_id)
                raise
            return self._finish(row_id, path, provenance)
        raise RuntimeError(f"could not record {type_code} for {obs_id}: timed out waiting")

    def _reserve(
        self,
        identity: str,
        type_code: str,
        instrument: str,
        obs_id: str,
        folder: Path,
        ext: str,
        provenance: Provenance,
    ) -> tuple[str | None, int, bool]:
        """Claim a version row before writing, so two writers never share a file name.

        Returns (row id, version to write, whether it rewrites a damaged file); version 0
        means the identical product exists intact; row id None means someone else is
        writing it right now.
        """
        with Session(self.engine) as s:
            existing = s.exec(select(ProductRow).where(ProductRow.identity == identity)).first()
            if existing is not None:
                if existing.checksum == _PENDING:
                    age = (datetime.now(UTC) - existing.created.replace(tzinfo=UTC)).total_seconds()
                    if age < 60:
                        return None, 0, False
                    return existing.id, existing.version, True  # writer died: take over
                if (
                    Path(existing.path).is_file()
                    and sha256_file(existing.path) == existing.checksum
                ):
                    return existing.id, 0, False
                return existing.id, existing.version, True  # file lost or damaged: rewrite
            latest = s.exec(
                select(func.max(ProductRow.version)).where(
                    ProductRow.type_code == type_code,
                    ProductRow.instrument == instrument,
                    ProductRow.obs_id == obs_id,
                )
            ).one()
            version = int(latest or 0) + 1
            row = ProductRow(
                type_code=type_code,
                instrument=instrument,
                obs_id=obs_id,
                version=version,
                identity=identity,
                path=str(folder / product_filename(type_code, instrument, obs_id, version, ext)),
                checksum=_PENDING,
                flow_name=provenance.flow_name,
                flow_run_id=provenance.flow_run_id,
            )
            s.add(row)
            try:
                s.commit()
            except (IntegrityError, OperationalError):
                s.rollback()
                return None, 0, False
            return row.id, version, False

    def _release(self, row_id: str) -> None:
        with Session(self.engine) as s:
            row = s.get(ProductRow, row_id)
            if row is not None:
                s.delete(row)
                s.commit()

    def _write(
        self,
        content: HDUs | Callable[[Path], None],
        path: Path,
        prov: Provenance,
        type_code: str,
        version: int,
    ) -> None:
        with atomic_path(path) as tmp:
            if callable(content):
                content(tmp)
            else:
                hdul = fits.HDUList(list(content))
                for key, value, comment in _provenance_cards(prov, type_code, version):
                    hdul[0].header[key] = (value, comment)
                hdul.writeto(tmp, checksum=True)

    def _finish(self, row_id: str, path: Path, provenance: Provenance) -> ProductRef:
        checksum = sha256_file(path)
        for attempt in range(8):
            try:
                return self._record(row_id, path, checksum, provenance)
            except OperationalError:
                # PostgreSQL breaks a deadlock by failing one transaction: try it again
                if attempt == 7:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _record(self, row_id: str, path: Path, checksum: str, provenance: Provenance) -> ProductRef:
        """Record a written version and supersede the older ones, in one transaction.

        Rows are updated oldest version first, each flushed before the next: concurrent
        writers of one product then lock the rows in the same order and cannot deadlock
        (the ORM alone would update them in primary-key order, which is random).
        """
        with Session(self.engine) as s:
            row = s.get(ProductRow, row_id)
            assert row is not None
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
            row.path, row.checksum = str(path), checksum
            row.provenance = provenance.model_dump(mode="json")
            row.created = datetime.now(UTC)
            s.add(row)
            s.commit()
            s.refresh(row)
            return _ref(row, created=True)

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
        with Session(self.engine) as s:
            return select_products(
                s,
                obs_id=obs_id,
                type_code=type_code,
                instrument=instrument,
                include_superseded=include_superseded,
            )

    def get(self, product_id: str) -> ProductRow | None:
        """Return one product row by id (a unique prefix of at least 6 characters works)."""
        with Session(self.engine) as s:
            row = s.get(ProductRow, product_id)
            if row is not None or len(product_id) < 6:
                return row
            rows = s.exec(select(ProductRow).where(ProductRow.id.startswith(product_id))).all()  # type: ignore[attr-defined]
            return rows[0] if len(rows) == 1 else None

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
        """Record the processing state of ``key`` (a burst id or input file) for a flow."""
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
                if flow_run_id:
                    row.flow_run_id = flow_run_id
                s.add(row)
                try:
                    s.commit()
                    return
                except IntegrityError:
                    s.rollback()
                    time.sleep(0.02 * (attempt + 1))
        raise RuntimeError(f"could not record status of {key}")

    def statuses(self, key: str | None = None) -> builtins.list[ProcessingStatus]:
        """Return processing states (all, or those of one key), most recent first."""
        with Session(self.engine) as s:
            stmt = select(ProcessingStatus)
            if key:
                stmt = stmt.where(ProcessingStatus.key == key)
            return list(s.exec(stmt.order_by(ProcessingStatus.updated.desc())))  # type: ignore[attr-defined]
