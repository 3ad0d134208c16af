"""The duty roster: coordinators edit it through forms and the API, everyone sees who is on call."""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from svomflow.products import duty

with warnings.catch_warnings():
    # starlette 1.x asks for its httpx2 fork; the test client works the same with httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[TestClient]:
    """The site on a fresh database with a coordinator, an SVOM and a COLIBRI user."""
    from svomflow.web.app import create_app
    from svomflow.web.auth import add_user
    from svomflow.web.settings import WebSettings

    (tmp_path / "products").mkdir()
    app = create_app(
        WebSettings(
            database_url=f"sqlite:///{tmp_path / 'site.db'}",
            products_root=tmp_path / "products",
            secret_key=uuid.uuid4().hex,
        )
    )
    with Session(app.state.engine) as s:
        add_user(s, "coord", PASSWORD, ["coordinator"])
        add_user(s, "svom", PASSWORD, ["svom_user"])
        add_user(s, "colibri", PASSWORD, ["colibri_user"])
    with TestClient(app) as client:
        yield client


def signed_in(client: TestClient, name: str) -> tuple[TestClient, str]:
    """Sign ``name`` in on a new client of the same app; return it and its CSRF token."""
    other = TestClient(client.app)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/login").text)
    assert csrf
    res = other.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf_token": csrf.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text[:300]
    token = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/account").text)
    assert token
    return other, token.group(1)


def _form(instrument: str, role: str, person: str, start_h: float, end_h: float) -> dict:
    fmt = "%Y-%m-%dT%H:%M"
    return {
        "instrument": instrument,
        "role": role,
        "person": person,
        "email": f"{person.split()[0].lower()}@example.org",
        "start": (NOW + timedelta(hours=start_h)).strftime(fmt),
        "end": (NOW + timedelta(hours=end_h)).strftime(fmt),
    }


def test_coordinator_edits_the_roster_and_everyone_sees_who_is_on_call(
    site: TestClient,
) -> None:
    coord, csrf = signed_in(site, "coord")
    add = _form("ECLAIRS", "primary", "Ada Lovelace", -2, 10)
    # a form without the session's CSRF token is refused, and nothing is stored
    assert coord.post("/duty/shifts", data=add).status_code == 403
    res = coord.post("/duty/shifts", data=dict(add, csrf_token=csrf), follow_redirects=False)
    assert (res.status_code, res.headers["location"]) == (303, "/duty")
    backup = _form("ECLAIRS", "backup", "Grace Hopper", -2, 30)
    coord.post("/duty/shifts", data=dict(backup, csrf_token=csrf))
    coord.post(
        "/duty/shifts", data=dict(_form("COLIBRI", "primary", "Vera Rubin", -1, 5), csrf_token=csrf)
    )
    # a second ECLAIRs primary overlapping the first is refused with the reason
    clash = coord.post(
        "/duty/shifts",
        data=dict(_form("ECLAIRS", "primary", "Emmy Noether", 5, 20), csrf_token=csrf),
    )
    # the roster page says why (once)
    assert clash.status_code == 200 and "overlaps Ada Lovelace" in clash.text
    assert "overlaps Ada Lovelace" not in coord.get("/duty").text
    # the alarm notifications' own query sees the roster: primary first
    with Session(site.app.state.engine) as s:  # type: ignore[attr-defined]
        now = duty.on_call(s, "ECLAIRS", datetime.now(UTC))
        assert [(x.role, x.person) for x in now] == [
            ("primary", "Ada Lovelace"),
            ("backup", "Grace Hopper"),
        ]
    # an SVOM user sees ECLAIRs' roster only, and cannot change it
    svom, svom_csrf = signed_in(site, "svom")
    page = svom.get("/duty")
    assert page.status_code == 200
    assert "Ada Lovelace" in page.text and "Vera Rubin" not in page.text
    assert 'action="/duty/shifts"' not in page.text
    on_call = svom.get("/api/duty/on-call").json()
    assert [(x["instrument"], x["role"], x["person"]) for x in on_call] == [
        ("ECLAIRS", "primary", "Ada Lovelace"),
        ("ECLAIRS", "backup", "Grace Hopper"),
    ]
    assert svom.get("/api/duty/on-call", params={"instrument": "COLIBRI"}).status_code == 403
    refused = svom.post("/duty/shifts", data=dict(add, csrf_token=svom_csrf))
    assert refused.status_code == 403
    colibri, _ = signed_in(site, "colibri")
    assert [x["person"] for x in colibri.get("/api/duty/on-call").json()] == ["Vera Rubin"]
    # the coordinator changes the primary, then deletes the backup
    ada = next(x for x in coord.get("/api/duty/shifts").json() if x["person"] == "Ada Lovelace")
    assert coord.get(f"/duty/shifts/{ada['id']}").status_code == 200
    changed = dict(add, person="Katherine Johnson", csrf_token=csrf)
    res = coord.post(f"/duty/shifts/{ada['id']}", data=changed, follow_redirects=False)
    assert res.status_code == 303
    grace = next(x for x in coord.get("/api/duty/shifts").json() if x["person"] == "Grace Hopper")
    assert coord.post(f"/duty/shifts/{grace['id']}/delete").status_code == 403
    coord.post(f"/duty/shifts/{grace['id']}/delete", data={"csrf_token": csrf})
    with Session(site.app.state.engine) as s:  # type: ignore[attr-defined]
        now = duty.on_call(s, "ECLAIRS", datetime.now(UTC))
        assert [(x.role, x.person) for x in now] == [("primary", "Katherine Johnson")]
    # the banner of every page names who is on call
    assert "Katherine Johnson" in svom.get("/duty").text
    assert (
        coord.post(f"/duty/shifts/{grace['id']}/delete", data={"csrf_token": csrf}).status_code
        == 404
    )


