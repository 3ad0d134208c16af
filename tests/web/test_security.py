"""Security of the whole site: every route of the app is checked, not a hand-picked list.

* every page and endpoint (``app.routes``) refuses an anonymous request (401 for API
  clients, a redirect to the sign-in page for browsers), except a short explicit list of
  public ones; a new route missing its role check fails here;
* every route refuses each role its dependencies do not admit (403), read from the route's
  own ``require_roles`` dependencies, and admits admins;
* one user cannot read or change another's objects by changing an id in the URL;
* every state-changing request made with the session cookie needs the session's CSRF token;
* no path outside the products root is served (``..``, encoded, absolute, symbolic link);
* passwords never reach a log, the console or the database.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from sqlmodel import Session
from svomflow.products.database import ProductRow
from svomflow.web.auth import Role

with warnings.catch_warnings():
    # starlette 1.x asks for its httpx2 fork; the test client works the same with httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"
SECRET = "the-secret-outside-the-root"
# routes anyone may open: sign-in, language switch, the API schema and its viewer, the
# static files, and the products root's fingerprint (a starting command compares it)
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/lang"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
    ("GET", "/static/plotly.min.js"),
    ("GET", "/static/swagger-ui/{name}"),
    ("GET", "/_svomflow/root"),
}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
ROLES = (Role.svom_user, Role.colibri_user, Role.coordinator, Role.admin)
# endpoints that stream until the client leaves: only their refusals are requested
STREAMS = {"/events"}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[TestClient]:
    """The site on a fresh database with one user per role (named after the role)."""
    from svomflow.web.app import create_app
    from svomflow.web.auth import add_user
    from svomflow.web.settings import WebSettings

    root = tmp_path / "products"
    root.mkdir()
    (tmp_path / "secret.txt").write_text(SECRET)
    app = create_app(
        WebSettings(
            database_url=f"sqlite:///{tmp_path / 'site.db'}",
            products_root=root,
            secret_key=uuid.uuid4().hex,
        )
    )
    with Session(app.state.engine) as s:
        for role in ROLES:
            add_user(s, role.value, PASSWORD, [role])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def signed_in(client: TestClient, name: str, password: str = PASSWORD) -> tuple[TestClient, str]:
    """Sign ``name`` in on a new client of the same app; return it and its CSRF token."""
    other = TestClient(client.app, raise_server_exceptions=False)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/login").text)
    assert csrf
    res = other.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": csrf.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text[:300]
    token = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/account").text)
    assert token
    return other, token.group(1)


def _flat(routes: list, prefix: str = "") -> Iterator[tuple[str, object]]:
    """Yield ``(full path, route)`` through the routers FastAPI keeps included as wrappers."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat(included.routes, prefix + route.include_context.prefix)
        else:
            yield prefix + getattr(route, "path", ""), route


def _routes(app: object) -> list[tuple[str, str, APIRoute | None]]:
    """Every (method, path, route) the app answers, static mounts as one GET."""
    out: list[tuple[str, str, APIRoute | None]] = []
    for path, route in _flat(app.routes):  # type: ignore[attr-defined]
        if isinstance(route, APIRoute):
            out.extend((m, path, route) for m in sorted(route.methods - {"HEAD"}))
        elif getattr(route, "methods", None):
            out.extend((m, path, None) for m in sorted(route.methods - {"HEAD"}))  # type: ignore[attr-defined]
        elif path == "/static":
            out.append(("GET", "/static/site.css", None))
    return out


def _concrete(path: str) -> str:
    """Fill the path parameters with values of the right type (ints 1, paths a file name)."""

    def value(match: re.Match[str]) -> str:
        kind = match.group(2) or "str"
        return {"int": "1", "path": "x/y.fits", "float": "1.0"}.get(kind, "x")

    return re.sub(r"\{(\w+)(?::(\w+))?\}", value, path)


