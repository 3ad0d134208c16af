"""The science database on the site: delivered and refused versions, page and API, by role."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from astropy.io import fits
from sqlmodel import Session
from svomflow.flows.science_delivery import deliver_plain
from svomflow.products.database import dispose_engines
from svomflow.products.ogip import primary_hdu
from svomflow.products.provenance import Provenance
from svomflow.products.science_db import dispose_science_engines
from svomflow.products.store import ProductStore
from svomflow.tasks.validation.pipeline import load_delivery_config
from svomflow.web.auth import add_user
from svomflow.web.db import engine_for
from svomflow.web.server import serve_in_thread
from svomflow.web.settings import WebSettings

PASSWORD = "a long enough password"


def _qpo(inst: str, err_deg: float) -> list:
    cols = [
        fits.Column("RA", "D", unit="deg", array=[150.0]),
        fits.Column("DEC", "D", unit="deg", array=[20.0]),
        fits.Column("ERR_RAD", "D", unit="deg", array=[err_deg]),
    ]
    return [
        primary_hdu(telescope="SVOM", instrument=inst),
        fits.BinTableHDU.from_columns(cols, name="POSITION"),
    ]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, str]]]:
    monkeypatch.setenv("SVOMFLOW_SCIENCE_DATABASE_URL", f"sqlite:///{tmp_path / 'science.db'}")
    root = (tmp_path / "products").resolve()
    db = f"sqlite:///{tmp_path / 'products.db'}"
    store = ProductStore(root, db)
    ids = {}
    for inst, err, key in (("GRM", 12.0, "good"), ("ECL", 45.0, "bad")):
        prov = Provenance.start(config={}, flow_name="vhf_quick_analysis")
        ref = store.publish(
            _qpo(inst, err), type_code="QPO", instrument=inst, obs_id="sbW", provenance=prov
        )
        ids[key] = ref.id
    deliver_plain(load_delivery_config(), database_url=db)
    settings = WebSettings(
        database_url=db, products_root=root, secret_key=secrets.token_urlsafe(32)
    )
    running = serve_in_thread(settings)
    with Session(engine_for(db)) as s:
        add_user(s, "ana", PASSWORD, ["svom_user"])
        add_user(s, "colin", PASSWORD, ["colibri_user"])
    try:
        yield running.url, ids
    finally:
        running.stop()
        dispose_science_engines()
        dispose_engines()


def _signed_in(url: str, name: str) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=20, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
    assert token
    r = c.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token.group(1)})
    assert r.status_code == 303
    return c


def test_delivered_and_refused_are_shown_to_those_who_see_the_instrument(site) -> None:
    url, ids = site
    with httpx.Client(base_url=url, timeout=20) as anon:
        assert anon.get("/api/science/delivered").status_code == 401
    with contextlib.closing(_signed_in(url, "ana")) as c:
        page = c.get("/science")
        assert page.status_code == 200
        assert ids["good"] in page.text and "error_radius_deg = 45 outside [0, 30]" in page.text
        got = c.get("/api/science/delivered").json()
        assert [(d["product_id"], d["error_radius_deg"]) for d in got] == [(ids["good"], 12.0)]
        ref = c.get("/api/science/refused", params={"obs_id": "sbW"}).json()
        assert [(r["product_id"], r["reasons"]) for r in ref] == [
            (ids["bad"], ["error_radius_deg = 45 outside [0, 30]"])
        ]
        assert c.get("/api/science/refused", params={"type_code": "PO"}).json() == []
    # a COLIBRI user sees none of SVOM's products
    with contextlib.closing(_signed_in(url, "colin")) as c:
        assert c.get("/api/science/delivered").json() == []
        assert c.get("/api/science/refused").json() == []
        assert ids["good"] not in c.get("/science").text
