"""The site in a real browser (Playwright driving Debian's Chromium) against a real server.

One walk through the site as a coordinator: sign in; a housekeeping plot drawn with data;
a live update arriving over server-sent events while a page is open; an alarm acknowledged
with its button; a product preview image that loads; the planning timeline; the
calibration history with data as the demo makes it (a promoted and a refused COLIBRI bias
master: the QC plot, the refusal's reason, the candidate's image beside the master's); the
science database with the burst's delivered positions; the REST API in Swagger UI, served
by the site itself; and the strategy, duty, products and home pages. A screenshot of each page is written to
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


def _image(seed: int, leak: float) -> object:
    """Return a writer of a master's preview: a noise image, with a light leak when asked."""

    def write(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        y, x = np.mgrid[0:48, 0:64]
        img = np.random.default_rng(seed).normal(1000.0, 3.0, (48, 64))
        img += leak * np.exp(-((x - 50) ** 2 + (y - 10) ** 2) / 200.0)
        plt.imsave(path, img, cmap="gray", format="png")

    return write


NIGHTS = (
    (NOW - timedelta(days=2)).date().isoformat(),
    (NOW - timedelta(days=1)).date().isoformat(),
)
BIAS_REASON = "step 2 fraction_beyond_6sigma = 0.74 (<= 0.05): FAIL"


def _calibration_history(store: object) -> None:
    """The nightly QC history of two nights (bias promoted, then refused) with its previews.

    What the demo's COLIBRI nights publish (QCHIST, MASTER-PREVIEW, QC-PREVIEW), small.
    """
    from astropy.io import fits
    from svomflow.products import Provenance
    from svomflow.tasks.masters.qc import merge_qc_history, qc_history_hdus

    group = "bias_DDRAGOmB_1x1"
    rows = [
        {
            "NIGHT": night,
            "DATE_OBS": f"{night}T16:30:00.000",
            "CAMERA": "DDRAGO-B",
            "TYPE": "BIAS",
            "FILTER": "",
            "GROUP": group,
            "NFRAMES": 5,
            "LEVEL": level,
            "NOISE": noise,
            "FRACTION": fraction,
            "PASSED": ok,
            "REASON": reason,
        }
        for night, level, noise, fraction, ok, reason in (
            (NIGHTS[0], 1000.2, 3.1, float("nan"), True, "ok"),
            (NIGHTS[1], 1027.9, 15.1, 0.74, False, BIAS_REASON),
        )
    ]
    prov = Provenance(flow_name="nightly_master_calibration")
    store.publish(  # type: ignore[attr-defined]
        fits.HDUList(qc_history_hdus(merge_qc_history(None, rows))),
        type_code="QCHIST",
        instrument="DDRAGO-B",
        obs_id=NIGHTS[1],
        provenance=prov,
    )
    for k, (night, leak) in enumerate(((NIGHTS[0], 0.0), (NIGHTS[1], 40.0))):
        for code, seed in (("MASTER-PREVIEW", k), ("QC-PREVIEW", 10 + k)):
            store.publish(  # type: ignore[attr-defined]
                _image(seed, leak),
                type_code=code,
                instrument="DDRAGO-B-bias-1x1",
                obs_id=night,
                provenance=Provenance(flow_name=prov.flow_name, content={"group": group}),
                ext="png",
            )


def _science(store: object, database_url: str) -> None:
    """The burst's ECLAIRs position delivered to the science database (as the demo does)."""
    from astropy.io import fits
    from svomflow.flows.science_delivery import deliver_plain
    from svomflow.products import Provenance
    from svomflow.products.ogip import primary_hdu
    from svomflow.tasks.validation.pipeline import load_delivery_config

    cols = [
        fits.Column("RA", "D", unit="deg", array=[157.5755]),
        fits.Column("DEC", "D", unit="deg", array=[23.8336]),
        fits.Column("ERR_RAD", "D", unit="deg", array=[0.0507]),
    ]
    store.publish(  # type: ignore[attr-defined]
        [
            primary_hdu(telescope="SVOM", instrument="ECL"),
            fits.BinTableHDU.from_columns(cols, name="POSITION"),
        ],
        type_code="QPO",
        instrument="ECL",
        obs_id="sb26120501",
        provenance=Provenance.start(config={}, flow_name="vhf_quick_analysis"),
    )
    deliver_plain(load_delivery_config(), database_url=database_url)


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
    _calibration_history(store)
    _science(store, str(engine.url))  # type: ignore[attr-defined]
    return {"alarm_id": alarm_id, "product_id": refs[0].id, "store": store}


@pytest.fixture
def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, object]]]:
    """The site served by uvicorn in a thread of this process, on a free port."""
    _browser_or_skip()  # before building anything
    from svomflow.products.science_db import dispose_science_engines
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
    monkeypatch.setenv("SVOMFLOW_SCIENCE_DATABASE_URL", f"sqlite:///{tmp_path / 'science.db'}")
    seeded = _seed(engine_for(settings.database_url), root)
    running = serve_in_thread(settings)
    try:
        yield running.url, seeded
    finally:
        running.stop()
        dispose_science_engines()


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

        # the calibration history: both verdicts plotted, the refusal's reason, and the
        # refused candidate's image beside the master in use (the night before's), loaded
        combo = "nightly:DDRAGO-B:BIAS:NONE"
        page.goto(f"{url}/calibration?combo={combo}&period=week")
        page.wait_for_selector("#cal-plot[data-points='2'] .main-svg")
        plotted = page.evaluate(
            "() => document.getElementById('cal-plot').data"
            ".filter(t => t.mode === 'markers').map(t => [t.name, t.x.length])"
        )
        # 2 candidates x 4 QC figures, less the first night's fraction (no master to compare)
        assert sum(n for _, n in plotted) == 2 * 4 - 1, plotted
        assert page.locator("#candidates .state.refused").count() == 1
        assert page.locator("#candidates .state.promoted").count() == 1
        assert BIAS_REASON in page.inner_text("#candidates")
        shown = page.evaluate(
            "() => [...document.querySelectorAll('.side figure')].map(f => [f.innerText.trim(),"
            " f.querySelector('img') ? f.querySelector('img').naturalWidth : 0])"
        )
        assert [w > 0 for _, w in shown] == [True, True, True], shown
        assert f"master in use from {NIGHTS[0]}" in page.inner_text("main")  # the night before
        shot("10-calibration")

        # the science database: the burst's position delivered
        page.goto(f"{url}/science")
        assert "sb26120501" in page.inner_text("main") and "QPO" in page.inner_text("main")
        shot("12-science")

        # the REST API in Swagger UI from the site's own files (no CDN), under the site's CSP
        page.goto(f"{url}/api/docs")
        page.wait_for_selector("#swagger-ui .opblock-tag")
        assert page.locator("#swagger-ui .opblock-tag", has_text="strategies").count() >= 1
        shot("13-api-docs")

        for name, path in [
            ("07-strategies", "/strategies/afterglow"),
            ("08-duty", "/duty"),
            ("09-products", "/products"),
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
    assert len(list(out.glob("*.png"))) >= 13
