"""Product announcements: the message every new product version sends on the NATS bus.

When a product version is recorded in the products database, a :class:`ProductAnnouncement`
is written in the same transaction to the outbox (``product_outbox``), then sent to JetStream
on the subject :func:`subject_for` names (``svomflow.product.<TYPE>.<INSTRUMENT>``, e.g.
``svomflow.product.QPO.ECL``) with the message id :attr:`ProductAnnouncement.announcement_id`
(``<product id>:<version>``): JetStream drops a second copy of it, so a resend after a crash
reaches no consumer twice. :func:`send_pending` is the one pass that sends what the outbox
holds (the store calls it right after a commit when ``$SVOMFLOW_NATS_SERVERS`` is set;
``svomflow announce`` runs it for ever).

Subscribers (GP1 follows the positions of its burst) read messages with
:func:`parse_announcement` and filter subjects with :func:`subject_filter`. Positions
(``QPO``, ``PO``, the MXT ``SRCLIST``, GP1's ``OTPO``) carry RA, Dec and an error radius with
its confidence, read from the product's file by the rules of
``config/pipelines/announcements.yaml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import math
import os
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

__all__ = [
    "DUPLICATE_WINDOW_S",
    "NATS_ENV",
    "STREAM",
    "SUBJECT_PREFIX",
    "BusSettings",
    "KeyValues",
    "Position",
    "ProductAnnouncement",
    "announcement_for",
    "announcement_schema",
    "bus_settings_from_env",
    "connect_bus",
    "default_prefix",
    "ensure_stream",
    "key_values_of",
    "parse_announcement",
    "send_pending",
    "send_soon",
    "subject_filter",
    "subject_for",
]

log = logging.getLogger("svomflow.announcements")

SUBJECT_PREFIX = "svomflow.product"
STREAM = "SVOMFLOW_PRODUCTS"
# how long JetStream remembers message ids: a version resent within it is dropped. A day
# covers a relay that was down overnight after a crash between send and mark.
DUPLICATE_WINDOW_S = 86400.0
NATS_ENV = "SVOMFLOW_NATS_SERVERS"
PREFIX_ENV = "SVOMFLOW_ANNOUNCE_PREFIX"
STREAM_ENV = "SVOMFLOW_ANNOUNCE_STREAM"
MESSAGE_SCHEMA_VERSION = 1
_BAD_TOKEN = set(" \t\r\n.*>")


def _token(value: str, what: str) -> str:
    """Return ``value`` as one NATS subject token (refusing separators and wildcards)."""
    if not value or _BAD_TOKEN & set(value):
        raise ValueError(f"{what} {value!r} cannot be a NATS subject token")
    return value


def default_prefix() -> str:
    """Return the subject prefix: ``$SVOMFLOW_ANNOUNCE_PREFIX`` or ``svomflow.product``."""
    return os.environ.get(PREFIX_ENV, "").strip() or SUBJECT_PREFIX


def subject_for(type_code: str, instrument: str, prefix: str | None = None) -> str:
    """Return the subject of a product's announcements: ``svomflow.product.QPO.ECL``.

    Parameters
    ----------
    type_code
        The catalogue type code (``QPO``, ``SRCLIST``, ``OTPO``...).
    instrument
        The product's instrument code (``ECL``, ``GRM-GRD01``, ``MXT``...).
    prefix
        The subject prefix (default :func:`default_prefix`).
    """
    prefix = prefix or default_prefix()
    return f"{prefix}.{_token(type_code, 'type code')}.{_token(instrument, 'instrument')}"


def subject_filter(type_code: str = "*", instrument: str = "*", prefix: str | None = None) -> str:
    """Return a subscription subject: ``*`` (the default) matches any type or instrument."""
    prefix = prefix or default_prefix()
    t = type_code if type_code == "*" else _token(type_code, "type code")
    i = instrument if instrument == "*" else _token(instrument, "instrument")
    return f"{prefix}.{t}.{i}"


class Position(BaseModel):
    """A sky position with its error circle (what a position product announces)."""

    model_config = ConfigDict(extra="forbid")

    ra_deg: float = Field(ge=0.0, lt=360.0, description="right ascension (ICRS/J2000) [deg]")
    dec_deg: float = Field(ge=-90.0, le=90.0, description="declination (ICRS/J2000) [deg]")
    error_radius_deg: float = Field(ge=0.0, le=180.0, description="error circle radius [deg]")
    error_confidence: float = Field(
        gt=0.0,
        le=1.0,
        description="probability that the source lies inside the error circle (0.9: r90)",
    )
    source: str = Field(default="", description="where it was read: HDU and columns/keywords")


class ProductAnnouncement(BaseModel):
    """The message announcing one product version (JSON on ``svomflow.product.<TYPE>.<INST>``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = Field(default=1, description="version of this message schema")
    announcement_id: str = Field(
        description="'<product id>:<version>': the JetStream message id (Nats-Msg-Id)"
    )
    product_id: str = Field(description="the product's id in svomflow's products database")
    type_code: str = Field(description="catalogue type code (QPO, PO, SRCLIST, OTPO...)")
    instrument: str = Field(description="instrument code (ECL, GRM, MXT, a camera...)")
    obs_id: str = Field(description="burst or observation id the product belongs to")
    version: int = Field(ge=1, description="product version (1, 2...; a new one supersedes)")
    supersedes: str | None = Field(
        default=None, description="product id of the version this one replaces"
    )
    subject: str = Field(description="the NATS subject the message was sent on")
    created: datetime = Field(description="when the version was recorded (UTC)")
    file_name: str = Field(description="the product file's name")
    url: str = Field(description="link to the product file (HTTP when served, else file://)")
    checksum: str = Field(description="SHA-256 of the product file")
    flow_name: str | None = Field(default=None, description="the flow that made it")
    flow_run_id: str | None = Field(default=None, description="its Prefect flow run id")
    position: Position | None = Field(
        default=None, description="RA/Dec and error circle of a position product"
    )
    key_values: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="headline numbers of the product (keyword: value)"
    )
    notes: list[str] = Field(
        default_factory=list, description="why a key value is missing, if one is"
    )

    @property
    def msg_id(self) -> str:
        """Return the JetStream de-duplication id (``Nats-Msg-Id``)."""
        return self.announcement_id


