"""Live updates: an open page's event stream receives what ANOTHER process writes to the
database (a product, a processing status, an alarm, a published event), only for the
instruments the user sees, and nothing twice."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
from sqlmodel import Session
from svomflow.products.database import dispose_engines
from svomflow.web.auth import add_user
from svomflow.web.db import engine_for
from svomflow.web.server import serve_in_thread
from svomflow.web.settings import WebSettings

PASSWORD = "a long enough password"

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    import numpy as np
    from astropy.io import fits
    from sqlmodel import Session
    from svomflow.products import housekeeping as hk
    from svomflow.products.provenance import Provenance
    from svomflow.products.store import ProductStore
    from svomflow.web.events import publish

    root, db = sys.argv[1], sys.argv[2]
    store = ProductStore(root, db)
    for inst, obs in (("DDRAGO-B", "GRB9_img1"), ("ECL", "GRB9")):
        store.publish([fits.PrimaryHDU(np.zeros((2, 2), np.float32))], type_code="QLC",
                      instrument=inst, obs_id=obs, provenance=Provenance())
    store.set_status("GRB9", "vhf_quick_analysis", "failed", reason="no GTI")
    with Session(store.engine) as s:
        hk.raise_alarm(s, "ECLAIRS", "T_DPIX", "hard", datetime.now(UTC), 31.0, limit=30.0)
    publish("strategy", {"name": "grb-followup", "version": 3}, database_url=db)
    """
)


def test_event_stream_delivers_what_another_process_writes(tmp_path: Path) -> None:
    root = (tmp_path / "products").resolve()
    root.mkdir()
    db = f"sqlite:///{tmp_path / 'products.db'}"
    settings = WebSettings(
        database_url=db, products_root=root, secret_key=secrets.token_urlsafe(32), events_poll_s=0.2
    )
    with Session(engine_for(db)) as s:
        add_user(s, "sam", PASSWORD, ["svom_user"])
    running = serve_in_thread(settings)
    events: list[tuple[str, dict[str, object]]] = []
    try:
        with httpx.Client(base_url=running.url, timeout=30) as c:
            token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
            assert token
            c.post("/login", data={"name": "sam", "password": PASSWORD, "csrf_token": token[1]})
            connected = threading.Event()

            def listen() -> None:
                with c.stream("GET", "/events", params={"max_s": 90}) as r:
                    assert r.headers["content-type"].startswith("text/event-stream")
                    kind = None
                    for line in r.iter_lines():
                        connected.set()
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: ") and kind:
                            events.append((kind, json.loads(line[6:])))
                            if kind == "strategy":
                                return

            reader = threading.Thread(target=listen, daemon=True)
            reader.start()
            assert connected.wait(10), "the stream did not open"
            time.sleep(0.5)  # the stream has taken its starting point
            subprocess.run(
                [sys.executable, "-c", WRITER, str(root), db],
                check=True,
                capture_output=True,
                timeout=120,
            )
            reader.join(timeout=100)
    finally:
        running.stop()
        dispose_engines()
    kinds = [k for k, _ in events]
    products = [d for k, d in events if k == "product"]
    # the SVOM user sees the ECLAIRs product, not COLIBRI's; each event once
    assert [(p["type_code"], p["instrument"], p["obs_id"]) for p in products] == [
        ("QLC", "ECL", "GRB9")
    ]
    assert (
        "status",
        {"key": "GRB9", "flow_name": "vhf_quick_analysis", "state": "failed", "reason": "no GTI"},
    ) in events
    alarms = [d for k, d in events if k == "alarm"]
    assert (
        len(alarms) == 1 and alarms[0]["parameter"] == "T_DPIX" and alarms[0]["state"] == "raised"
    )
    assert kinds[-1] == "strategy" and events[-1][1] == {"name": "grb-followup", "version": 3}
    assert len(kinds) == len(set(json.dumps(e, sort_keys=True) for e in events))