def _admitted(route: APIRoute) -> set[Role] | None:
    """Roles the route's ``require_roles`` dependencies admit (None: no role check at all)."""
    found: set[Role] | None = None
    signed_in_only = False
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        stack.extend(dep.dependencies)
        call = dep.call
        if call is None:
            continue
        name = getattr(call, "__qualname__", "")
        if name.startswith("require_roles."):
            wanted = set(inspect.getclosurevars(call).nonlocals["wanted"]) | {Role.admin}
            found = wanted if found is None else found & wanted
        elif name == "current_user":
            signed_in_only = True
    if found is None and signed_in_only:
        return set(ROLES)
    return found


def test_every_route_refuses_anonymous_requests(site: TestClient) -> None:
    routes = _routes(site.app)
    assert len(routes) > 30, routes  # the whole site, not a stub
    anonymous = TestClient(site.app)
    public_seen = set()
    for method, path, _ in routes:
        if (method, path) in PUBLIC or path == "/static/site.css":
            public_seen.add((method, path))
            continue
        url = _concrete(path)
        api = anonymous.request(method, url, follow_redirects=False)
        assert api.status_code in (401, 403), (method, path, api.status_code, api.text[:200])
        if method == "GET":
            page = anonymous.get(url, headers={"Accept": "text/html"}, follow_redirects=False)
            assert page.status_code in (303, 401), (path, page.status_code)
            if page.status_code == 303:
                assert page.headers["location"].startswith("/login?next=")
    # the explicit list is the list: nothing else is public, nothing in it is stale
    assert public_seen - {("GET", "/static/site.css")} == PUBLIC


def test_every_route_refuses_the_roles_it_does_not_admit(site: TestClient) -> None:
    clients = {role: signed_in(site, role.value) for role in ROLES}
    checked = refused = 0
    for method, path, route in _routes(site.app):
        if route is None or (method, path) in PUBLIC:
            continue
        admitted = _admitted(route)
        assert admitted is not None, f"{method} {path} has no role check"
        url = _concrete(path)
        for role in ROLES:
            client, csrf = clients[role]
            if role in admitted:
                continue
            res = client.request(method, url, headers={"X-CSRF-Token": csrf})
            assert res.status_code == 403, (role, method, path, res.status_code, res.text[:200])
            refused += 1
        if method == "GET" and path not in STREAMS:
            client, _ = clients[Role.admin]
            res = client.get(url)
            assert res.status_code not in (401, 403), (method, path, res.status_code)
        checked += 1
    assert checked > 20 and refused > 10, (checked, refused)