SCHEMA_ID = "https://svomflow/schemas/product_announcement.json"


def announcement_schema() -> dict[str, Any]:
    """Return the JSON Schema of the message (``config/schemas/product_announcement.json``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **ProductAnnouncement.model_json_schema(),
    }


def parse_announcement(data: bytes | str) -> ProductAnnouncement:
    """Return the announcement in a message's payload (raises pydantic's ValidationError)."""
    return ProductAnnouncement.model_validate_json(data)


# --- key values: rules as data -------------------------------------------------------------


class PositionRule(BaseModel):
    """Where a position product keeps RA, Dec and its error radius."""

    model_config = ConfigDict(extra="forbid")

    type_code: str
    instruments: list[str] = Field(default_factory=lambda: ["*"], description="shell patterns")
    hdu: str | int = Field(default=0, description="extension name or index")
    ra: str = Field(description="column (table HDU) or keyword holding RA [deg]")
    dec: str = Field(description="column or keyword holding Dec [deg]")
    error_radius: list[str] = Field(description="candidate columns/keywords, the first found")
    error_unit: str = Field(default="deg", description="unit when the column has no TUNIT")
    confidence: float = Field(gt=0.0, le=1.0, description="probability inside the radius")
    best_by: str | None = Field(
        default=None, description="several rows: take the one with the largest value of this"
    )


class ValueRule(BaseModel):
    """Values of a product type copied into ``key_values``: header keywords or row-0 columns."""

    model_config = ConfigDict(extra="forbid")

    type_code: str
    instruments: list[str] = Field(default_factory=lambda: ["*"])
    hdu: str | int = 0
    names: list[str] = Field(description="keywords of the HDU, or columns of its first row")


class AnnouncementRules(BaseModel):
    """The key-value rules of ``config/pipelines/announcements.yaml``."""

    model_config = ConfigDict(extra="forbid")

    positions: list[PositionRule] = Field(default_factory=list)
    values: list[ValueRule] = Field(default_factory=list)


@cache
def announcement_rules() -> AnnouncementRules:
    """Return the packaged key-value rules."""
    path = resources.files("svomflow.config") / "pipelines" / "announcements.yaml"
    return AnnouncementRules.model_validate(yaml.safe_load(path.read_text()) or {})


def _applies(rule_type: str, patterns: Sequence[str], type_code: str, instrument: str) -> bool:
    return rule_type == type_code and any(fnmatch.fnmatchcase(instrument, p) for p in patterns)


_TO_DEG = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "arcmin": 1 / 60, "arcsec": 1 / 3600}


def _read_value(hdu: Any, name: str, row: int) -> tuple[float | None, str | None]:
    """Return (value, unit) of a column (row ``row``) or a header keyword of ``hdu``."""
    data = getattr(hdu, "data", None)
    names = getattr(getattr(hdu, "columns", None), "names", None) or []
    lowered = {n.lower(): n for n in names}
    if data is not None and name.lower() in lowered:
        col_name = lowered[name.lower()]
        unit = hdu.columns[col_name].unit
        return float(data[col_name][row]), (str(unit).strip() if unit else None)
    if name in hdu.header:
        return float(hdu.header[name]), None
    return None, None


def _scalar(hdu: Any, name: str) -> float | int | str | bool | None:
    """Return a keyword of ``hdu`` or the first row of its column ``name`` as a JSON scalar."""
    names = getattr(getattr(hdu, "columns", None), "names", None) or []
    value: Any = None
    if name in names and hdu.data is not None and len(hdu.data):
        value = hdu.data[name][0]
        value = value.item() if hasattr(value, "item") else value
    elif name in hdu.header:
        value = hdu.header[name]
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace").strip()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, bool | int | float | str) else None


def _position(hdul: Any, rule: PositionRule) -> Position:
    hdu = hdul[rule.hdu]
    row = 0
    data = getattr(hdu, "data", None)
    if data is not None and rule.best_by and hasattr(data, "columns"):
        if len(data) == 0:
            raise ValueError(f"{hdu.name} has no rows")
        row = int(max(range(len(data)), key=lambda k: float(data[rule.best_by][k])))
    ra, _ = _read_value(hdu, rule.ra, row)
    dec, _ = _read_value(hdu, rule.dec, row)
    err, unit = None, None
    for name in rule.error_radius:
        err, unit = _read_value(hdu, name, row)
        if err is not None:
            break
    if ra is None or dec is None or err is None:
        raise ValueError(f"{hdu.name} lacks {rule.ra}/{rule.dec}/{'|'.join(rule.error_radius)}")
    scale = _TO_DEG.get((unit or rule.error_unit).lower())
    if scale is None:
        raise ValueError(f"unknown unit {unit!r} of the error radius")
    if not all(math.isfinite(v) for v in (ra, dec, err)):
        raise ValueError("position is not finite")
    return Position(
        ra_deg=ra % 360.0,
        dec_deg=dec,
        error_radius_deg=err * scale,
        error_confidence=rule.confidence,
        source=f"{hdu.name}[{row}] {rule.ra},{rule.dec},{name}",
    )


KeyValues = tuple[Position | None, dict[str, float | int | str | bool], list[str]]


def key_values_of(path: str | os.PathLike[str], type_code: str, instrument: str) -> KeyValues:
    """Read the announced key values of a product file: (position, keywords, notes).

    Never raises: a value that cannot be read is left out and the reason goes in ``notes``.
    """
    rules = announcement_rules()
    pos_rules = [
        r for r in rules.positions if _applies(r.type_code, r.instruments, type_code, instrument)
    ]
    kw_rules = [
        r for r in rules.values if _applies(r.type_code, r.instruments, type_code, instrument)
    ]
    position: Position | None = None
    values: dict[str, float | int | str | bool] = {}
    notes: list[str] = []
    if not pos_rules and not kw_rules:
        return position, values, notes
    try:
        from astropy.io import fits

        with fits.open(path, memmap=False) as hdul:
            for rule in pos_rules[:1]:
                try:
                    position = _position(hdul, rule)
                except (KeyError, IndexError, ValueError, TypeError) as exc:
                    notes.append(f"no position: {exc}")
            for vrule in kw_rules:
                for name in vrule.names:
                    value = _scalar(hdul[vrule.hdu], name)
                    if value is None:
                        notes.append(f"{name} not found or not finite")
                    else:
                        values[name] = value
    except Exception as exc:  # a product is recorded even when its file cannot be read back
        notes.append(f"key values unreadable: {type(exc).__name__}: {exc}"[:300])
    return position, values, notes


def _link(path: Path, out_root: Path) -> str:
    """Return the product's URL: under ``$SVOMFLOW_PRODUCTS_URL`` when served, else file://."""
    base = os.environ.get("SVOMFLOW_PRODUCTS_URL")
    target = path.resolve()
    root = out_root.expanduser().resolve()
    if base and root in target.parents:
        rel = target.relative_to(root).as_posix()
        return f"{base.rstrip('/')}/{urllib.parse.quote(rel)}"
    return target.as_uri()


