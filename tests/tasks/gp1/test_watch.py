"""GP1 watcher: completeness, routing, two instances side by side, ledger, restart, bad files."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.flows.gp1 import process_images
from svomflow.operations.gp1_watch import GP1Watcher, Ledger, check_complete, route_image
from svomflow.tasks.gp1.config import GP1Config, GP1Steps, GP1WatchConfig, StackingModule


def raw_frame(
    path: Path,
    *,
    observer="svom",
    exptype="object",
    trigger="sb1",
    nan=False,
    saturated=False,
    drop=(),
    value=1200.0,
    shape=(64, 64),
) -> Path:
    """A small raw COLIBRI-like frame (overscan strip of 32 columns on the right)."""
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    data = rng.normal(value, 5.0, (shape[0], shape[1] + 32))
    data[:, -32:] = rng.normal(1000.0, 5.0, (shape[0], 32))
    if saturated:
        data[:] = 65535.0
    data = data.astype(np.float32) if nan else data.astype(np.uint16)
    if nan:
        data[:] = np.nan
    h = fits.Header()
    for k, v in {
        "INSTRUME": "DDRAGO-B",
        "EXPTYPE": exptype,
        "OBSERVER": observer,
        "EXPTIME": 60.0,
        "DATE-OBS": "2026-11-24T00:42:00.000",
        "FILTER": "r",
        "CCD-TEMP": -100.0,
        "TRIGID": trigger,
    }.items():
        if k not in drop and v is not None:
            h[k] = v
    fits.PrimaryHDU(data, header=h).writeto(path)
    return path


def watch_config(tmp_path: Path, **kw) -> GP1WatchConfig:
    red_only = GP1Steps(stacking=StackingModule(enabled=False))
    for name in ("findstars", "astrometry", "photometry", "subtraction", "summary"):
        getattr(red_only, name).enabled = False
    return GP1WatchConfig(
        input_dir=str(tmp_path / "in"),
        output_dir=str(tmp_path / "out"),
        settle_seconds=0.2,
        poll_seconds=0.1,
        use_polling=kw.pop("use_polling", True),
        pipelines=[
            GP1Config(
                name="alerts", route={"EXPTYPE": "object", "OBSERVER": "svom"}, steps=red_only
            ),
            GP1Config(name="others", route={"EXPTYPE": "object"}, steps=red_only),
        ],
        **kw,
    )


class Recorder:
    """A processor that records calls and takes a little time (to overlap instances)."""

    def __init__(self, delay=0.3):
        self.calls: list[tuple[str, str, float, float]] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, path: Path, cfg: GP1Config) -> None:
        t0 = time.monotonic()
        time.sleep(self.delay)
        with self.lock:
            self.calls.append((path.name, cfg.name, t0, time.monotonic()))


def test_ledger_claims_once_and_releases_interrupted(tmp_path):
    f = raw_frame(tmp_path / "a.fits")
    led = Ledger(tmp_path / "l.sqlite")
    k = led.claim(f, "alerts")
    assert k is not None and led.claim(f, "alerts") is None
    assert Ledger(tmp_path / "l.sqlite").release_interrupted() == [str(f.resolve())]
    assert led.claim(f, "alerts") is not None  # released claims can be taken again


def test_completeness_checks(tmp_path):
    good = raw_frame(tmp_path / "good.fits")
    assert check_complete(good) is None
    blob = good.read_bytes()
    trunc = tmp_path / "trunc.fits"
    trunc.write_bytes(blob[: len(blob) - 4000])
    assert "not a complete FITS" in check_complete(trunc)
    nohdr = tmp_path / "noend.fits"
    nohdr.write_bytes(blob[:1000])
    assert check_complete(nohdr) is not None
    gz = gzip.compress(blob)
    part = tmp_path / "part.fits.gz"
    part.write_bytes(gz[: len(gz) // 2])  # being compressed: the stream is cut
    assert check_complete(part) is not None
    full = tmp_path / "full.fits.gz"
    full.write_bytes(gz)
    assert check_complete(full) is None


def test_routing_rules():
    pipes = watch_config(Path("/tmp")).pipelines
    h = fits.Header({"EXPTYPE": "OBJECT", "OBSERVER": " svom "})
    assert route_image(h, pipes).name == "alerts"
    assert route_image(fits.Header({"EXPTYPE": "object", "OBSERVER": "x"}), pipes).name == "others"
    assert route_image(fits.Header({"EXPTYPE": "bias"}), pipes) is None
    assert route_image(fits.Header({"OBSERVER": "svom"}), pipes) is None  # missing key


def test_watcher_routes_two_instances_side_by_side(tmp_path):
    cfg = watch_config(tmp_path)
    inp = Path(cfg.input_dir)
    inp.mkdir(parents=True)
    for i in range(2):
        raw_frame(inp / f"alert{i}.fits")
        raw_frame(inp / f"other{i}.fits", observer="someone")
    raw_frame(inp / "bias.fits", exptype="bias")
    good = raw_frame(tmp_path / "slow.fits").read_bytes()
    rec = Recorder()
    w = GP1Watcher(cfg, rec)
    stop = threading.Event()
    th = threading.Thread(target=w.run, kwargs={"stop": stop})
    th.start()
    # A file written slowly: it must not be read before it is complete.
    with open(inp / "slow.fits", "wb") as fh:
        for k in range(0, len(good), 2880):
            fh.write(good[k : k + 2880])
            fh.flush()
            time.sleep(0.02)
    (inp / "trunc.fits").write_bytes(good[:5000])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if len(rec.calls) == 5 and w.idle:
            break
    stop.set()
    th.join(timeout=10)
    names = sorted((c[0], c[1]) for c in rec.calls)
    assert names == [
        ("alert0.fits", "alerts"),
        ("alert1.fits", "alerts"),
        ("other0.fits", "others"),
        ("other1.fits", "others"),
        ("slow.fits", "alerts"),
    ]
    # The two instances worked at the same time at least once.
    a = [c for c in rec.calls if c[1] == "alerts"]
    o = [c for c in rec.calls if c[1] == "others"]
    assert any(x[2] < y[3] and y[2] < x[3] for x in a for y in o)
    status = {Path(r["path"]).name: (r["status"], r["reason"]) for r in w.ledger.rows()}
    assert status["bias.fits"] == ("skipped", "no pipeline rule matches the header")
    assert status["trunc.fits"][0] == "failed"
    assert sum(s == "done" for s, _ in status.values()) == 5


def test_restart_resumes_without_loss_or_double_processing(tmp_path):
    cfg = watch_config(tmp_path)
    inp = Path(cfg.input_dir)
    inp.mkdir(parents=True)
    for i in range(3):
        raw_frame(inp / f"n{i}.fits")
    first = Recorder(delay=0.01)
    GP1Watcher(cfg, first).run(until_idle=0.5)
    assert sorted(c[0] for c in first.calls) == ["n0.fits", "n1.fits", "n2.fits"]
    # The watcher is killed while processing n3 (its claim stays "running"), and n4 arrives
    # while it is down.
    raw_frame(inp / "n3.fits")
    assert Ledger(Path(cfg.output_dir) / "gp1_ledger.sqlite").claim(inp / "n3.fits", "alerts")
    raw_frame(inp / "n4.fits")
    second = Recorder(delay=0.01)
    w = GP1Watcher(cfg, second)
    w.run(until_idle=0.5)
    assert sorted(c[0] for c in second.calls) == ["n3.fits", "n4.fits"]
    rows = w.ledger.rows()
    assert len(rows) == 5 and all(r["status"] == "done" for r in rows)
    # A third start finds nothing to do.
    third = Recorder(delay=0.01)
    GP1Watcher(cfg, third).run(until_idle=0.3)
    assert third.calls == []


def test_bad_inputs_fail_clearly_and_the_watcher_goes_on(tmp_path):
    cfg = watch_config(tmp_path)
    inp = Path(cfg.input_dir)
    inp.mkdir(parents=True)
    raw_frame(inp / "a_nokey.fits", drop=("EXPTIME",))
    raw_frame(inp / "b_nan.fits", nan=True)
    raw_frame(inp / "c_sat.fits", saturated=True)
    raw_frame(inp / "d_good.fits", observer="someone", trigger=None)

    def processor(path: Path, pcfg: GP1Config) -> None:
        res = process_images([path], pcfg)
        if res["failed"]:
            raise InputDataError(res["failed"][str(path)])

    w = GP1Watcher(cfg, processor)
    w.run(until_idle=0.5)
    status = {Path(r["path"]).name: (r["status"], r["reason"] or "") for r in w.ledger.rows()}
    assert status["a_nokey.fits"][0] == "failed" and "EXPTIME" in status["a_nokey.fits"][1]
    assert status["b_nan.fits"][0] == "failed" and "NaN or infinite" in status["b_nan.fits"][1]
    assert status["c_sat.fits"][0] == "failed" and "saturated" in status["c_sat.fits"][1]
    assert status["d_good.fits"] == ("done", "")
    # No master for the date: overscan-only and flagged, or a clear error when required.
    from svomflow.products import ProductStore

    (red,) = ProductStore(cfg.output_dir).list(obs_id="no_trigger_r_d_good", type_code="REDIMG")
    assert Path(red.path).is_relative_to(Path(cfg.output_dir))
    assert fits.getheader(red.path)["REDLEVEL"] == "overscan"
    strict = cfg.pipelines[1].model_copy(deep=True)
    strict.steps.reduction.require_masters = True
    res = process_images([inp / "d_good.fits"], strict)
    assert "no calibration file BIAS" in res["failed"][str(inp / "d_good.fits")]


@pytest.mark.parametrize("native", [True, False])
def test_observer_kinds(tmp_path, native):
    cfg = watch_config(tmp_path, use_polling=not native)
    rec = Recorder(delay=0.01)
    w = GP1Watcher(cfg, rec)
    stop = threading.Event()
    th = threading.Thread(target=w.run, kwargs={"stop": stop, "rescan_seconds": 1000})
    th.start()
    time.sleep(0.3)
    raw_frame(Path(cfg.input_dir) / "late.fits")
    deadline = time.monotonic() + 10
    while not rec.calls and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    th.join(timeout=10)
    assert [c[0] for c in rec.calls] == ["late.fits"]
    assert w.observer_kind in (("native", "polling") if native else ("polling",))
