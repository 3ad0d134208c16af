"""A real browser opens a VHF flow run's artifact in the Prefect UI: previews load, links answer.

Needs Chromium (Debian's ``chromium``; ``.ci/run`` installs it) and the ``playwright`` Python
package; skipped with the reason when either is absent.
"""

from __future__ import annotations

import shutil
import threading
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
    from svomflow.operations.product_server import make_server

    products = tmp_path / "products"
    products.mkdir()
    server = make_server(products)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SVOMFLOW_PRODUCTS", str(products))
    monkeypatch.setenv("SVOMFLOW_PRODUCTS_URL", f"http://127.0.0.1:{server.server_port}")
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
            served = [u for u in links if f":{server.server_port}/" in u]
            answer = page.request.get(served[0]) if served else None
            page.screenshot(path=str(tmp_path / "artifact.png"))
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(images) >= 3, images  # light curves of both instruments and the ECLAIRs image
    assert all(width > 0 for _, width in images), images
    assert any("QSUM_" in u for u in served), served  # the HTML summary product is linked
    assert answer is not None and answer.status == 200