def announcement_for(
    *,
    product_id: str,
    type_code: str,
    instrument: str,
    obs_id: str,
    version: int,
    path: str | os.PathLike[str],
    checksum: str,
    created: datetime,
    out_root: str | os.PathLike[str],
    flow_name: str | None = None,
    flow_run_id: str | None = None,
    supersedes: str | None = None,
    key_values: KeyValues | None = None,
) -> ProductAnnouncement:
    """Build the announcement of a recorded product version.

    ``key_values`` is what :func:`key_values_of` returned (read from the file when None).
    """
    p = Path(path)
    position, values, notes = key_values or key_values_of(p, type_code, instrument)
    try:
        subject = subject_for(type_code, instrument)
    except ValueError:  # an odd instrument code: announced under a sanitised token
        safe = "".join("_" if ch in _BAD_TOKEN else ch for ch in instrument) or "_"
        subject = subject_for(type_code, safe)
    return ProductAnnouncement(
        announcement_id=f"{product_id}:{version}",
        product_id=product_id,
        type_code=type_code,
        instrument=instrument,
        obs_id=obs_id,
        version=version,
        supersedes=supersedes,
        subject=subject,
        created=created if created.tzinfo else created.replace(tzinfo=UTC),
        file_name=p.name,
        url=_link(p, Path(out_root)),
        checksum=checksum,
        flow_name=flow_name,
        flow_run_id=flow_run_id,
        position=position,
        key_values=values,
        notes=notes,
    )


