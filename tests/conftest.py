"""Shared fixtures: real-data location, an isolated SVOMFLOW_HOME, Prefect harness, PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """Return ``../shared/data`` (or ``$SVOMFLOW_SHARED_DATA``) when it exists."""
    env = os.environ.get("SVOMFLOW_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the real public data set; skips the test when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real public data (../shared/data or $SVOMFLOW_SHARED_DATA) is not present")
    return path


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point SVOMFLOW_HOME at a temporary folder for the whole session.

    Module- and session-scoped fixtures (simulations shared by several tests) run before the
    per-test home exists: without this, a simulator would register its calibration files in
    the developer's own CALDB.
    """
    home = tmp_path_factory.mktemp("session_home")
    saved = {k: os.environ.get(k) for k in ("SVOMFLOW_HOME", "SVOMFLOW_CALDB")}
    os.environ["SVOMFLOW_HOME"] = str(home)
    os.environ.pop("SVOMFLOW_CALDB", None)
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def svomflow_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Give every test its own SVOMFLOW_HOME so nothing touches the user's data directory."""
    home = tmp_path_factory.mktemp("svomflow_home")
    monkeypatch.setenv("SVOMFLOW_HOME", str(home))
    monkeypatch.delenv("SVOMFLOW_CALDB", raising=False)
    monkeypatch.delenv("SVOMFLOW_DATABASE_URL", raising=False)
    return home


# Every flow command run by a test in its own home starts that home's web site detached
# (the artifacts' links): let each exit after a minute without requests, not six hours,
# so a test session does not pile up a hundred idle sites.
os.environ.setdefault("SVOMFLOW_WEB_IDLE_EXIT_S", "60")


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One Prefect test server (temporary SQLite) for the whole session, heartbeats off."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        # The heartbeat thread adds ~1 s to every synchronous flow run on exit.
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield


@pytest.fixture
def postgres_url() -> str:
    """URL of a PostgreSQL database for tests (``SVOMFLOW_TEST_POSTGRES_URL``), else skip."""
    url = os.environ.get("SVOMFLOW_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("SVOMFLOW_TEST_POSTGRES_URL is not set (no PostgreSQL server for this run)")
    return url


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[Any]]]:
    """A local SMTP server (aiosmtpd): yields its port and the envelopes it receives."""
    import socket

    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    yield port, received
    ctl.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]], dict[str, int]]]:
    """A local HTTP receiver: yields its URL, the JSON bodies posted, and its answer status."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: list[dict[str, Any]] = []
    answer = {"status": 200}

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(answer["status"])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", got, answer
    srv.shutdown()
    srv.server_close()
