"""CALDB credentials never leak (issue 15, "CALDB").

Credentials written in a CALDB URL (``http://user:TOKEN@host/``) used to appear in every
retry warning and in the final error; a bearer token went over plain http without a word.
A local HTTP server (loopback, where plain http is allowed) answers with failures; nothing
captured — log records, exceptions, ``repr``, the CLI's output — may hold a secret.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from svomflow.calibration.caldb.client import CaldbClient, CaldbFetchError, RemoteCaldb
from svomflow.calibration.caldb.redact import check_transport, redact, redact_url

USER = "alice-operator"
SECRET = "pw-Zq81xk3LmT0"
TOKEN = "bearer-Yh72ndQs9"


class Flaky:
    """Loopback HTTP server failing every request (503), recording Authorization headers."""

    def __init__(self) -> None:
        self.auth: list[str | None] = []
        self.status = 503
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.auth.append(self.headers.get("Authorization"))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    s = Flaky()
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in (SECRET, TOKEN, f"{USER}:"):
            assert secret not in text, text


def test_url_credentials_are_used_but_never_shown(flaky, tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("SVOMFLOW_CALDB_TOKEN", raising=False)
    monkeypatch.delenv("SVOMFLOW_CALDB_TOKEN_FILE", raising=False)
    url = f"http://{USER}:{SECRET}@127.0.0.1:{flaky.port}/caldb/"
    client = CaldbClient(url, cache_dir=tmp_path / "cache", attempts=3, backoff_s=0.01)
    with caplog.at_level(logging.DEBUG), pytest.raises(CaldbFetchError) as err:
        client.fetch("data/gain.fits")
    # the credentials did reach the server (basic auth) ...
    expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    assert flaky.auth == [expected] * 3
    # ... and nowhere else
    warnings = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(warnings) == 2
    assert f"http://***@127.0.0.1:{flaky.port}/caldb/data/gain.fits" in warnings[0]
    assert "after 3 attempt(s)" in str(err.value) and "***@127.0.0.1" in str(err.value)
    assert_clean(caplog.text, str(err.value), repr(client), repr(RemoteCaldb(url, client=client)))


def test_connection_errors_do_not_leak(flaky, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SVOMFLOW_CALDB_TOKEN", TOKEN)
    port = flaky.port
    flaky.httpd.shutdown()
    flaky.httpd.server_close()  # nothing listens any more: connection refused
    url = f"http://{USER}:{SECRET}@127.0.0.1:{port}/?token={TOKEN}"
    client = CaldbClient(url, cache_dir=tmp_path / "cache", attempts=2, backoff_s=0.01)
    with caplog.at_level(logging.DEBUG), pytest.raises(CaldbFetchError) as err:
        client.get_json("index/latest.json")
    assert "ConnectError" in str(err.value)
    assert_clean(caplog.text, str(err.value))


def test_caldb_cli_output_does_not_leak(flaky, tmp_path, monkeypatch, caplog):
    from svomflow.cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SVOMFLOW_CALDB_TOKEN", TOKEN)
    flaky.status = 404  # not retried: one request per command
    url = f"http://{USER}:{SECRET}@127.0.0.1:{flaky.port}/caldb/"
    runner = CliRunner()
    for args in (
        ["caldb", "fetch", "data/x.fits", "--base-url", url],
        ["caldb", "list", "--caldb", url],
        ["caldb", "select", "GAIN", "--instrument", "MXT", "--time", "2026-01-01", "--caldb", url],
    ):
        with caplog.at_level(logging.DEBUG):
            r = runner.invoke(app, args)
        assert r.exit_code != 0, r.output
        assert r.output.startswith("svomflow: error:") and "HTTP 404" in r.output, r.output
        assert f"http://***@127.0.0.1:{flaky.port}/caldb/" in r.output
        assert_clean(r.output, caplog.text)
    assert len(flaky.auth) == 3


def refusing_transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"{}")

    return httpx.MockTransport(handler)


def test_bearer_token_over_plain_http_is_refused_except_to_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("SVOMFLOW_CALDB_TOKEN", TOKEN)
    seen: list[httpx.Request] = []
    remote = CaldbClient(
        "http://caldb.example.org/", cache_dir=tmp_path, transport=refusing_transport(seen)
    )
    with pytest.raises(
        CaldbFetchError,
        match=r"refusing to send the CALDB bearer token over plain http to caldb\.example\.org: "
        r"use an https://",
    ) as err:
        remote.get_bytes("index/latest.json")
    assert seen == [] and TOKEN not in str(err.value)  # nothing was sent
    # https, or plain http to this machine: sent
    for base in ("https://caldb.example.org/", "http://localhost:8080/", "http://[::1]:8080/"):
        CaldbClient(base, cache_dir=tmp_path, transport=refusing_transport(seen)).get_bytes("x")
    assert [r.headers["Authorization"] for r in seen] == [f"Bearer {TOKEN}"] * 3
    # without a token, plain http anywhere is fine
    monkeypatch.delenv("SVOMFLOW_CALDB_TOKEN")
    CaldbClient(
        "http://caldb.example.org/", cache_dir=tmp_path, transport=refusing_transport(seen)
    ).get_bytes("x")
    assert "Authorization" not in seen[-1].headers


def test_url_credentials_over_plain_http_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("SVOMFLOW_CALDB_TOKEN", raising=False)
    seen: list[httpx.Request] = []
    client = CaldbClient(
        f"http://{USER}:{SECRET}@caldb.example.org/",
        cache_dir=tmp_path,
        transport=refusing_transport(seen),
    )
    with pytest.raises(CaldbFetchError, match="credentials in the CALDB URL") as err:
        client.get_bytes("x")
    assert seen == [] and SECRET not in str(err.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://{USER}:{SECRET}@host:8443/c/", "https://***@host:8443/c/"),
        (f"https://{SECRET}@host/c/", "https://***@host/c/"),
        (f"https://host/c/?token={SECRET}&v=1", "https://host/c/?token=%2A%2A%2A&v=1"),
        ("https://host/c/index.json", "https://host/c/index.json"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown
    assert SECRET not in redact(f"GET {url} failed", [])


def test_check_transport():
    assert check_transport("https://example.org/", "x") is None
    assert check_transport("http://127.0.0.2:9/", "x") is None
    assert "plain http to example.org" in (check_transport("http://example.org/", "x") or "")


def test_status_where_does_not_show_caldb_credentials(tmp_path, monkeypatch):
    from svomflow.cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(
        "SVOMFLOW_CALDB", f"https://{USER}:{SECRET}@caldb.example.org/c/?token={TOKEN}"
    )
    r = CliRunner().invoke(app, ["status", "--where"])
    assert r.exit_code == 0, r.output
    assert "caldb     https://***@caldb.example.org/c/?token=%2A%2A%2A" in r.output
    assert_clean(r.output)