# --- sending the outbox ---------------------------------------------------------------------


@dataclass(frozen=True)
class BusSettings:
    """Where announcements go: NATS servers, the JetStream stream and its subjects."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str = STREAM
    prefix: str = SUBJECT_PREFIX
    duplicate_window_s: float = DUPLICATE_WINDOW_S
    connect_timeout_s: float = 2.0
    batch: int = 200

    @property
    def subjects(self) -> tuple[str, ...]:
        """Return the stream's subjects: every announcement under the prefix."""
        return (f"{self.prefix}.>",)


def bus_settings_from_env() -> BusSettings | None:
    """Return the bus of ``$SVOMFLOW_NATS_SERVERS`` (comma-separated URLs), None when unset.

    ``$SVOMFLOW_ANNOUNCE_STREAM`` and ``$SVOMFLOW_ANNOUNCE_PREFIX`` name another stream and
    subject prefix (the relay and the publishers must agree on them).
    """
    raw = os.environ.get(NATS_ENV, "").strip()
    if not raw:
        return None
    return BusSettings(
        servers=tuple(s.strip() for s in raw.split(",") if s.strip()),
        stream=os.environ.get(STREAM_ENV, "").strip() or STREAM,
        prefix=default_prefix(),
    )


async def ensure_stream(js: Any, bus: BusSettings) -> None:
    """Create the announcements stream, or add its subjects to an existing one."""
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    try:
        info = await js.stream_info(bus.stream)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=bus.stream,
                subjects=list(bus.subjects),
                duplicate_window=bus.duplicate_window_s,
            )
        )
        return
    have = set(info.config.subjects or [])
    if not set(bus.subjects) <= have:
        info.config.subjects = sorted(have | set(bus.subjects))
        await js.update_stream(info.config)


async def connect_bus(bus: BusSettings) -> Any:
    """Return a NATS connection to the bus (one attempt per server, no reconnection)."""
    import nats

    async def quiet(_exc: Exception) -> None:  # the caller reports the failure once
        return None

    # nats-py retries the first connection for ever with max_reconnect_attempts=0: one
    # attempt per server, and a deadline over it all
    connecting = nats.connect(
        servers=list(bus.servers),
        connect_timeout=bus.connect_timeout_s,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
        error_cb=quiet,
    )
    deadline = 2 * bus.connect_timeout_s * len(bus.servers) + 1.0
    return await asyncio.wait_for(connecting, timeout=deadline)


