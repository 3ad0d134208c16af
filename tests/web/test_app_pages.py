"""The site's pages on a real server, seeded through the real stores: sign-in, roles, products,
downloads, path traversal, processing status, language switch."""

from __future__ import annotations

import http.client
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy.engine import Engine
from sqlmodel import Session
from svomflow.products.provenance import Provenance
from svomflow.products.store import ProductRef, ProductStore
from svomflow.web.auth import add_user
from svomflow.web.db import engine_for
from svomflow.web.server import serve_in_thread
from svomflow.web.settings import WebSettings

PASSWORD = "a long enough password"


@dataclass
class Site:
    url: str
    settings: WebSettings
    engine: Engine
    root: Path
    db: str
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=20, follow_redirects=False)
        self.clients.append(c)  # closed by the fixture
        return c

    def user(self, name: str, *roles: str) -> None:
        with Session(self.engine) as s:
            add_user(s, name, PASSWORD, roles)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = (tmp_path / "products").resolve()
    root.mkdir()
    db = f"sqlite:///{tmp_path / 'products.db'}"
    settings = WebSettings(
        database_url=db,
        products_root=root,
        secret_key=secrets.token_urlsafe(32),
        prefect_ui_url="http://prefect.test:4200",
    )
    running = serve_in_thread(settings)
    site = Site(running.url, settings, engine_for(db), root, db)
    try:
        yield site
    finally:
        for c in site.clients:
            c.close()
        running.stop()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(site: Site, name: str, password: str = PASSWORD) -> httpx.Client:
    c = site.client()
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"name": name, "password": password, "csrf_token": token})
    assert r.status_code == 303, r.text
    return c