def test_the_rosters_instruments_are_the_housekeeping_sources() -> None:
    from typing import get_args

    from svomflow.web.routes.duty import Instrument
    from svomflow.web.visibility import HK_INSTRUMENTS

    assert set(get_args(Instrument)) == set(HK_INSTRUMENTS)


def test_duty_api_round_trip_and_validation(site: TestClient) -> None:
    coord, csrf = signed_in(site, "coord")
    headers = {"X-CSRF-Token": csrf}
    body = {
        "instrument": "COLIBRI",
        "role": "backup",
        "person": "Henrietta Leavitt",
        "email": "henrietta@example.org",
        "webhook": "https://hooks.example.org/T0/secret-part",
        "start": (NOW + timedelta(days=1)).isoformat(),
        "end": (NOW + timedelta(days=2)).isoformat(),
    }
    res = coord.post("/api/duty/shifts", json=body, headers=headers)
    assert res.status_code == 201, res.text
    shift = res.json()
    assert shift["webhook"] == body["webhook"]
    # readers see who is on duty and how to mail them, not the webhook's secret URL
    colibri, _ = signed_in(site, "colibri")
    seen = colibri.get("/api/duty/shifts").json()
    assert [(x["person"], x["email"], x["webhook"]) for x in seen] == [
        ("Henrietta Leavitt", "henrietta@example.org", None)
    ]
    later = dict(
        body, start=(NOW + timedelta(days=3)).isoformat(), end=(NOW + timedelta(days=4)).isoformat()
    )
    res = coord.put(f"/api/duty/shifts/{shift['id']}", json=later, headers=headers)
    assert res.status_code == 200 and res.json()["start"].startswith(
        (NOW + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    )
    window = {
        "start": (NOW + timedelta(days=2.5)).isoformat(),
        "end": (NOW + timedelta(days=5)).isoformat(),
    }
    assert [x["id"] for x in coord.get("/api/duty/shifts", params=window).json()] == [shift["id"]]
    window = {"start": NOW.isoformat(), "end": (NOW + timedelta(days=2.5)).isoformat()}
    assert coord.get("/api/duty/shifts", params=window).json() == []
    reversed_ = dict(body, start=body["end"], end=body["start"])
    assert coord.post("/api/duty/shifts", json=reversed_, headers=headers).status_code == 409
    naive = dict(body, start="2026-12-05T10:00:00")
    assert coord.post("/api/duty/shifts", json=naive, headers=headers).status_code == 422
    assert (
        coord.post("/api/duty/shifts", json=dict(body, role="boss"), headers=headers).status_code
        == 422
    )
    assert coord.put("/api/duty/shifts/999", json=body, headers=headers).status_code == 404
    assert coord.delete(f"/api/duty/shifts/{shift['id']}", headers=headers).status_code == 204
    assert coord.delete(f"/api/duty/shifts/{shift['id']}", headers=headers).status_code == 404
