"""Duty and shifts: the on-call roster per instrument, editable by coordinators.

The roster (primary and backup instrument scientist per period and instrument) lives in
:mod:`svomflow.products.duty`; the alarm notifications ask the same store who is on call
(:func:`svomflow.products.duty.on_call`). A user sees the roster of the instruments their
role opens (ECLAIRs: SVOM roles, COLIBRI: COLIBRI roles); coordinators add, change and
delete shifts through forms (CSRF-checked) or the REST API (``/api/duty/...``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session
from svomflow.products import duty
from svomflow.products.plannings import TEXT_PATTERN, aware_utc, utc
from svomflow.web.auth import ANY_ROLE, CurrentUser, Role, require_roles
from svomflow.web.db import get_session
from svomflow.web.routes.strategies import flashed, refused
from svomflow.web.templating import NavItem, render
from svomflow.web.visibility import HK_INSTRUMENTS, visible_hk_instruments

__all__ = ["NAV", "ShiftIn", "ShiftOut", "router"]

router = APIRouter()
NAV = (NavItem("/duty", "Duty", ANY_ROLE, order=80),)

Reader = Annotated[CurrentUser, Depends(require_roles(*ANY_ROLE))]
Editor = Annotated[CurrentUser, Depends(require_roles(Role.coordinator))]
DbSession = Annotated[Session, Depends(get_session)]
ShiftId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="shift id")]
# the roster's instruments: the housekeeping sources of visibility.HK_INSTRUMENTS (a test
# keeps the two equal; a Literal gives the API schema its enum)
Instrument = Literal["ECLAIRS", "COLIBRI"]
EMAIL_PATTERN = r"^$|^[^@\s]{1,64}@[^@\s]{1,255}$"
WEBHOOK_PATTERN = r"^$|^https?://[^\s]{1,2000}$"


class ShiftIn(BaseModel):
    """A shift as submitted by a coordinator."""

    instrument: Instrument
    role: Literal["primary", "backup"]
    person: str = Field(min_length=1, max_length=100, pattern=TEXT_PATTERN)
    email: str = Field(default="", max_length=320, pattern=EMAIL_PATTERN)
    webhook: str = Field(default="", max_length=2000, pattern=WEBHOOK_PATTERN)
    start: datetime = Field(description="UTC, with time zone")
    end: datetime = Field(description="UTC, with time zone")

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return aware_utc(value)


class ShiftOut(BaseModel):
    """A recorded shift."""

    id: int
    instrument: str
    role: str
    person: str
    email: str
    webhook: str | None = Field(description="notification URL; coordinators only (null)")
    start: datetime
    end: datetime


def _out(row: duty.DutyShift, user: CurrentUser | None = None) -> ShiftOut:
    """Return a shift as the API shows it to ``user`` (None: an editor, who sees everything)."""
    assert row.id is not None
    # a webhook URL often carries its own secret: only the roster's editors see it
    editor = user is None or user.has(Role.coordinator)
    return ShiftOut(
        id=row.id,
        instrument=row.instrument,
        role=row.role,
        person=row.person,
        email=row.email,
        webhook=row.webhook if editor else None,
        start=row.start.astimezone(UTC),
        end=row.end.astimezone(UTC),
    )


def _visible(user: CurrentUser, instrument: str | None) -> list[str]:
    """Return the instruments to show: the one asked (403 if not the user's) or all theirs."""
    mine = visible_hk_instruments(user)
    if instrument is None:
        return mine
    if instrument not in mine:
        raise HTTPException(403, "your role does not give access to this instrument")
    return [instrument]


def _publish(kind: str, shift: ShiftOut | None, instrument: str, request: Request) -> None:
    from svomflow.web.events import publish

    data = shift.model_dump(mode="json") if shift else {"instrument": instrument}
    data["change"] = kind
    publish("duty", data, engine=request.app.state.engine)


def _record(session: Session, shift_id: int | None, body: ShiftIn) -> ShiftOut:
    """Add (``shift_id`` None) or change a shift; the store's refusals become 409/404."""
    fields = body.model_dump()
    try:
        if shift_id is None:
            row = duty.add_shift(
                session,
                fields.pop("instrument"),
                fields.pop("role"),
                fields.pop("person"),
                fields.pop("start"),
                fields.pop("end"),
                **fields,
            )
        else:
            _existing(session, shift_id)  # 404 before the store's checks
            row = duty.update_shift(session, shift_id, **fields)
    except duty.DutyError as exc:
        session.rollback()
        raise HTTPException(409, str(exc)) from None
    return _out(row)


def _existing(session: Session, shift_id: int) -> duty.DutyShift:
    duty.ensure_schema(session)
    row = session.get(duty.DutyShift, shift_id)
    if row is None:
        raise HTTPException(404, f"no duty shift with id {shift_id}")
    return row


# --- REST API -------------------------------------------------------------------------------


@router.get("/api/duty/on-call", tags=["duty"])
def api_on_call(
    user: Reader, session: DbSession, instrument: Instrument | None = None
) -> list[ShiftOut]:
    """Return who is on call now (primary first) for one or every instrument the user sees."""
    now = datetime.now(UTC)
    return [
        _out(s, user) for i in _visible(user, instrument) for s in duty.on_call(session, i, now)
    ]


@router.get("/api/duty/shifts", tags=["duty"])
def api_shifts(
    user: Reader,
    session: DbSession,
    instrument: Instrument | None = None,
    start: Annotated[datetime | None, Query()] = None,
    end: Annotated[datetime | None, Query()] = None,
) -> list[ShiftOut]:
    """Return the shifts overlapping ``[start, end)`` of the instruments the user sees."""
    try:  # a time without zone is UTC, as everywhere on the site
        lo = utc(start) if start else None
        hi = utc(end) if end else None
    except OverflowError:
        raise HTTPException(422, "time out of range") from None
    out: list[ShiftOut] = []
    for i in _visible(user, instrument):
        out.extend(_out(s, user) for s in duty.shifts(session, i, lo, hi))
    return sorted(out, key=lambda s: (s.start, s.instrument, s.role))


@router.post("/api/duty/shifts", status_code=201, tags=["duty"])
def api_add_shift(body: ShiftIn, request: Request, _user: Editor, session: DbSession) -> ShiftOut:
    """Add a shift (409 if it overlaps another of the same instrument and role)."""
    shift = _record(session, None, body)
    _publish("added", shift, shift.instrument, request)
    return shift


@router.put("/api/duty/shifts/{shift_id}", tags=["duty"])
def api_update_shift(
    shift_id: ShiftId, body: ShiftIn, request: Request, _user: Editor, session: DbSession
) -> ShiftOut:
    """Replace a shift's fields (same checks as adding one)."""
    shift = _record(session, shift_id, body)
    _publish("changed", shift, shift.instrument, request)
    return shift


@router.delete("/api/duty/shifts/{shift_id}", status_code=204, tags=["duty"])
def api_delete_shift(
    shift_id: ShiftId, request: Request, _user: Editor, session: DbSession
) -> Response:
    """Delete a shift."""
    row = _existing(session, shift_id)
    instrument = row.instrument
    duty.delete_shift(session, shift_id)
    _publish("deleted", None, instrument, request)
    return Response(status_code=204)


# --- pages ----------------------------------------------------------------------------------


@router.get("/duty", response_class=HTMLResponse, include_in_schema=False)
def duty_page(
    request: Request,
    user: Reader,
    session: DbSession,
    instrument: Instrument | None = None,
    days_back: Annotated[int, Query(ge=0, le=366)] = 7,
    days_ahead: Annotated[int, Query(ge=1, le=366)] = 56,
) -> HTMLResponse:
    """Show who is on call now and the roster around now; coordinators get the forms."""
    now = datetime.now(UTC)
    shown = _visible(user, instrument)
    lo, hi = now - timedelta(days=days_back), now + timedelta(days=days_ahead)
    roster = [_out(s, user) for i in shown for s in duty.shifts(session, i, lo, hi)]
    return render(
        request,
        "duty.html",
        instruments=shown,
        all_instruments=visible_hk_instruments(user),
        instrument=instrument or "",
        on_call_now={i: [_out(s, user) for s in duty.on_call(session, i, now)] for i in shown},
        roster=sorted(roster, key=lambda s: (s.start, s.instrument, s.role)),
        can_edit=user.has(Role.coordinator),
        now=now,
        days_back=days_back,
        days_ahead=days_ahead,
        error=flashed(request),
    )


def _form_shift(
    instrument: str, role: str, person: str, email: str, webhook: str, start: str, end: str
) -> ShiftIn:
    """Build a :class:`ShiftIn` from the form (``datetime-local`` fields are UTC)."""
    from pydantic import ValidationError

    def as_utc(text: str) -> datetime:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise HTTPException(422, f"not a date and time: {text!r}") from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    try:
        return ShiftIn.model_validate(
            {
                "instrument": instrument,
                "role": role,
                "person": person,
                "email": email,
                "webhook": webhook,
                "start": as_utc(start),
                "end": as_utc(end),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise HTTPException(422, f"{first['loc'][0]}: {first['msg']}") from None


FormText = Annotated[str, Form(max_length=2000)]


@router.post("/duty/shifts", include_in_schema=False)
def duty_add_form(
    request: Request,
    _user: Editor,
    session: DbSession,
    instrument: FormText,
    role: FormText,
    person: FormText,
    start: FormText,
    end: FormText,
    email: FormText = "",
    webhook: FormText = "",
) -> RedirectResponse:
    """Add a shift from the roster page's form (CSRF checked by the role dependency)."""
    try:
        body = _form_shift(instrument, role, person, email, webhook, start, end)
        shift = _record(session, None, body)
    except HTTPException as exc:
        return refused(request, exc, "/duty")
    _publish("added", shift, shift.instrument, request)
    return RedirectResponse("/duty", status_code=303)


@router.get("/duty/shifts/{shift_id}", response_class=HTMLResponse, include_in_schema=False)
def duty_edit_page(
    request: Request, shift_id: ShiftId, _user: Editor, session: DbSession
) -> HTMLResponse:
    """Show the form that changes or deletes one shift."""
    return render(
        request,
        "duty_edit.html",
        shift=_out(_existing(session, shift_id)),
        instruments=list(HK_INSTRUMENTS),
        error=flashed(request),
    )


@router.post("/duty/shifts/{shift_id}", include_in_schema=False)
def duty_edit_form(
    request: Request,
    shift_id: ShiftId,
    _user: Editor,
    session: DbSession,
    instrument: FormText,
    role: FormText,
    person: FormText,
    start: FormText,
    end: FormText,
    email: FormText = "",
    webhook: FormText = "",
) -> RedirectResponse:
    """Change a shift from its form."""
    try:
        body = _form_shift(instrument, role, person, email, webhook, start, end)
        shift = _record(session, shift_id, body)
    except HTTPException as exc:
        return refused(request, exc, f"/duty/shifts/{shift_id}")
    _publish("changed", shift, shift.instrument, request)
    return RedirectResponse("/duty", status_code=303)


@router.post("/duty/shifts/{shift_id}/delete", include_in_schema=False)
def duty_delete_form(
    request: Request, shift_id: ShiftId, _user: Editor, session: DbSession
) -> RedirectResponse:
    """Delete a shift from its form."""
    row = _existing(session, shift_id)
    instrument = row.instrument
    duty.delete_shift(session, shift_id)
    _publish("deleted", None, instrument, request)
    return RedirectResponse("/duty", status_code=303)