def publish(site: Site, type_code: str, instrument: str, obs_id: str, **kw: object) -> ProductRef:
    """Publish a small FITS (or PNG with ``png=bytes``) product through the product store."""
    store = ProductStore(site.root, site.db)
    prov = Provenance(config={"seed": 1}, flow_name="vhf_quick_analysis", flow_run_id="run-123")
    png = kw.get("png")
    if isinstance(png, bytes):
        return store.publish(
            lambda p: p.write_bytes(png),
            type_code=type_code,
            instrument=instrument,
            obs_id=obs_id,
            provenance=prov,
            ext="png",
        )
    data = np.arange(12, dtype=np.float32).reshape(3, 4) * float(kw.get("scale", 1.0))  # type: ignore[arg-type]
    return store.publish(
        [fits.PrimaryHDU(data)],
        type_code=type_code,
        instrument=instrument,
        obs_id=obs_id,
        provenance=prov,
    )


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def test_sign_in_sign_out_and_anonymous_refusals(site: Site) -> None:
    site.user("alice", "svom_user")
    anon = site.client()
    r = anon.get("/products?instrument=ECL", headers={"accept": "text/html"})
    assert (
        r.status_code == 303 and r.headers["location"] == "/login?next=/products%3Finstrument%3DECL"
    )
    assert anon.get("/api/products").status_code == 401
    assert anon.get("/events").status_code == 401
    token = csrf_of(anon.get("/login").text)
    bad = anon.post("/login", data={"name": "alice", "password": "wrong one!", "csrf_token": token})
    assert bad.status_code == 401 and "Wrong name or password" in bad.text
    assert anon.get("/api/me").status_code == 401
    # the sign-in form itself needs its CSRF token
    assert anon.post("/login", data={"name": "alice", "password": PASSWORD}).status_code == 403
    c = site.client()
    token = csrf_of(c.get("/login?next=/status").text)
    r = c.post(
        "/login",
        data={"name": "alice", "password": PASSWORD, "csrf_token": token, "next": "/status"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/status"
    assert c.get("/api/me").json() == {"name": "alice", "roles": ["svom_user"], "via": "session"}
    assert c.post("/logout").status_code == 403  # no CSRF token: refused
    page = c.get("/")
    assert page.status_code == 200 and "alice" in page.text
    assert c.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    assert c.get("/api/me").status_code == 401


def test_roles_separate_svom_and_colibri_products(site: Site) -> None:
    ecl = publish(site, "QLC", "ECL", "GRB1")
    ddb = publish(site, "REDIMG", "DDRAGO-B", "GRB1_img1")
    site.user("sam", "svom_user")
    site.user("cora", "colibri_user")
    site.user("ada", "admin")
    sam, cora, ada = (sign_in(site, n) for n in ("sam", "cora", "ada"))
    assert [p["id"] for p in sam.get("/api/products").json()] == [ecl.id]
    assert [p["id"] for p in cora.get("/api/products").json()] == [ddb.id]
    assert {p["id"] for p in ada.get("/api/products").json()} == {ecl.id, ddb.id}
    # another role's product reads as missing; its file is refused
    assert sam.get(f"/products/{ddb.id}").status_code == 404
    assert sam.get(f"/products/{ddb.id}/download").status_code == 404
    rel = Path(ddb.path).relative_to(site.root).as_posix()
    assert sam.get(f"/files/{rel}").status_code == 403
    assert cora.get(f"/files/{rel}").status_code == 200
    # a file no product row names is judged by its instrument folder
    stray = Path(ddb.path).with_name("notes.txt")
    stray.write_text("COLIBRI night notes")
    assert sam.get(f"/files/{Path(rel).with_name('notes.txt')}").status_code == 403
    assert cora.get(f"/files/{Path(rel).with_name('notes.txt')}").text == "COLIBRI night notes"
    page = sam.get("/products").text
    assert "QLC" in page and "REDIMG" not in page
    # admin pages: admins only
    assert sam.get("/admin/users").status_code == 403
    assert "cora" in ada.get("/admin/users").text
    # the navigation shows only what the role opens
    assert 'href="/admin/users"' in ada.get("/").text
    assert 'href="/admin/users"' not in sam.get("/").text


def test_api_token_acts_as_its_user_and_form_posts_need_csrf(site: Site) -> None:
    site.user("tel", "svom_user")
    c = sign_in(site, "tel")
    assert c.post("/account/tokens", data={"name": "telescope"}).status_code == 403
    page = c.post(
        "/account/tokens", data={"name": "telescope", "csrf_token": csrf_of(c.get("/account").text)}
    )
    assert page.status_code == 200
    secret = re.search(r'id="new-token">([^<]+)<', page.text)
    assert secret
    bearer = {"Authorization": f"Bearer {secret.group(1)}"}
    machine = site.client()
    assert machine.get("/api/me", headers=bearer).json()["via"] == "token"
    assert machine.get("/api/me", headers={"Authorization": "Bearer svf_forged"}).status_code == 401
    # revoked: refused
    token_id = re.search(r"/account/tokens/(\d+)/revoke", c.get("/account").text)
    assert token_id
    r = c.post(
        f"/account/tokens/{token_id.group(1)}/revoke",
        data={"csrf_token": csrf_of(c.get("/account").text)},
    )
    assert r.status_code == 303
    assert machine.get("/api/me", headers=bearer).status_code == 401


def test_product_page_previews_provenance_download_and_flow_run(site: Site) -> None:
    fits_ref = publish(site, "QLC", "ECL", "GRB2", scale=3.0)
    png_ref = publish(site, "QLCPLOT", "ECL", "GRB2", png=PNG)
    site.user("sam", "svom_user")
    c = sign_in(site, "sam")
    page = c.get(f"/products/{fits_ref.id}")
    assert page.status_code == 200
    html = page.text
    assert "http://prefect.test:4200/runs/flow-run/run-123" in html
    assert "vhf_quick_analysis" in html and "seed" in html  # provenance
    preview = re.search(r'<img src="(/files/[^"]+\.png)"', html)
    assert preview, "no inline preview"
    img = c.get(preview.group(1))
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert img.content == Path(png_ref.path).read_bytes()
    dl = c.get(f"/products/{fits_ref.id}/download")
    assert dl.status_code == 200 and "attachment" in dl.headers["content-disposition"]
    assert dl.content == Path(fits_ref.path).read_bytes()
    with fits.open(Path(fits_ref.path)) as h:
        assert float(h[0].data.sum()) == pytest.approx(3.0 * 66)
    # browse: by observation, type, version
    listing = c.get("/products", params={"obs_id": "GRB2", "type_code": "QLC", "version": 1}).text
    assert f"/products/{fits_ref.id}" in listing and f"/products/{png_ref.id}" not in listing


def _raw_get(site: Site, path: str, cookie: str) -> tuple[int, bytes]:
    host, port = site.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers={"Cookie": cookie})  # sent as is: no ".." clean-up
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_no_path_outside_the_products_root_is_served(site: Site, tmp_path: Path) -> None:
    ref = publish(site, "QLC", "ECL", "GRB3")
    (tmp_path / "secret.txt").write_text("not a product")
    os.symlink(tmp_path / "secret.txt", site.root / "GRB3" / "link.txt")
    site.user("sam", "svom_user")
    c = sign_in(site, "sam")
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    rel = Path(ref.path).relative_to(site.root).as_posix()
    status, body = _raw_get(site, f"/files/{rel}", cookie)
    assert status == 200 and body == Path(ref.path).read_bytes()
    for escape in (
        "/files/../secret.txt",
        "/files/GRB3/../../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/GRB3/%2e%2e/%2e%2e/secret.txt",
        "/files/GRB3/link.txt",
        "/files/%2Fetc%2Fpasswd",
    ):
        status, body = _raw_get(site, escape, cookie)
        assert status in (403, 404), escape
        assert b"not a product" not in body and b"root:" not in body, escape
    assert _raw_get(site, "/files/GRB3/link.txt", cookie)[0] == 403
    assert _raw_get(site, "/files/GRB3/missing.fits", cookie)[0] == 404
    assert c.put(f"/files/{rel}").status_code == 405  # read-only


def test_processing_status_shows_states_and_failure_reasons(site: Site) -> None:
    store = ProductStore(site.root, site.db)
    store.set_status("GRB4", "vhf_quick_analysis", "done")
    store.set_status("img_0042.fits", "gp1", "failed", reason="no reference catalogue for field F7")
    store.set_status("2026-11-23", "nightly_master_calibration", "received")
    site.user("sam", "svom_user")
    c = sign_in(site, "sam")
    html = c.get("/status").text
    assert "no reference catalogue for field F7" in html
    assert re.search(r"failed: 1\b", html) and re.search(r"done: 1\b", html)
    failed = c.get("/api/status", params={"state": "failed"}).json()
    assert [(s["key"], s["reason"]) for s in failed] == [
        ("img_0042.fits", "no reference catalogue for field F7")
    ]


def test_language_switch_and_no_open_redirect(site: Site) -> None:
    site.user("sam", "svom_user")
    c = sign_in(site, "sam")
    assert ">Products<" in c.get("/").text
    r = c.get("/lang", params={"set": "fr", "next": "/status"})
    assert r.status_code == 303 and r.headers["location"] == "/status"
    html = c.get("/").text
    assert ">Produits<" in html and 'lang="fr"' in html
    assert (
        c.get("/lang", params={"set": "en", "next": "//evil.example/x"}).headers["location"] == "/"
    )
    assert c.get("/lang", params={"set": "de"}).status_code == 404


def test_every_visible_string_has_a_french_translation() -> None:
    import json

    import svomflow.web as web

    here = Path(web.__file__).parent
    fr = json.loads((here / "locale" / "fr.json").read_text(encoding="utf-8"))
    wanted: set[str] = set()
    for t in (here / "templates").glob("*.html"):
        wanted |= set(re.findall(r'_\("([^"]+)"\)', t.read_text()))
        wanted |= set(re.findall(r"_\('([^']+)'\)", t.read_text()))
    for py in [*here.glob("*.py"), *here.glob("routes/*.py")]:
        wanted |= set(re.findall(r'NavItem\("[^"]*", "([^"]+)"', py.read_text()))
    assert len(wanted) > 50
    missing = sorted(w for w in wanted if not fr.get(w))
    assert not missing, f"missing French for: {missing}"


def test_password_guessing_is_throttled(site: Site) -> None:
    site.user("alice", "svom_user")
    site.user("bob", "svom_user")
    c = site.client()
    token = csrf_of(c.get("/login").text)
    codes = [
        c.post(
            "/login", data={"name": "alice", "password": f"guess {i:04d}", "csrf_token": token}
        ).status_code
        for i in range(6)
    ]
    assert codes == [401] * 5 + [429]
    # even the right password waits now; another user is not affected
    right = {"name": "alice", "password": PASSWORD, "csrf_token": token}
    assert c.post("/login", data=right).status_code == 429
    assert c.post("/login", data={**right, "name": "bob"}).status_code == 303


def test_the_api_viewer_is_served_by_the_site_itself(site: Site) -> None:
    """/api/docs loads Swagger UI's script and style sheet from the site, none from a CDN."""
    c = site.client()
    page = c.get("/api/docs")
    assert page.status_code == 200
    # every script and style sheet of the page is a path of this site, and each answers
    assets = re.findall(r'<(?:script src|link rel="stylesheet" href)="([^"]+)"', page.text)
    assert len(assets) == 3 and all(a.startswith("/static/") for a in assets), assets
    sizes = {}
    for a in assets:
        r = c.get(a)
        assert r.status_code == 200, (a, r.status_code)
        sizes[a] = len(r.content)
    assert sizes["/static/swagger-ui/swagger-ui-bundle.js"] > 500_000  # the real bundle
    assert c.get("/static/swagger-ui/swagger-ui.css").headers["content-type"].startswith("text/css")
    assert 'data-openapi="/api/openapi.json"' in page.text
    # the page runs under the site's policy: its own scripts only, no inline script
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "http" not in csp
    # only the two files are served from the package, nothing else of its folder
    assert c.get("/static/swagger-ui/favicon.png").status_code == 404
    assert c.get("/static/swagger-ui/..%2F__init__.py").status_code == 404
