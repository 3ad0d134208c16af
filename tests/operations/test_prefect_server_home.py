"""One home, one server: `ensure_server` reuses only its own home's Prefect server.

A fake Prefect API (answers ``/health``, reports another ``PREFECT_HOME``) plays another
home's server on the port asked for; two real homes then each start and reuse their own
``prefect server start``, on different ports, whichever port they were asked for.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from svomflow.operations import prefect_server
from svomflow.operations.prefect_server import (
    ensure_server,
    home_server_url,
    is_home_server,
    stop_server,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def other_home_server(tmp_path: Path) -> Iterator[int]:
    """A healthy fake Prefect API whose PREFECT_HOME is another home's; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = {"/api/health": True, "/api/admin/settings": {"home": str(tmp_path / "x")}}
            if self.path not in body:
                self.send_error(404)
                return
            data = json.dumps(body[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_prefect_api_url_wins(other_home_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{other_home_server}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    info = ensure_server()
    assert info.api_url == url and not info.started_here


def test_another_homes_server_is_not_this_homes(
    other_home_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    api = f"http://127.0.0.1:{other_home_server}/api"
    assert prefect_server.server_healthy(api) and not is_home_server(api)
    # even recorded as this home's port, it is not taken for this home's server
    (prefect_server._state_dir() / "server.port").write_text(str(other_home_server))
    assert home_server_url() is None


def _home(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVOMFLOW_HOME", str(path))


def test_two_homes_get_two_servers(
    other_home_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    started: list[Path] = []
    try:
        # home A asked for the port of another home's server: starts its own elsewhere
        _home(home_a, monkeypatch)
        a = ensure_server(port=other_home_server)
        started.append(home_a)
        assert a.started_here and a.api_url != f"http://127.0.0.1:{other_home_server}/api"
        recorded = int((home_a / "prefect" / "server.port").read_text())
        assert a.api_url == f"http://127.0.0.1:{recorded}/api"
        assert int((home_a / "prefect" / "server.pid").read_text()) == a.pid
        again = ensure_server(port=other_home_server)
        assert again.api_url == a.api_url and not again.started_here
        assert home_server_url() == a.api_url

        # home B asked for A's port: A's server is not B's, B gets its own
        _home(home_b, monkeypatch)
        assert not is_home_server(a.api_url)
        b = ensure_server(port=recorded)
        started.append(home_b)
        assert b.started_here and b.api_url != a.api_url
        assert ensure_server().api_url == b.api_url  # reused from its record
        # each server keeps its runs in its own home's database
        for home, info in ((home_a, a), (home_b, b)):
            settings = httpx.get(f"{info.api_url}/admin/settings", timeout=10).json()
            assert Path(settings["home"]).resolve() == (home / "prefect").resolve()
    finally:
        for home in started:
            _home(home, monkeypatch)
            assert stop_server()
    _home(home_a, monkeypatch)
    assert home_server_url() is None
    assert not (home_a / "prefect" / "server.pid").exists()


def test_serve_start_server_moves_off_a_taken_port(other_home_server: int, tmp_path: Path) -> None:
    """`serve --start-server --port P` with P taken starts its server on a free port."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SVOMFLOW_"))}
    env |= {"SVOMFLOW_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect")}
    (tmp_path / "prefect").mkdir()
    cmd = [sys.executable, "-m", "svomflow.cli.main", "serve", "--start-server"]
    cmd += ["--port", str(other_home_server), "--flow", "vhf", "--register-only"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"port {other_home_server} is taken" in out.stderr
    assert "registered vhf" in out.stdout
    assert f":{other_home_server}" not in out.stdout.split("Prefect server and UI at")[1]
