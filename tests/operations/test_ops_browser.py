"""A real browser opens a VHF flow run's artifact in the Prefect UI: previews load, links answer.

Needs Chromium (Debian's ``chromium``; ``.ci/run`` installs it) and the ``playwright`` Python
package; skipped with the reason when either is absent.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import httpx
import pytest
from svomflow.cli.main import app
from typer.testing import CliRunner

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _browser_or_skip() -> None:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")


def test_artifact_previews_load_and_product_links_open(
    use_prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright
    from sqlmodel import Session
    from svomflow.web.auth import add_user
    from svomflow.web.db import engine_for
    from svomflow.web.server import serve_in_thread
    from svomflow.web.settings import WebSettings

    products = tmp_path / "products"
    products.mkdir()
    settings = WebSettings(
        database_url=f"sqlite:///{tmp_path / 'site.db'}",
        products_root=products.resolve(),
        secret_key=uuid.uuid4().hex,
    )
    password = uuid.uuid4().hex
    with Session(engine_for(settings.database_url)) as session:
        add_user(session, "advocate", password, ["svom_user"])
    site = serve_in_thread(settings)
    monkeypatch.setenv("SVOMFLOW_PRODUCTS", str(products))
    monkeypatch.setenv("SVOMFLOW_PRODUCTS_URL", f"{site.url}/files")
    runner = CliRunner()
    sim = tmp_path / "sim"
    res = runner.invoke(app, ["simulate", "bright_long_grb", "--out", str(sim), "--seed", "3"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        ["vhf", "--events", str(sim / "eclairs_l1_events.fits"), str(sim / "grm_l1_events.fits")],
    )
    assert res.exit_code == 0, res.output
    arts = httpx.post(
        f"{use_prefect_server}/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["vhf-bright-long-grb-3"]}}, "sort": "CREATED_DESC"},
    ).json()
    assert arts, "no summary artifact"
    ui = use_prefect_server.removesuffix("/api")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            # the product links open on the site, for signed-in users: sign in first (an
            # anonymous link would answer 200 with the sign-in form, not the file)
            page.goto(f"{site.url}/login")
            page.fill("input[name=name]", "advocate")
            page.fill("input[name=password]", password)
            page.click("form button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(f"{ui}/artifacts/artifact/{arts[0]['id']}", wait_until="networkidle")
            try:  # the UI renders the artifact after its own API calls (slow on a busy host)
                page.wait_for_selector("img[alt$='.png']", state="attached", timeout=120_000)
            except Exception:
                page.screenshot(path=str(tmp_path / "artifact.png"))
                pytest.fail(f"no preview on the page: {page.inner_text('body')[:500]!r}")
            page.wait_for_timeout(2000)
            images = page.eval_on_selector_all(
                "img[alt$='.png']", "els => els.map(e => [e.alt, e.naturalWidth])"
            )
            links = page.eval_on_selector_all(
                "a[href^='http://127.0.0.1']", "els => els.map(e => e.href)"
            )
            served = [u for u in links if u.startswith(site.url)]
            answer = page.request.get(served[0]) if served else None
            page.screenshot(path=str(tmp_path / "artifact.png"))
            browser.close()
    finally:
        site.stop()
    assert len(images) >= 3, images  # light curves of both instruments and the ECLAIRs image
    assert all(width > 0 for _, width in images), images
    assert any("QSUM_" in u for u in served), served  # the HTML summary product is linked
    assert answer is not None and answer.status == 200
    assert "/login" not in answer.url  # the file itself, not the sign-in form
