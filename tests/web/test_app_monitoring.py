"""Housekeeping viewer, latest values, alarms (acknowledged by the person on duty, the report)
and calibration history, on a real server seeded through the housekeeping, duty and
product stores."""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from svomflow.products import duty
from svomflow.products import housekeeping as hk
from svomflow.products.database import dispose_engines
from svomflow.products.provenance import Provenance
from svomflow.products.store import ProductStore
from svomflow.web.auth import add_user
from svomflow.web.db import engine_for
from svomflow.web.server import serve_in_thread
from svomflow.web.settings import WebSettings

PASSWORD = "a long enough password"
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Site:
    url: str
    engine: Engine
    root: Path
    db: str
    clients: list[httpx.Client] = field(default_factory=list)

    def sign_in(self, name: str, *roles: str) -> httpx.Client:
        with Session(self.engine) as s:
            add_user(s, name, PASSWORD, roles)
        c = httpx.Client(base_url=self.url, timeout=20, follow_redirects=False)
        self.clients.append(c)
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303
        return c


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = (tmp_path / "products").resolve()
    root.mkdir()
    db = f"sqlite:///{tmp_path / 'products.db'}"
    settings = WebSettings(
        database_url=db, products_root=root, secret_key=secrets.token_urlsafe(32)
    )
    running = serve_in_thread(settings)
    s = Site(running.url, engine_for(db), root, db)
    try:
        yield s
    finally:
        for c in s.clients:
            c.close()
        running.stop()
        dispose_engines()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def _seed_housekeeping(site: Site) -> tuple[np.ndarray, np.ndarray]:
    """A day of ECLAIRS detector temperature at 1 sample / 10 s ending beyond its hard limit."""
    t = NOW.timestamp() - 86400 + 10.0 * np.arange(8640)
    rng = np.random.default_rng(7)
    temp = 20.0 + 2.0 * np.sin(2 * np.pi * (t - t[0]) / 86400) + rng.normal(0, 0.1, t.size)
    temp[-30:] = 31.0  # the last five minutes above the hard limit (30)
    with Session(site.engine) as s:
        hk.upsert_parameters(
            s,
            [
                hk.ParameterDef(
                    instrument="ECLAIRS",
                    name="T_DPIX",
                    unit="degC",
                    category="temperature",
                    soft_high=25.0,
                    hard_high=30.0,
                ),
                hk.ParameterDef(instrument="COLIBRI", name="WIND", unit="m/s", hard_high=15.0),
            ],
        )
        hk.ingest(s, "ECLAIRS", t, {"T_DPIX": temp})
        hk.ingest(s, "COLIBRI", t[:100], {"WIND": np.full(100, 3.0)})
    return t, temp


def test_housekeeping_series_page_and_latest_values(site: Site) -> None:
    t, temp = _seed_housekeeping(site)
    sam = site.sign_in("sam", "svom_user")
    end = datetime.fromtimestamp(t[-1] + 1, UTC)
    res = sam.get(
        "/api/housekeeping/series",
        params={
            "instrument": "ECLAIRS",
            "parameter": "T_DPIX",
            "period": "day",
            "end": end.isoformat(),
            "max_points": 300,
        },
    )
    assert res.status_code == 200, res.text
    s = res.json()
    mean, lo, hi = (np.array(s[k], dtype=float) for k in ("mean", "min", "max"))
    assert s["resolution_s"] > 0 and len(mean) <= 300
    assert np.all(lo <= mean + 1e-9) and np.all(mean <= hi + 1e-9)
    # buckets cover [start, end]: the first sample sits exactly at end - 1 day - 1 s + 1 s
    inside = t >= end.timestamp() - 86400
    widths = np.full(len(mean), s["resolution_s"])
    assert hi.max() == pytest.approx(temp[inside].max()) and lo.min() == pytest.approx(
        temp[inside].min()
    )
    assert s["limits"]["hard_high"] == 30.0 and s["unit"] == "degC"
    assert widths.sum() >= 86400 - s["resolution_s"]
    # an hour: the raw samples themselves
    raw = sam.get(
        "/api/housekeeping/series",
        params={
            "instrument": "ECLAIRS",
            "parameter": "T_DPIX",
            "start": datetime.fromtimestamp(t[-360], UTC).isoformat(),
            "end": end.isoformat(),
        },
    ).json()
    assert raw["resolution_s"] == 0
    np.testing.assert_allclose(raw["mean"], temp[-360:])
    np.testing.assert_allclose(np.array(raw["times_ms"]) / 1000, t[-360:])
    page = sam.get("/housekeeping", params={"instrument": "ECLAIRS", "p": "T_DPIX"})
    assert page.status_code == 200 and "T_DPIX" in page.text and 'id="hk-plot"' in page.text
    assert "/static/plotly.min.js" in page.text
    for asset, kind in (
        ("/static/plotly.min.js", "text/javascript"),
        ("/static/hk.js", "text/javascript"),
        ("/static/app.js", "text/javascript"),
        ("/static/site.css", "text/css"),
    ):
        r = sam.get(asset)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), asset
    # COLIBRI's weather is not an SVOM user's
    assert ">COLIBRI<" not in page.text
    assert (
        sam.get(
            "/api/housekeeping/series", params={"instrument": "COLIBRI", "parameter": "WIND"}
        ).status_code
        == 403
    )
    latest = {r["parameter"]: r for r in sam.get("/api/housekeeping/latest").json()}
    assert set(latest) == {"T_DPIX"}
    assert latest["T_DPIX"]["value"] == 31.0 and latest["T_DPIX"]["state"] == "hard"
    html = sam.get("/housekeeping/latest").text
    assert 'class="state hard"' in html