def test_a_user_cannot_touch_anothers_objects_by_changing_an_id(
    site: TestClient, tmp_path: Path
) -> None:
    from svomflow.web.auth import add_user, create_token

    with Session(site.app.state.engine) as s:  # type: ignore[attr-defined]
        add_user(s, "alice", PASSWORD, [Role.svom_user])
        add_user(s, "bob", PASSWORD, [Role.svom_user])
        alice_token, alice_secret = create_token(s, "alice", "alice's script")
        alice_token_id = alice_token.id
        # a COLIBRI product, with its file, that SVOM users must not read
        path = tmp_path / "products" / "colibri" / "qti.fits"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"SIMPLE  = T" + b" " * 2869)
        row = ProductRow(
            type_code="QTI",
            instrument="DDRAGO-B",
            obs_id="sb99999999",
            version=1,
            identity=uuid.uuid4().hex,
            path=str(path),
            checksum="0" * 64,
            created=datetime.now(UTC),
        )
        s.add(row)
        s.commit()
        product_id = row.id
        # an alarm of COLIBRI's, which only its people on duty (or coordinators) acknowledge
        from svomflow.products import housekeeping as hk

        alarm_id = hk.raise_alarm(
            s, "COLIBRI", "dome_humidity", "hard", datetime.now(UTC), 97.0, limit=90.0
        ).id
    bob, bob_csrf = signed_in(site, "bob")
    # bob revokes "his" token by giving alice's id: refused as if it did not exist
    res = bob.post(
        f"/account/tokens/{alice_token_id}/revoke",
        data={"csrf_token": bob_csrf},
        follow_redirects=False,
    )
    assert res.status_code == 404
    me = TestClient(site.app).get("/api/me", headers={"Authorization": f"Bearer {alice_secret}"})
    assert me.status_code == 200 and me.json()["name"] == "alice"
    # the COLIBRI product by id or by file path: refused to an SVOM user, served to COLIBRI's
    for url in (
        f"/products/{product_id}",
        f"/products/{product_id}/download",
        "/files/colibri/qti.fits",
    ):
        assert bob.get(url).status_code in (403, 404), url
    colibri, _ = signed_in(site, Role.colibri_user.value)
    assert colibri.get("/files/colibri/qti.fits").content.startswith(b"SIMPLE")
    # bob acknowledges the COLIBRI alarm by its id: it reads as missing, and stays raised;
    # a COLIBRI user who is not on duty is refused too
    ack = f"/api/alarms/{alarm_id}/acknowledge"
    assert bob.post(ack, headers={"X-CSRF-Token": bob_csrf}).status_code == 404
    colibri_csrf = signed_in(site, Role.colibri_user.value)
    res = colibri_csrf[0].post(ack, headers={"X-CSRF-Token": colibri_csrf[1]})
    assert res.status_code == 403
    with Session(site.app.state.engine) as s:  # type: ignore[attr-defined]
        alarm = s.get(hk.Alarm, alarm_id)
        assert alarm is not None and (alarm.state, alarm.acknowledged_by) == ("raised", None)
    listed = bob.get("/api/products").json()
    assert all(p["id"] != product_id for p in listed)
    assert any(p["id"] == product_id for p in colibri.get("/api/products").json())


def test_every_state_change_by_cookie_needs_the_csrf_token(site: TestClient) -> None:
    admin, csrf = signed_in(site, Role.admin.value)
    unsafe = [(m, p) for m, p, r in _routes(site.app) if m in UNSAFE and r is not None]
    assert len(unsafe) > 10, unsafe
    for method, path in unsafe:
        url = _concrete(path)
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            res = admin.request(method, url, headers=headers, follow_redirects=False)
            assert res.status_code == 403, (method, path, headers, res.status_code)
        res = admin.request(method, url, data={"csrf_token": "forged"}, follow_redirects=False)
        assert res.status_code == 403, (method, path, "form", res.status_code)
    # the right token passes the check (the request then fails or succeeds on its merits)
    res = admin.post("/account/tokens", data={"name": "ci", "csrf_token": csrf})
    assert res.status_code == 200 and "svf_" in res.text
    # sign-in itself is protected (login CSRF): a form without the token is refused
    fresh = TestClient(site.app)
    res = fresh.post("/login", data={"name": "admin", "password": PASSWORD})
    assert res.status_code == 403


def test_ids_out_of_the_databases_range_are_refused_on_every_route(site: TestClient) -> None:
    """Integer ids no database integer holds get a 4xx on every route (pages and forms too)."""
    admin, csrf = signed_in(site, Role.admin.value)
    failures, probed = [], 0
    for method, path, route in _routes(site.app):
        if route is None:
            continue
        ints = [p.name for p in route.dependant.path_params if p.field_info.annotation is int]
        for name in ints:
            for value in (2**63, 2**70, -(2**63) - 1):
                url = re.sub(
                    r"\{(\w+)(?::\w+)?\}",
                    lambda m, v=value, n=name: str(v) if m.group(1) == n else "1",
                    path,
                )
                res = admin.request(method, url, headers={"X-CSRF-Token": csrf})
                probed += 1
                if res.status_code >= 500:
                    failures.append(f"{method} {url}: {res.status_code}")
    assert probed >= 10, probed
    assert not failures, failures


