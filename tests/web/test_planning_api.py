"""Strategies and plannings through the REST API and the pages, as each role sees them."""

from __future__ import annotations

import json
import re
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

with warnings.catch_warnings():
    # starlette 1.x asks for its httpx2 fork; the test client works the same with httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[TestClient]:
    """The site on a fresh database, with one user per role and a COLIBRI machine token."""
    from svomflow.web.app import create_app
    from svomflow.web.auth import add_user, create_token
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
        add_user(s, "colibri", PASSWORD, ["colibri_user"])
        add_user(s, "svom", PASSWORD, ["svom_user"])
        _, app.state.test_token = create_token(s, "colibri", "telescope control")
    with TestClient(app) as client:
        yield client


def signed_in(client: TestClient, name: str) -> tuple[TestClient, str]:
    """Sign ``name`` in on a new client of the same app; return it and its CSRF token."""
    other = TestClient(client.app)
    page = other.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text[:300]
    res = other.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf_token": csrf.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text[:300]
    token = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/account").text)
    assert token
    return other, token.group(1)


def _bearer(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.app.state.test_token}"}  # type: ignore[attr-defined]


SPEC = {
    "description": "afterglow",
    "exposures": [{"filter": "r", "exposure_s": 60, "count": 5}],
    "dither_arcsec": 5,
    "max_airmass": 2.0,
    "priority": 7,
}


def test_strategy_lifecycle_over_the_api(site: TestClient) -> None:
    coord, csrf = signed_in(site, "coord")
    headers = {"X-CSRF-Token": csrf}
    body = {"name": "afterglow", "telescope": "COLIBRI", "instrument": "DDRAGO-B", "spec": SPEC}
    # a cookie-authenticated change without the CSRF token is refused
    assert coord.post("/api/strategies", json=body).status_code == 403
    res = coord.post("/api/strategies", json=body, headers=headers)
    assert res.status_code == 201, res.text
    assert res.json()["version"] == 1 and res.json()["total_exposure_s"] == 300
    assert coord.post("/api/strategies", json=body, headers=headers).status_code == 409
    # the same content again: no new version (200), a change: version 2 (201)
    same = coord.post("/api/strategies/afterglow/versions", json={"spec": SPEC}, headers=headers)
    assert (same.status_code, same.json()["version"]) == (200, 1)
    changed = dict(SPEC, exposures=[{"filter": "i", "exposure_s": 30, "count": 4}])
    v2 = coord.post("/api/strategies/afterglow/versions", json={"spec": changed}, headers=headers)
    assert (v2.status_code, v2.json()["version"]) == (201, 2)
    bad = dict(SPEC, exposures=[{"filter": "z", "exposure_s": 30, "count": 4}])
    res = coord.post("/api/strategies/afterglow/versions", json={"spec": bad}, headers=headers)
    assert res.status_code == 422 and "no filter z" in res.json()["detail"]
    # the telescope's token reads; nothing is published yet
    machine = _bearer(site)
    assert site.get("/api/strategies/afterglow/published", headers=machine).status_code == 404
    res = coord.put("/api/strategies/afterglow/published", json={"version": 1}, headers=headers)
    assert res.json()["published_version"] == 1
    got = site.get("/api/strategies/afterglow/published", headers=machine).json()
    assert (got["version"], got["spec"]["exposures"][0]["filter"]) == (1, "r")
    coord.put("/api/strategies/afterglow/published", json={"version": 2}, headers=headers)
    versions = site.get("/api/strategies/afterglow/versions", headers=machine).json()
    assert [(v["version"], v["published"]) for v in versions] == [(1, False), (2, True)]
    assert versions[0]["digest"] != versions[1]["digest"]
    listed = site.get("/api/strategies", headers=machine).json()
    assert [(s["name"], s["latest_version"], s["published_version"]) for s in listed] == [
        ("afterglow", 2, 2)
    ]
    # the machine client (COLIBRI user) may read but not write
    res = site.put("/api/strategies/afterglow/published", json={"version": 1}, headers=machine)
    assert res.status_code == 403
    res = site.post("/api/strategies/afterglow/versions", json={"spec": SPEC}, headers=machine)
    assert res.status_code == 403
    assert site.get("/api/strategies/afterglow/versions/3", headers=machine).status_code == 404
    # an SVOM-only user does not see the telescope's strategies; anonymous must sign in
    svom, _ = signed_in(site, "svom")
    assert svom.get("/api/strategies").status_code == 403
    assert TestClient(site.app).get("/api/strategies").status_code == 401


def _publish_strategy(site: TestClient) -> tuple[TestClient, dict[str, str]]:
    coord, csrf = signed_in(site, "coord")
    headers = {"X-CSRF-Token": csrf}
    body = {"name": "afterglow", "telescope": "COLIBRI", "instrument": "DDRAGO-B", "spec": SPEC}
    assert coord.post("/api/strategies", json=body, headers=headers).status_code == 201
    coord.put("/api/strategies/afterglow/published", json={"version": 1}, headers=headers)
    return coord, headers


def _planning(start_h: float, *targets: tuple[str, float, float]) -> dict[str, object]:
    t = NOW + timedelta(hours=start_h)
    return {
        "telescope": "COLIBRI",
        "instrument": "DDRAGO-B",
        "title": "night",
        "start": t.isoformat(),
        "end": (t + timedelta(hours=10)).isoformat(),
        "observations": [
            {
                "target": name,
                "ra_deg": 150.0,
                "dec_deg": 2.5,
                "start": (t + timedelta(hours=a)).isoformat(),
                "end": (t + timedelta(hours=b)).isoformat(),
                "strategy": "afterglow",
            }
            for name, a, b in targets
        ],
    }


