"""The remote CALDB client against a local HTTP server: retries, token, cache, checksums."""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from svomflow.calibration.caldb import open_caldb
from svomflow.calibration.caldb.client import (
    CaldbClient,
    CaldbFetchError,
    ChecksumMismatchError,
    RemoteCaldb,
)

TOKEN = "s3cr3t-token-value-0123456789"


class Server:
    """A tiny HTTP server: serves files from ``root`` after a scripted list of failures."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization header)
        self.fail: dict[str, list[int]] = {}  # path -> statuses to answer first
        self.corrupt: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.lstrip("/")
                server.requests.append((path, self.headers.get("Authorization")))
                queue = server.fail.get(path)
                if queue:
                    status = queue.pop(0)
                    self.send_response(status)
                    if status in (429, 503):
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                f = server.root / path
                if not f.is_file():
                    self.send_error(404)
                    return
                body = f.read_bytes()
                if path in server.corrupt:
                    body = body[::-1] + b"x"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "remote"
    root.mkdir()
    (root / "files").mkdir()
    (root / "files" / "gain.fits").write_bytes(b"GAIN DATA " * 100)
    s = Server(root)
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join(timeout=5)


@pytest.fixture
def client(server: Server, tmp_path: Path) -> CaldbClient:
    return CaldbClient(server.url, cache_dir=tmp_path / "cache", attempts=4, backoff_s=0.01)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_retries_transient_errors_then_succeeds(server, client, caplog):
    server.fail["files/gain.fits"] = [503, 500, 429]
    with caplog.at_level(logging.WARNING):
        p = client.fetch("files/gain.fits")
    assert p.read_bytes() == b"GAIN DATA " * 100
    assert server.count("files/gain.fits") == 4
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 3


def test_gives_up_after_attempts(server, client):
    server.fail["files/gain.fits"] = [503] * 10
    with pytest.raises(CaldbFetchError, match="after 4 attempt"):
        client.fetch("files/gain.fits")
    assert server.count("files/gain.fits") == 4
    assert not client.cache_path("files/gain.fits").exists()


@pytest.mark.parametrize("status", [404, 401, 403])
def test_no_retry_on_client_errors(server, client, status):
    server.fail["files/gain.fits"] = [status]
    with pytest.raises(CaldbFetchError, match=f"HTTP {status}"):
        client.fetch("files/gain.fits")
    assert server.count("files/gain.fits") == 1


def test_connection_error_is_retried(tmp_path):
    # A port nobody listens on: every attempt fails to connect.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = CaldbClient(f"http://127.0.0.1:{port}/", cache_dir=tmp_path, attempts=3, backoff_s=0.01)
    with pytest.raises(CaldbFetchError, match=r"after 3 attempt.*ConnectError"):
        c.fetch("x.fits")


def test_token_sent_and_never_shown(server, client, monkeypatch, caplog):
    monkeypatch.setenv("SVOMFLOW_CALDB_TOKEN", TOKEN)
    server.fail["files/gain.fits"] = [503]
    with caplog.at_level(logging.DEBUG):
        client.fetch("files/gain.fits")
        server.fail["files/missing.fits"] = [401]
        with pytest.raises(CaldbFetchError) as err:
            client.fetch("files/missing.fits")
    assert {h for _, h in server.requests} == {f"Bearer {TOKEN}"}
    assert TOKEN not in str(err.value) and "token" in str(err.value)
    assert TOKEN not in caplog.text and caplog.records  # there were log lines, none with it
    assert TOKEN not in repr(client) and TOKEN not in repr(vars(client))


def test_token_file_is_reread_after_rotation(server, client, monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    monkeypatch.setenv("SVOMFLOW_CALDB_TOKEN", "env-token")
    monkeypatch.setenv("SVOMFLOW_CALDB_TOKEN_FILE", str(token_file))
    client.fetch("files/gain.fits", refresh=True)
    token_file.write_text("rotated-token\n")
    client.fetch("files/gain.fits", refresh=True)
    assert [h for _, h in server.requests] == ["Bearer first-token", "Bearer rotated-token"]
    token_file.unlink()
    with pytest.raises(CaldbFetchError, match="cannot read the CALDB token file") as err:
        client.fetch("files/gain.fits", refresh=True)
    assert "rotated-token" not in str(err.value)


def test_no_token_no_header(server, client, monkeypatch):
    monkeypatch.delenv("SVOMFLOW_CALDB_TOKEN", raising=False)
    monkeypatch.delenv("SVOMFLOW_CALDB_TOKEN_FILE", raising=False)
    client.fetch("files/gain.fits")
    assert server.requests == [("files/gain.fits", None)]


def test_cache_hit_avoids_second_request(server, client):
    body = (server.root / "files/gain.fits").read_bytes()
    p1 = client.fetch("files/gain.fits", sha256=sha(body))
    p2 = client.fetch(server.url + "files/gain.fits", sha256=sha(body))
    assert p1 == p2 and server.count("files/gain.fits") == 1
    # A corrupted cached copy is noticed and fetched again.
    p1.write_bytes(b"rot")
    assert client.fetch("files/gain.fits", sha256=sha(body)).read_bytes() == body
    assert server.count("files/gain.fits") == 2


def test_checksum_mismatch_is_rejected(server, client):
    body = (server.root / "files/gain.fits").read_bytes()
    server.corrupt.add("files/gain.fits")
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch"):
        client.fetch("files/gain.fits", sha256=sha(body))
    target = client.cache_path("files/gain.fits", sha(body))
    assert not target.exists() and not list(target.parent.glob(".tmp-*"))


def test_remote_caldb_mirrors_a_local_one(server, tmp_path, make_file, monkeypatch):
    local = open_caldb(tmp_path / "origin")
    a = local.register(
        make_file("g1.fits"),
        telescope="SVOM",
        instrument="ECLAIRS",
        codename="GAIN",
        valid_from="2024-01-01",
    )
    b = local.register(
        make_file("g2.fits"),
        telescope="SVOM",
        instrument="ECLAIRS",
        codename="GAIN",
        valid_from="2024-06-01",
    )
    local.supersede(b)
    # Serve the CALDB tree as a static site.
    shutil.copytree(local.root, server.root, dirs_exist_ok=True)
    monkeypatch.setenv("SVOMFLOW_CALDB", server.url)
    remote = open_caldb()
    assert isinstance(remote, RemoteCaldb)
    assert remote.index_version == 3
    got = remote.select("gain", instrument="eclairs", time="2024-09-01")
    assert got.id == a.id and got.path.read_bytes() == a.path.read_bytes()
    old = remote.select("gain", instrument="eclairs", time="2024-09-01", index_version=2)
    assert (
        old.id == b.id
        and old.sha256 == b.sha256
        and old.path.read_bytes() == b"calibration g2.fits\n"
    )
    n = len(server.requests)
    remote.select("gain", instrument="eclairs", time="2024-09-01", index_version=2)
    assert len(server.requests) == n  # old versions and files come from the cache
    assert [e.id for e in remote.list(all_qualities=True)] == [a.id, b.id]


def test_cli_fetch(server, monkeypatch, tmp_path):
    from svomflow.cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "home"))
    body = (server.root / "files/gain.fits").read_bytes()
    r = CliRunner().invoke(
        app, ["caldb", "fetch", "files/gain.fits", "--base-url", server.url, "--sha256", sha(body)]
    )
    assert r.exit_code == 0, r.output
    assert Path(r.output.strip()).read_bytes() == body
    r = CliRunner().invoke(app, ["caldb", "fetch", server.url + "files/none.fits"])
    assert r.exit_code != 0 and r.output.startswith("svomflow: error:") and "HTTP 404" in r.output
