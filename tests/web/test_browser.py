"""The site in a real browser (Playwright driving Debian's Chromium) against a real server.

One walk through the site as a coordinator: sign in; a housekeeping plot drawn with data;
a live update arriving over server-sent events while a page is open; an alarm acknowledged
with its button; a product preview image that loads; and the planning timeline, strategy,
duty, products, calibration and status pages. A screenshot of each page is written to
``$SVOMFLOW_TEST_OUTPUT/web`` (default: the test's temporary folder); the folder is printed.

Needs Chromium (``/usr/bin/chromium``, Debian's package) and the ``playwright`` Python
package: skipped with the reason when either is absent.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"
NOW = datetime.now(UTC)


def _browser_or_skip() -> None:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed ({CHROMIUM}; apt-get install chromium)")


def _png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=60)
    ax.step(np.arange(50), np.random.default_rng(1).poisson(20, 50))
    ax.set_xlabel("time (s)")
    fig.savefig(path, format="png")  # the temporary file has no .png suffix
    plt.close(fig)


def _seed(engine: object, root: Path) -> dict[str, object]:
    """Users, an hour of housekeeping with a raised alarm, a product with its preview, a
    strategy and a planning, and the roster; return what the test looks for."""
    from svomflow.products import ProductStore, Provenance, duty
    from svomflow.products import housekeeping as hk
    from svomflow.products import plannings as pl
    from svomflow.products.store import PublishRequest
    from svomflow.web.auth import add_user

    with Session(engine) as s:  # type: ignore[arg-type]
        add_user(s, "coord", PASSWORD, ["coordinator"])
        hk.upsert_parameters(
            s,
            [
                hk.ParameterDef(
                    instrument="ECLAIRS",
                    name="dpix_temp",
                    unit="degC",
                    category="temperature",
                    soft_low=-30.0,
                    soft_high=-15.0,
                    hard_high=-5.0,
                )
            ],
        )
        t = np.arange(NOW.timestamp() - 6 * 3600, NOW.timestamp(), 10.0)
        temp = -20.0 + 2.0 * np.sin(t / 900.0) + np.random.default_rng(2).normal(0, 0.1, t.size)
        hk.ingest(s, "ECLAIRS", t, {"dpix_temp": temp})
        alarm = hk.raise_alarm(
            s,
            "ECLAIRS",
            "dpix_temp",
            "soft",
            NOW - timedelta(minutes=20),
            -14.2,
            limit=-15.0,
            message="detector plane above its soft limit",
        )
        duty.add_shift(
            s, "ECLAIRS", "primary", "coord", NOW - timedelta(hours=1), NOW + timedelta(hours=8)
        )
        spec = pl.StrategySpec(
            exposures=(
                pl.ExposureStep(filter="r", exposure_s=60.0, count=5),
                pl.ExposureStep(filter="i", exposure_s=60.0, count=5),
            )
        )
        pl.ensure_schema(engine)  # type: ignore[arg-type]
        pl.create_strategy(
            s, "afterglow", telescope="COLIBRI", instrument="DDRAGO-B", spec=spec, by="coord"
        )
        pl.publish(s, "afterglow", 1, by="coord")
        pl.create_planning(
            s,
            pl.PlanningDraft(
                telescope="COLIBRI",
                instrument="DDRAGO-B",
                title="tonight",
                start=NOW - timedelta(hours=2),
                end=NOW + timedelta(hours=10),
                observations=[
                    pl.ObservationDraft(
                        target=f"GRB {k}",
                        ra_deg=150.0 + k,
                        dec_deg=2.0,
                        start=NOW + timedelta(hours=k - 1),
                        end=NOW + timedelta(hours=k - 0.25),
                        strategy="afterglow",
                    )
                    for k in range(4)
                ],
            ),
            by="coord",
        )
        alarm_id = alarm.id
    from astropy.io import fits

    store = ProductStore(root, str(engine.url))  # type: ignore[attr-defined]
    prov = Provenance.start(config={"test": "browser"}, flow_name="vhf_quick_analysis")
    refs = store.publish_many(
        [
            PublishRequest(
                [fits.PrimaryHDU(np.zeros((4, 4), dtype=np.float32))],
                "QLC",
                "ECL",
                "sb26120501",
                prov,
            ),
            PublishRequest(_png, "QLCPNG", "ECL", "sb26120501", prov, "png"),
        ]
    )
    return {"alarm_id": alarm_id, "product_id": refs[0].id, "store": store}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    """The site served by uvicorn in a thread of this process, on a free port."""
    _browser_or_skip()  # before building anything
    from svomflow.web.db import engine_for
    from svomflow.web.server import serve_in_thread
    from svomflow.web.settings import WebSettings

    root = tmp_path / "products"
    root.mkdir()
    settings = WebSettings(
        database_url=f"sqlite:///{tmp_path / 'site.db'}",
        products_root=root,
        secret_key=uuid.uuid4().hex,
        events_poll_s=0.3,
    )
    seeded = _seed(engine_for(settings.database_url), root)
    running = serve_in_thread(settings)
    try:
        yield running.url, seeded
    finally:
        running.stop()


def test_the_site_in_a_real_browser(server: tuple[str, dict[str, object]], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url, seeded = server
    out = Path(os.environ.get("SVOMFLOW_TEST_OUTPUT", tmp_path)) / "web"
    out.mkdir(parents=True, exist_ok=True)
    print(f"screenshots of the site: {out}")
    errors: list[str] = []

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(30_000)

        def shot(name: str) -> None:
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)

        # sign-in: an unknown session is sent to the form, then back where it was going
        page.goto(f"{url}/housekeeping?instrument=ECLAIRS&p=dpix_temp&period=day")
        assert "/login" in page.url
        shot("01-sign-in")
        page.fill("input[name=name]", "coord")
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url("**/housekeeping**")

        # the housekeeping plot, drawn by the page from the API, with data in it
        page.wait_for_function(
            "() => { const el = document.getElementById('hk-plot');"
            " return el && el.data && el.data.some(t => t.y && t.y.length > 10); }"
        )
        points = page.evaluate(
            "() => document.getElementById('hk-plot').data"
            ".map(t => (t.y || []).filter(v => v !== null).length)"
        )
        assert max(points) > 10, points
        shot("02-housekeeping")

        # a live update: a processing state written by another writer reaches the open page
        page.goto(f"{url}/status")
        page.wait_for_function("() => document.body.dataset.liveConnected === 'yes'")
        time.sleep(1.0)  # the stream is open and has polled once
        key = f"sb{uuid.uuid4().hex[:8]}"
        seeded["store"].set_status(key, "vhf_quick_analysis", "failed", reason="no GTI")  # type: ignore[attr-defined]
        page.wait_for_selector(f"#live >> text={key}", timeout=30_000)
        page.wait_for_selector("#toasts .toast")
        shot("03-status-live-update")

        # an alarm acknowledged by the person on duty with the page's button
        page.goto(f"{url}/alarms")
        row = page.locator(f"#alarm-{seeded['alarm_id']}").first
        row.locator("button.ack").click()
        page.wait_for_selector(f"#alarm-{seeded['alarm_id']} >> text=coord")
        shot("04-alarm-acknowledged")

        # a product page whose preview image loads
        page.goto(f"{url}/products/{seeded['product_id']}")
        page.wait_for_function(
            "() => [...document.images].some(i => i.complete && i.naturalWidth > 0"
            " && i.src.endsWith('.png'))"
        )
        shot("05-product-preview")

        # the planning timeline drawn by Plotly, and the other pages
        page.goto(f"{url}/planning")
        page.wait_for_selector("#timeline[data-rendered='1'] .main-svg")
        bars = page.evaluate("() => document.getElementById('timeline').data[0].x.length")
        assert bars == 4
        shot("06-planning")
        for name, path in [
            ("07-strategies", "/strategies/afterglow"),
            ("08-duty", "/duty"),
            ("09-products", "/products"),
            ("10-calibration", "/calibration"),
            ("11-home", "/"),
        ]:
            res = page.goto(f"{url}{path}")
            assert res is not None and res.status == 200, (path, res and res.status)
            page.wait_for_load_state("networkidle")
            shot(name)
        browser.close()

    from svomflow.products import housekeeping as hk
    from svomflow.web.db import engine_for

    with Session(engine_for(str(seeded["store"].engine.url))) as s:  # type: ignore[attr-defined]
        alarm = hk.alarms(s, instrument="ECLAIRS")[0]
        assert (alarm.state, alarm.acknowledged_by) == ("acknowledged", "coord")
    assert not errors, errors
    assert len(list(out.glob("*.png"))) >= 11
