"""Alert messages: the validated model, VOEvent (GCN style) and JSON parsing.

Alerts come from outside, so they are parsed defensively: XML through ``defusedxml``
(no entity expansion, no external entities, no DTDs), every required element checked, and
anything wrong raised as :class:`AlertFormatError` with the reason, which the listener logs
and sends to the dead-letter subject.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Literal

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from pydantic import BaseModel, Field, ValidationError, field_validator
from svomflow.errors import SvomflowError

__all__ = ["Alert", "AlertFormatError", "parse_alert", "parse_json_alert", "parse_voevent"]

# VOEvent 2.0 namespace; GCN notices use it as the default or the "voe" prefix.
_VOE_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"
# Trigger identifier parameter names seen in GCN/SVOM notices.
_TRIGGER_PARAMS = ("TrigID", "Trigger_ID", "Burst_Id", "TrigId", "trigger_id")
_MAX_BYTES = 1_000_000


class AlertFormatError(SvomflowError):
    """An alert message is malformed or misses a required element."""


class Alert(BaseModel):
    """A validated alert: what a flow needs to start on a burst."""

    alert_id: str = Field(description="unique id: the VOEvent ivorn or the JSON 'id'")
    trigger_id: str = Field(description="burst / trigger identifier", min_length=1, max_length=64)
    trigger_time: datetime = Field(description="trigger time (UTC)")
    role: Literal["observation", "test", "utility"] = "observation"
    issued: datetime | None = Field(default=None, description="when the alert was written")
    ra_deg: float | None = Field(default=None, ge=0.0, lt=360.0)
    dec_deg: float | None = Field(default=None, ge=-90.0, le=90.0)
    error_deg: float | None = Field(default=None, ge=0.0, le=180.0)
    instrument: str | None = None
    params: dict[str, str] = Field(default_factory=dict, description="all What/Param values")
    format: Literal["voevent", "json"] = "json"

    @field_validator("trigger_time", "issued")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _parse_time(text: str | None, what: str) -> datetime:
    if not text or not text.strip():
        raise AlertFormatError(f"{what} is missing")
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(t)
    except ValueError:
        raise AlertFormatError(f"{what} {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _float(text: str | None, what: str) -> float:
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        raise AlertFormatError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise AlertFormatError(f"{what} is not finite")
    return value


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(parent: Any, *path: str) -> Any:
    """Follow child elements by local name (namespace-agnostic: notices differ)."""
    node = parent
    for name in path:
        if node is None:
            return None
        node = next((c for c in node if _local(c.tag) == name), None)
    return node


def _validated(fields: dict[str, Any]) -> Alert:
    try:
        return Alert.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise AlertFormatError(f"invalid alert: {problems}") from None


def parse_voevent(data: bytes | str) -> Alert:
    """Parse and validate a VOEvent 2.0 alert (GCN style).

    Required: the ``VOEvent`` root with ``ivorn`` and ``role``; ``Who/Date``; a trigger
    identifier ``What/Param`` (``TrigID`` or an alias); the trigger time in
    ``WhereWhen/.../Time/TimeInstant/ISOTime``; the position ``Position2D/Value2/C1, C2``
    (degrees) with ``Error2Radius`` when given.

    Raises
    ------
    AlertFormatError
        Not XML, unsafe XML (entities, DTD), not a VOEvent, or a required element missing or
        invalid; the message says which.
    """
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > _MAX_BYTES:
        raise AlertFormatError(f"VOEvent of {len(raw)} bytes is larger than {_MAX_BYTES}")
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise AlertFormatError(f"unsafe XML refused: {type(exc).__name__}") from None
    except SafeET.ParseError as exc:
        raise AlertFormatError(f"not well-formed XML: {exc}") from None
    if _local(root.tag) != "VOEvent":
        raise AlertFormatError(f"root element is {_local(root.tag)!r}, not VOEvent")
    ivorn = (root.get("ivorn") or "").strip()
    if not ivorn.startswith("ivo://"):
        raise AlertFormatError(f"VOEvent ivorn {ivorn!r} is missing or not an ivo:// URI")
    role = (root.get("role") or "").strip()
    if role not in ("observation", "test", "utility"):
        raise AlertFormatError(f"VOEvent role {role!r} is not observation, test or utility")
    date = _find(root, "Who", "Date")
    issued = _parse_time(date.text if date is not None else None, "Who/Date")
    what = _find(root, "What")
    if what is None:
        raise AlertFormatError("What element is missing")
    params: dict[str, str] = {}
    for el in what.iter():
        if _local(el.tag) == "Param" and el.get("name"):
            params[el.get("name")] = (el.get("value") or "").strip()
    trig = next((params[k] for k in _TRIGGER_PARAMS if params.get(k)), None)
    if not trig:
        raise AlertFormatError(
            f"What has no trigger id parameter (one of {', '.join(_TRIGGER_PARAMS)})"
        )
    loc = _find(root, "WhereWhen", "ObsDataLocation", "ObservationLocation", "AstroCoords")
    if loc is None:
        raise AlertFormatError(
            "WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords is missing"
        )
    iso = _find(loc, "Time", "TimeInstant", "ISOTime")
    trigger_time = _parse_time(iso.text if iso is not None else None, "trigger time (ISOTime)")
    pos = _find(loc, "Position2D")
    if pos is None:
        raise AlertFormatError("Position2D is missing")
    c1, c2 = _find(pos, "Value2", "C1"), _find(pos, "Value2", "C2")
    if c1 is None or c2 is None:
        raise AlertFormatError("Position2D/Value2/C1 and C2 are required")
    err = _find(pos, "Error2Radius")
    fields: dict[str, Any] = {
        "alert_id": ivorn,
        "trigger_id": trig,
        "trigger_time": trigger_time,
        "role": role,
        "issued": issued,
        "ra_deg": _float(c1.text, "C1 (RA)") % 360.0,
        "dec_deg": _float(c2.text, "C2 (Dec)"),
        "error_deg": _float(err.text, "Error2Radius") if err is not None else None,
        "instrument": params.get("Instrument") or params.get("instrument"),
        "params": params,
        "format": "voevent",
    }
    return _validated(fields)


def parse_json_alert(data: bytes | str) -> Alert:
    """Parse and validate a JSON alert (keys of :class:`Alert`; ``id`` accepted for alert_id).

    Required: ``id``/``alert_id``, ``trigger_id`` and ``trigger_time`` (ISO 8601, UTC when no
    offset is given); position fields are optional.
    """
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > _MAX_BYTES:
        raise AlertFormatError(f"JSON alert of {len(raw)} bytes is larger than {_MAX_BYTES}")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlertFormatError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise AlertFormatError("a JSON alert must be an object")
    doc = dict(doc)
    if "alert_id" not in doc and "id" in doc:
        doc["alert_id"] = doc.pop("id")
    for key in ("alert_id", "trigger_id", "trigger_time"):
        if doc.get(key) in (None, ""):
            raise AlertFormatError(f"JSON alert has no {key}")
    doc["alert_id"] = str(doc["alert_id"])
    doc["trigger_id"] = str(doc["trigger_id"])
    doc["trigger_time"] = _parse_time(str(doc["trigger_time"]), "trigger_time")
    doc["params"] = {str(k): str(v) for k, v in (doc.get("params") or {}).items()}
    doc["format"] = "json"
    known = set(Alert.model_fields)
    extra = sorted(set(doc) - known)
    if extra:
        raise AlertFormatError(f"JSON alert has unknown keys: {', '.join(extra)}")
    return _validated(doc)


def parse_alert(data: bytes | str) -> Alert:
    """Parse an alert, VOEvent XML or JSON, chosen by its first non-blank character."""
    raw = data.encode() if isinstance(data, str) else data
    head = raw.lstrip()[:1]
    if head == b"<":
        return parse_voevent(raw)
    if head == b"{":
        return parse_json_alert(raw)
    raise AlertFormatError("alert is neither XML (VOEvent) nor a JSON object")