def _alarm(site: Site, raised: datetime, cleared: datetime | None, value: float) -> int:
    with Session(site.engine) as s:
        a = hk.raise_alarm(s, "ECLAIRS", "T_DPIX", "hard", raised, value, limit=30.0)
        if cleared is not None:
            hk.clear_alarm(s, a.id or 0, cleared)
        return a.id or 0


def test_alarm_acknowledged_by_the_person_on_duty_and_reported(site: Site) -> None:
    _seed_housekeeping(site)
    past = _alarm(site, NOW - timedelta(hours=5), NOW - timedelta(hours=3), 31.2)
    current = _alarm(site, NOW - timedelta(hours=2), None, 31.0)
    other = _alarm(site, NOW - timedelta(minutes=30), None, 32.0)
    with Session(site.engine) as s:
        duty.add_shift(
            s,
            "ECLAIRS",
            "primary",
            "carol",
            NOW - timedelta(hours=6),
            NOW + timedelta(hours=6),
            email="carol@example.org",
        )
    dave = site.sign_in("dave", "svom_user")
    carol = site.sign_in("carol", "svom_user")
    page = carol.get("/alarms").text
    assert "carol" in page and "On call now" in page  # the banner, on every page
    assert f'action="/alarms/{current}/acknowledge"' in page
    assert f'action="/alarms/{current}/acknowledge"' not in dave.get("/alarms").text
    token = csrf_of(dave.get("/alarms").text)
    assert (
        dave.post(f"/alarms/{current}/acknowledge", data={"csrf_token": token}).status_code == 403
    )
    assert carol.post(f"/alarms/{current}/acknowledge").status_code == 403  # no CSRF token
    before = datetime.now(UTC)
    r = carol.post(f"/alarms/{current}/acknowledge", data={"csrf_token": csrf_of(page)})
    after = datetime.now(UTC)
    assert r.status_code == 303
    with Session(site.engine) as s:
        a = s.get(hk.Alarm, current)
        assert a is not None and a.acknowledged_by == "carol" and a.state == "acknowledged"
        assert (
            a.acknowledged_at is not None
            and before - timedelta(seconds=1) <= a.acknowledged_at <= after
        )
    again = carol.post(f"/alarms/{current}/acknowledge", data={"csrf_token": csrf_of(page)})
    assert again.status_code == 409
    # a machine client of the person on duty: bearer token, no CSRF
    with Session(site.engine) as s:
        from svomflow.web.auth import create_token

        _, secret = create_token(s, "carol", "pager")
    api = httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {secret}"})
    site.clients.append(api)
    acked = api.post(f"/api/alarms/{other}/acknowledge")
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "carol"
    # the report: 2 h of the cleared alarm, 2 h and 30 min of the open ones, to now
    rows = {
        (r["parameter"], r["level"]): r
        for r in csv.DictReader(
            io.StringIO(carol.get("/alarms/report", params={"period": "day", "format": "csv"}).text)
        )
    }
    row = rows[("T_DPIX", "hard")]
    assert int(row["count"]) == 3 and int(row["open_now"]) == 2
    assert int(row["unacknowledged"]) == 1  # the cleared one nobody acknowledged
    elapsed_h = (datetime.now(UTC) - NOW).total_seconds() / 3600
    assert float(row["hours_open"]) == pytest.approx(2.0 + 2.0 + 0.5 + 2 * elapsed_h, abs=0.01)
    html = carol.get("/alarms/report", params={"period": "day"}).text
    assert "T_DPIX" in html and past > 0
    home = carol.get("/").text  # two open (both acknowledged now), none soft
    assert re.search(r"hard: 2\b", home) and re.search(r"soft: 0\b", home)
    assert re.search(r"\b0 not acknowledged", home)


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def test_calibration_history_promoted_refused_and_images_side_by_side(site: Site) -> None:
    from astropy.io import fits
    from svomflow.tasks.masters.qc import merge_qc_history, qc_history_hdus

    store = ProductStore(site.root, site.db)

    def row(night: str, passed: bool, level: float, reason: str) -> dict[str, object]:
        return {
            "NIGHT": night,
            "DATE_OBS": f"{night}T20:00:00.000",
            "CAMERA": "DDRAGO-B",
            "TYPE": "BIAS",
            "FILTER": "",
            "GROUP": "bias_DDRAGOmB_1x1",
            "NFRAMES": 5,
            "LEVEL": level,
            "NOISE": 3.1,
            "FRACTION": 0.0 if passed else 0.3,
            "PASSED": passed,
            "REASON": reason,
        }

    table = merge_qc_history(
        None,
        [
            row("2026-11-23", True, 1000.0, "ok"),
            row("2026-11-24", False, 1040.0, "fraction_beyond_6sigma 0.3 > 0.01"),
        ],
    )
    store.publish(
        fits.HDUList(qc_history_hdus(table)),
        type_code="QCHIST",
        instrument="DDRAGO-B",
        obs_id="2026-11-24",
        provenance=Provenance(flow_name="nightly_master_calibration"),
    )
    previews = {}
    for night in ("2026-11-23", "2026-11-24"):
        previews[night] = store.publish(
            lambda p, n=night: p.write_bytes(PNG + n.encode()),
            type_code="MASTER-PREVIEW",
            instrument="DDRAGO-B-bias-1x1",
            obs_id=night,
            provenance=Provenance(content={"group": "bias_DDRAGOmB_1x1"}),
            ext="png",
        )
    cora = site.sign_in("cora", "colibri_user")
    sam = site.sign_in("sam", "svom_user")
    combo = "nightly:DDRAGO-B:BIAS:NONE"
    page = cora.get("/calibration", params={"combo": combo, "period": "week"})
    assert page.status_code == 200, page.text
    html = page.text
    assert "fraction_beyond_6sigma 0.3 &gt; 0.01" in html
    assert html.count('class="state promoted"') >= 1 and 'class="state refused"' in html
    # the newest candidate (refused) beside the master in use (promoted the night before)
    compare = html[html.index('id="compare"') :]
    srcs = re.findall(r'<img src="(/files/[^"]+)" alt="([^"]+)"', compare)
    by_label = {alt: src for src, alt in srcs}
    for label, night in (("candidate", "2026-11-24"), ("master in use", "2026-11-23")):
        rel = Path(previews[night].path).relative_to(site.root).as_posix()
        assert by_label[label].endswith(rel), (label, by_label)
        assert cora.get(by_label[label]).content == PNG + night.encode()
    hist = cora.get("/api/calibration/history", params={"combo": combo, "period": "week"}).json()
    assert [(h["night"], h["promoted"]) for h in hist] == [
        ("2026-11-23", True),
        ("2026-11-24", False),
    ]
    assert hist[1]["figures"]["level"] == 1040.0
    # COLIBRI's calibration is not an SVOM user's
    assert "DDRAGO-B" not in sam.get("/calibration").text
    assert sam.get("/calibration", params={"combo": combo}).status_code == 403


