"""Alert messages: the validated model, VOEvent (GCN style) and JSON parsing.

Alerts come from outside, so they are parsed defensively: XML through ``defusedxml``
(no entity expansion, no external entities, no DTDs), every required element checked, and
anything wrong raised as :class:`AlertFormatError` with the reason, which the listener logs
and sends to the dead-letter subject.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Any, Literal

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from pydantic import BaseModel, Field, ValidationError, field_validator
from svomflow.errors import SvomflowError

__all__ = [
    "Alert",
    "AlertFormatError",
    "ErrorRegion",
    "Notice",
    "notice_from_voevent",
    "parse_alert",
    "parse_gcn_notice",
    "parse_json_alert",
    "parse_notice",
    "parse_voevent",
]

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


# --- other missions' notices (GCN Kafka unified JSON, VOEvent) -------------------------------

#: Containment of a VOEvent's ``Error2Radius`` by the publishing stream (GCN conventions: the
#: Fermi GBM notices give 1-sigma statistical+systematic radii; the others 90 %).
_VOEVENT_CONTAINMENT = (("ivo://nasa.gsfc.gcn/Fermi#GBM", 0.68),)


class ErrorRegion(BaseModel):
    """Where a notice says the source is: a circle, an ellipse or a HEALPix sky map.

    Radii and axes are in degrees at ``containment`` (the probability the source is
    inside). A sky map is a FITS HEALPix file (flat ``PROB`` or multi-order ``UNIQ`` +
    ``PROBDENSITY``) given inline (``skymap_fits``) or by URL only (``skymap_url``: not
    fetched here).
    """

    kind: Literal["circle", "ellipse", "skymap"]
    ra_deg: float | None = Field(default=None, ge=0.0, lt=360.0)
    dec_deg: float | None = Field(default=None, ge=-90.0, le=90.0)
    radius_deg: float | None = Field(default=None, gt=0.0, le=180.0)
    semi_minor_deg: float | None = Field(default=None, gt=0.0, le=180.0)
    position_angle_deg: float = 0.0
    containment: float = Field(default=0.9, gt=0.0, lt=1.0)
    systematic_included: bool = False
    skymap_fits: bytes | None = None
    skymap_url: str | None = None


class Notice(BaseModel):
    """Another mission's alert (or a VOEvent) reduced to what a follow-up needs."""

    notice_id: str = Field(description="unique id: ivorn, or mission/instrument/id/record")
    mission: str = ""
    instrument: str = ""
    messenger: Literal["EM", "GW", "Neutrino"] = "EM"
    event_id: str = Field(min_length=1, max_length=64)
    trigger_time: datetime
    alert_type: str = "initial"
    region: ErrorRegion | None = None
    format: Literal["gcn-json", "voevent"] = "gcn-json"

    @field_validator("trigger_time")
    @classmethod
    def _utc_time(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _first(value: Any) -> str | None:
    """Return a scalar or the first item of a list as text (GCN ids may be lists)."""
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value in (None, "") else str(value)


def _opt_float(doc: dict[str, Any], key: str) -> float | None:
    return None if doc.get(key) is None else _float(doc[key], key)


def _gcn_region(doc: dict[str, Any]) -> ErrorRegion | None:
    """Return the error region of a unified GCN JSON notice (flat or ``localization`` object)."""
    loc_raw, event_raw = doc.get("localization"), doc.get("event")
    loc: dict[str, Any] = loc_raw if isinstance(loc_raw, dict) else doc
    event: dict[str, Any] = event_raw if isinstance(event_raw, dict) else {}
    skymap = event.get("skymap") or loc.get("healpix_file")
    containment = _opt_float(loc, "containment_probability") or 0.9
    if not 0.0 < containment < 1.0:
        raise AlertFormatError(f"containment_probability {containment} is not in (0, 1)")
    common = {
        "containment": containment,
        "systematic_included": bool(loc.get("systematic_included", False)),
    }
    if loc.get("ra") is not None and loc.get("dec") is not None:
        ra, dec = _float(loc["ra"], "ra") % 360.0, _float(loc["dec"], "dec")
        a = _opt_float(loc, "position_a_error") or _opt_float(loc, "semi_major")
        a = a or _opt_float(loc, "ra_dec_error")
        b = _opt_float(loc, "position_b_error") or _opt_float(loc, "semi_minor")
        if a is not None:
            kind: Literal["circle", "ellipse"] = "ellipse" if b else "circle"
            return _region(
                {
                    "kind": kind,
                    "ra_deg": ra,
                    "dec_deg": dec,
                    "radius_deg": a,
                    "semi_minor_deg": b,
                    "position_angle_deg": _opt_float(loc, "position_error_pa") or 0.0,
                    **common,
                }
            )
    if skymap:
        try:
            data = base64.b64decode(str(skymap), validate=True)
        except (ValueError, binascii.Error):
            raise AlertFormatError("the sky map is not base64") from None
        return _region({"kind": "skymap", "skymap_fits": data, **common})
    url = loc.get("healpix_url")
    if url:
        return _region({"kind": "skymap", "skymap_url": str(url), **common})
    return None


def _region(fields: dict[str, Any]) -> ErrorRegion:
    try:
        return ErrorRegion.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise AlertFormatError(f"invalid error region: {problems}") from None


def parse_gcn_notice(data: bytes | str) -> Notice:
    """Parse a GCN Kafka notice in the unified JSON schema (Swift, Fermi, IceCube, LVK...).

    Understood: ``mission``, ``instrument``, ``messenger``, ``id``/``event_name``/
    ``superevent_id`` (the event), ``trigger_time`` (or ``discovery_datetime``, or LVK's
    ``event.time``), ``alert_type``, ``record_number``; the position as ``ra``, ``dec`` and
    ``ra_dec_error`` (or ellipse axes ``position_a_error``/``position_b_error`` and
    ``position_error_pa``) at ``containment_probability`` (default 0.9), flat or in a
    ``localization`` object; or a HEALPix map (LVK ``event.skymap``, ``healpix_file``: base64
    FITS; ``healpix_url``). Unknown keys are ignored (the schemas grow).

    Raises
    ------
    AlertFormatError
        Not a JSON object, no event id or trigger time, or a malformed value.
    """
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > 50 * _MAX_BYTES:  # an LVK sky map is a few hundred kB in base64
        raise AlertFormatError(f"notice of {len(raw)} bytes is too large")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlertFormatError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise AlertFormatError("a GCN notice must be a JSON object")
    event_raw = doc.get("event")
    event: dict[str, Any] = event_raw if isinstance(event_raw, dict) else {}
    event_id = (
        _first(doc.get("superevent_id"))
        or _first(doc.get("event_name"))
        or _first(event.get("event_name"))
        or _first(doc.get("id"))
        or _first(event.get("id"))
    )
    if not event_id:
        raise AlertFormatError("GCN notice has no id, event_name or superevent_id")
    alert_type = str(doc.get("alert_type") or "initial").lower()
    when = doc.get("trigger_time") or event.get("time")
    disc = doc.get("discovery_datetime")
    if not when and isinstance(disc, dict):
        when = disc.get("trigger_time")
    if not when and alert_type == "retraction":  # an LVK retraction carries no event
        when = doc.get("time_created") or doc.get("alert_datetime")
    trigger_time = _parse_time(str(when) if when else None, "trigger_time")
    mission = str(doc.get("mission") or "")
    instrument = str(doc.get("instrument") or "")
    if not mission and "superevent_id" in doc:
        mission, instrument = "LVK", instrument or "IGWN"
    messenger: Any = doc.get("messenger") or ("GW" if mission == "LVK" else "EM")
    record = doc.get("record_number", doc.get("revision", ""))
    nid = "/".join(str(x) for x in (mission, instrument, event_id, alert_type, record) if x != "")
    region = None if alert_type == "retraction" else _gcn_region(doc)
    try:
        return Notice(
            notice_id=nid,
            mission=mission,
            instrument=instrument,
            messenger=messenger,
            event_id=event_id,
            trigger_time=trigger_time,
            alert_type=alert_type,
            region=region,
            format="gcn-json",
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise AlertFormatError(f"invalid notice: {problems}") from None


def notice_from_voevent(data: bytes | str) -> Notice:
    """Parse a VOEvent (GCN style) into a :class:`Notice` (the circle of ``Error2Radius``).

    The radius's containment follows the stream's convention (Fermi GBM: 68 %, others 90 %);
    an LVK VOEvent's ``skymap_fits`` parameter becomes a sky map given by URL.
    """
    alert = parse_voevent(data)
    containment = next(
        (p for prefix, p in _VOEVENT_CONTAINMENT if alert.alert_id.startswith(prefix)), 0.9
    )
    region = None
    if alert.error_deg:
        region = _region(
            {
                "kind": "circle",
                "ra_deg": alert.ra_deg,
                "dec_deg": alert.dec_deg,
                "radius_deg": alert.error_deg,
                "containment": containment,
                "systematic_included": True,
            }
        )
    elif alert.params.get("skymap_fits"):
        region = _region(
            {"kind": "skymap", "skymap_url": alert.params["skymap_fits"], "containment": 0.9}
        )
    mission, _, inst = alert.alert_id.removeprefix("ivo://").partition("#")
    return Notice(
        notice_id=alert.alert_id,
        mission=mission.rsplit("/", 1)[-1],
        instrument=alert.instrument or inst.split("_", 1)[0],
        event_id=alert.trigger_id,
        trigger_time=alert.trigger_time,
        alert_type="initial" if alert.role == "observation" else alert.role,
        region=region,
        format="voevent",
    )


def parse_notice(data: bytes | str) -> Notice:
    """Parse another mission's notice: VOEvent XML or GCN unified JSON, by its first character."""
    raw = data.encode() if isinstance(data, str) else data
    head = raw.lstrip()[:1]
    if head == b"<":
        return notice_from_voevent(raw)
    if head == b"{":
        return parse_gcn_notice(raw)
    raise AlertFormatError("notice is neither XML (VOEvent) nor a JSON object")