def test_plannings_and_what_the_telescope_observes_next(site: TestClient) -> None:
    coord, headers = _publish_strategy(site)
    machine = _bearer(site)
    past = coord.post("/api/plannings", json=_planning(-30, ("GRB 261203A", 1, 2)), headers=headers)
    now = coord.post(
        "/api/plannings",
        json=_planning(-1, ("GRB 261204B", 0.5, 2), ("GRB 261204C", 2, 3)),
        headers=headers,
    )
    assert past.status_code == now.status_code == 201, now.text
    clash = _planning(20, ("A", 1, 3), ("B", 2, 4))
    assert coord.post("/api/plannings", json=clash, headers=headers).status_code == 409
    assert site.post("/api/plannings", json=_planning(40), headers=machine).status_code == 403
    # the window query returns what overlaps it, the observations with their version
    got = site.get(
        "/api/plannings",
        params={"start": NOW.isoformat(), "end": (NOW + timedelta(days=1)).isoformat()},
        headers=machine,
    ).json()
    assert [p["id"] for p in got] == [now.json()["id"]]
    assert [(o["target"], o["strategy_version"]) for o in got[0]["observations"]] == [
        ("GRB 261204B", 1),
        ("GRB 261204C", 1),
    ]
    upcoming = site.get("/api/observations", headers=machine).json()
    # from now: the observation running now and the next one, with the strategy's content
    assert [o["target"] for o in upcoming] == ["GRB 261204B", "GRB 261204C"]
    assert upcoming[0]["spec"]["exposures"][0] == {"filter": "r", "exposure_s": 60.0, "count": 5}
    # the open pages hear of each change (server-sent events from the events table)
    from sqlmodel import select
    from svomflow.web.events import WebEvent

    with Session(site.app.state.engine) as s:  # type: ignore[attr-defined]
        events = s.exec(select(WebEvent).where(WebEvent.kind == "planning")).all()
        assert sorted(e.data["id"] for e in events) == sorted([past.json()["id"], now.json()["id"]])
        assert {e.data["instrument"] for e in events} == {"DDRAGO-B"}
    pid = past.json()["id"]
    assert site.delete(f"/api/plannings/{pid}", headers=machine).status_code == 403
    assert coord.delete(f"/api/plannings/{pid}", headers=headers).status_code == 204
    assert site.get(f"/api/plannings/{pid}", headers=machine).status_code == 404


def test_timeline_and_strategy_pages_render_the_data(site: TestClient) -> None:
    coord, headers = _publish_strategy(site)
    coord.post("/api/plannings", json=_planning(-1, ("GRB 261204B", 0.5, 2)), headers=headers)
    colibri, _ = signed_in(site, "colibri")
    page = colibri.get("/planning")
    assert page.status_code == 200
    figure = re.search(r"<script[^>]*id=\"timeline-data\"[^>]*>(.*?)</script>", page.text, re.S)
    assert figure, page.text[:500]
    data = json.loads(figure.group(1))["data"]
    assert data[0]["name"] == "afterglow"
    assert data[0]["text"] == ["GRB 261204B (afterglow v1)"]
    assert data[0]["x"] == [1.5 * 3600 * 1000]
    assert (data[-1]["name"], data[-1]["x"]) == ("planning span", [10 * 3600 * 1000])
    # COLIBRI users read the strategy pages but get no forms; coordinators do
    page = colibri.get("/strategies/afterglow")
    assert page.status_code == 200 and "afterglow" in page.text
    assert 'action="/strategies/afterglow/publish"' not in page.text
    page = coord.get("/strategies/afterglow")
    assert 'action="/strategies/afterglow/publish"' in page.text
    # a form post without the CSRF token is refused; with it a new version is made
    form = {"spec_json": json.dumps(dict(SPEC, priority=9)), "comment": "brighter"}
    assert coord.post("/strategies/afterglow/versions", data=form).status_code == 403
    res = coord.post(
        "/strategies/afterglow/versions",
        data=dict(form, csrf_token=headers["X-CSRF-Token"]),
        follow_redirects=False,
    )
    assert res.status_code == 303
    versions = coord.get("/api/strategies/afterglow/versions").json()
    assert [v["spec"]["priority"] for v in versions] == [7, 9]
    # a refused form comes back to its page with the reason, and nothing is stored
    bad = dict(SPEC, exposures=[{"filter": "z", "exposure_s": 30, "count": 1}])
    page = coord.post(
        "/strategies/afterglow/versions",
        data={"spec_json": json.dumps(bad), "csrf_token": headers["X-CSRF-Token"]},
    )
    assert page.status_code == 200 and "DDRAGO-B has no filter z" in page.text
    page = coord.post(
        "/strategies/afterglow/versions",
        data={"spec_json": "{not json", "csrf_token": headers["X-CSRF-Token"]},
    )
    assert 'role="alert"' in page.text and "strategy content" in page.text
    assert len(coord.get("/api/strategies/afterglow/versions").json()) == 2
    svom, _ = signed_in(site, "svom")
    assert svom.get("/planning").status_code == 403