def test_gate_history_shows_each_figure_against_the_current_file(site: Site) -> None:
    from astropy.io import fits
    from svomflow.tasks.eic.gate import Cut, QCFigure, judge
    from svomflow.tasks.eic.qc_history import (
        VerdictRecord,
        history_code,
        history_hdus,
        history_rows,
        merge_history,
    )

    cuts = [Cut("mean_gain", "change", low=-0.02, high=0.02)]
    first = [QCFigure("mean_gain", 1.000, "keV/ch"), QCFigure("dead_pixels", 12.0)]
    second = [QCFigure("mean_gain", 1.050, "keV/ch"), QCFigure("dead_pixels", 13.0)]
    v1 = judge("PIXGAIN", first, None, cuts)
    v2 = judge("PIXGAIN", second, first, cuts)
    assert v1.promote and not v2.promote
    t0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
    records = [
        VerdictRecord(v1, "ECLAIRS", "DPIX", t0, "a" * 64, "gain_v1.fits"),
        VerdictRecord(v2, "ECLAIRS", "DPIX", t0 + timedelta(days=3), "b" * 64, "gain_v2.fits"),
    ]
    table = merge_history(None, [r for rec in records for r in history_rows(rec)])
    ProductStore(site.root, site.db).publish(
        fits.HDUList(history_hdus(table)),
        type_code="CALQCH",
        instrument=history_code("ECLAIRS", "PIXGAIN"),
        obs_id="2026-11-23",
        provenance=Provenance(flow_name="eic_promotion"),
    )
    sam = site.sign_in("sam", "svom_user")
    cora = site.sign_in("cora", "colibri_user")
    combo = "gate:ECLAIRS:PIXGAIN:DPIX"
    hist = sam.get("/api/calibration/history", params={"combo": combo}).json()
    assert [(h["file"], h["promoted"]) for h in hist] == [
        ("gain_v1.fits", True),
        ("gain_v2.fits", False),
    ]
    assert hist[1]["figures"] == {"mean_gain": 1.05, "dead_pixels": 13.0}
    assert hist[1]["current"] == {"mean_gain": 1.0, "dead_pixels": 12.0}
    assert hist[1]["units"]["mean_gain"] == "keV/ch"
    assert hist[1]["reason"] == "; ".join(v2.reasons) and "mean_gain" in hist[1]["reason"]
    page = sam.get("/calibration", params={"combo": combo, "period": "week"}).text
    assert v2.reasons[0].replace(">", "&gt;").replace("<", "&lt;") in page
    assert cora.get("/calibration", params={"combo": combo}).status_code == 403