def _raw_get(app: object, raw_path: bytes, cookie: str) -> tuple[int, bytes]:
    """GET ``raw_path`` exactly as given (HTTP clients normalise ``..`` away)."""
    path = raw_path.split(b"?")[0]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path.decode("latin-1"),
        "raw_path": path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []

    async def run() -> None:
        done = asyncio.Event()
        requested = False

        async def receive() -> dict:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()  # the client stays until the whole answer is sent
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await app(scope, receive, send)  # type: ignore[operator]

    asyncio.run(run())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def test_no_path_outside_the_products_root_is_served(site: TestClient, tmp_path: Path) -> None:
    root = tmp_path / "products"
    (root / "inside.txt").write_text("inside")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "dirlink").symlink_to(tmp_path)
    admin, _ = signed_in(site, Role.admin.value)
    cookie = "; ".join(f"{k}={v}" for k, v in admin.cookies.items())
    status, body = _raw_get(site.app, b"/files/inside.txt", cookie)
    assert (status, body) == (200, b"inside")  # the check is not refusing everything
    attempts = [
        b"/files/../secret.txt",
        b"/files/%2e%2e/secret.txt",
        b"/files/%2E%2E%2Fsecret.txt",
        b"/files/..%2fsecret.txt",
        b"/files/" + str(tmp_path / "secret.txt").encode(),
        b"/files//" + str(tmp_path / "secret.txt").encode(),
        b"/files/%2F" + str(tmp_path / "secret.txt").lstrip("/").encode(),
        b"/files/link.txt",
        b"/files/dirlink/secret.txt",
        b"/files/inside.txt%00.png",
        b"/files/%252e%252e/secret.txt",
    ]
    for raw in attempts:
        status, body = _raw_get(site.app, raw, cookie)
        assert status in (400, 403, 404), (raw, status)
        assert SECRET.encode() not in body, raw


def test_passwords_never_reach_logs_console_or_database(
    site: TestClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from svomflow.cli.main import app as cli
    from typer.testing import CliRunner

    caplog.set_level(logging.DEBUG)
    new_password = "Tr0ub4dor&3-" + uuid.uuid4().hex[:8]
    cli_password = "cli-" + uuid.uuid4().hex
    wrong = "wrong-" + uuid.uuid4().hex
    admin, csrf = signed_in(site, Role.admin.value)
    # an admin creates a user through the form; the user signs in, once wrongly
    res = admin.post(
        "/admin/users",
        data={"name": "carol", "password": new_password, "roles": "svom_user", "csrf_token": csrf},
    )
    assert res.status_code in (200, 303), res.text[:300]
    signed_in(site, "carol", new_password)
    page = TestClient(site.app).get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    failed = TestClient(site.app)
    failed.cookies.update(page.cookies)
    res = failed.post(
        "/login", data={"name": "carol", "password": wrong, "csrf_token": token.group(1)}
    )
    assert res.status_code == 401 and wrong not in res.text
    # and through the command line, password from a file, on the same database
    monkeypatch.setenv("SVOMFLOW_DATABASE_URL", str(site.app.state.engine.url))  # type: ignore[attr-defined]
    pw_file = tmp_path / "pw.txt"
    pw_file.write_text(cli_password + "\n")
    result = CliRunner().invoke(
        cli,
        ["web", "user", "add", "dave", "--role", "coordinator", "--password-file", str(pw_file)],
    )
    assert result.exit_code == 0, result.output
    signed_in(site, "dave", cli_password)
    out = capsys.readouterr()
    records = caplog.records
    assert records, "nothing was logged at all: the capture is not working"
    logged = caplog.text + "".join(str(r.args) for r in records) + out.out + out.err
    logged += result.output
    for secret in (PASSWORD, new_password, cli_password, wrong):
        assert secret not in logged
    db = Path(site.app.state.engine.url.database)  # type: ignore[attr-defined]
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())
    for secret in (new_password, cli_password):
        assert secret.encode() not in stored
    assert b"$argon2id$" in stored