async def send_pending_async(engine: Engine, bus: BusSettings, js: Any | None = None) -> int:
    """Send every pending outbox row, oldest first, and mark each sent; return how many.

    Each message carries ``Nats-Msg-Id`` = the announcement id, so a row sent before a crash
    and sent again (it was not yet marked) is dropped by JetStream. A failure stops the pass
    with the rows left pending (the next pass sends them).
    """
    nc = None
    if js is None:
        nc = await connect_bus(bus)
        js = nc.jetstream()
    sent = 0
    try:
        await ensure_stream(js, bus)
        while True:
            rows = await asyncio.to_thread(_pending_rows, engine, bus.batch)
            if not rows:
                return sent
            for row_id, subject, msg_id, payload in rows:
                try:
                    await js.publish(
                        subject,
                        payload.encode("utf-8"),
                        stream=bus.stream,
                        headers={"Nats-Msg-Id": msg_id},
                    )
                except Exception as exc:
                    await asyncio.to_thread(_note_failure, engine, row_id, str(exc))
                    raise
                await asyncio.to_thread(_mark_sent, engine, row_id)
                sent += 1
            if len(rows) < bus.batch:
                return sent
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()


def _pending_rows(engine: Engine, limit: int) -> list[tuple[int, str, str, str]]:
    from svomflow.products.database import OutboxRow

    with Session(engine) as s:
        rows = s.exec(
            select(OutboxRow)
            .where(col(OutboxRow.sent_at).is_(None))
            .order_by(col(OutboxRow.id))
            .limit(limit)
        ).all()
        return [(int(r.id or 0), r.subject, r.msg_id, r.payload) for r in rows]


def _mark_sent(engine: Engine, row_id: int) -> None:
    from svomflow.products.database import OutboxRow

    with Session(engine) as s:
        s.exec(  # type: ignore[call-overload]
            update(OutboxRow)
            .where(col(OutboxRow.id) == row_id, col(OutboxRow.sent_at).is_(None))
            .values(sent_at=datetime.now(UTC))
        )
        s.commit()


def _note_failure(engine: Engine, row_id: int, error: str) -> None:
    from svomflow.products.database import OutboxRow

    with contextlib.suppress(Exception), Session(engine) as s:
        s.exec(  # type: ignore[call-overload]
            update(OutboxRow)
            .where(col(OutboxRow.id) == row_id)
            .values(attempts=OutboxRow.attempts + 1, last_error=error[:500])
        )
        s.commit()


def send_pending(engine: Engine, bus: BusSettings) -> int:
    """Send the pending outbox rows now (see :func:`send_pending_async`); return how many.

    Runs in a thread of its own, so it works from code that has an event loop running.
    """
    out: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            out.append(asyncio.run(send_pending_async(engine, bus)))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=work, name="svomflow-announce", daemon=True)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0]


# after a failed send, flows leave the outbox to the relay for a while (no wait per batch)
_BACKOFF_S = 30.0
_failed_at: dict[tuple[str, ...], float] = {}


def send_soon(engine: Engine, *, timeout_s: float = 10.0) -> None:
    """Best effort, right after a commit: send the outbox when ``$SVOMFLOW_NATS_SERVERS`` is set.

    Never raises and waits at most ``timeout_s``: with NATS down the rows stay pending for
    ``svomflow announce`` (which also sends what a killed process left), and this process
    does not try again for 30 s.
    """
    bus = bus_settings_from_env()
    if bus is None:
        return
    if time.monotonic() - _failed_at.get(bus.servers, -1e9) < _BACKOFF_S:
        return

    def work() -> None:
        try:
            asyncio.run(send_pending_async(engine, bus))
        except Exception as exc:
            _failed_at[bus.servers] = time.monotonic()
            log.warning("announcements left pending (svomflow announce sends them): %s", exc)

    t = threading.Thread(target=work, name="svomflow-announce", daemon=True)
    t.start()
    t.join(timeout_s)


def payload_json(announcement: ProductAnnouncement) -> str:
    """Return the message payload (compact JSON) of an announcement."""
    return json.dumps(announcement.model_dump(mode="json"), separators=(",", ":"))
