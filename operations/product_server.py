"""Serve the products root read-only over HTTP, so the links in the Prefect UI open.

Summary artifacts link each product to ``$SVOMFLOW_PRODUCTS_URL/<path under the root>``:
``file://`` links do not open from a web page. This server answers GET and HEAD for files
below one root and nothing else: any path that resolves outside the root (``..``, an
absolute path, a symbolic link leaving it) is refused with 403, other methods with 405.
``/_svomflow_root`` names the root, so a command can tell whether the server on the port
serves its own home.

Run it with ``svomflow serve-products``; flow commands start it detached next to the local
Prefect server (:func:`ensure_product_server`).
"""

from __future__ import annotations

import fcntl
import http.server
import mimetypes
import os
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import httpx
from svomflow.errors import ServerUnavailableError
from svomflow.flows.adapter import default_output_root
from svomflow.paths import data_home

__all__ = [
    "DEFAULT_PRODUCTS_PORT",
    "ProductServerInfo",
    "ensure_product_server",
    "make_server",
    "products_root",
    "resolve_under",
    "running_product_server",
    "stop_product_server",
]

DEFAULT_PRODUCTS_PORT = 4280
# Handles of the detached servers started here: kept so that Python does not warn, at
# garbage collection, about a child that outlives this process by design.
_DETACHED: list[subprocess.Popen[bytes]] = []
ROOT_ENDPOINT = "/_svomflow_root"


def products_root() -> Path:
    """Return the products root (``$SVOMFLOW_PRODUCTS``, else ``<home>/products``), resolved."""
    return default_output_root().expanduser().resolve()


def resolve_under(root: Path, url_path: str) -> Path | None:
    """Return the file an URL path names below ``root``, or None when it would leave it.

    Parameters
    ----------
    root
        The served folder (resolved).
    url_path
        The request path (percent-encoded, query ignored).
    """
    # not urlsplit: it would read "//host/x" as a network location
    raw = urllib.parse.unquote(url_path.split("?", 1)[0].split("#", 1)[0])
    if "\x00" in raw:
        return None
    target = (root / raw.lstrip("/")).resolve()
    if target != root and root not in target.parents:
        return None
    return target


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET/HEAD of files under ``server.root``; everything else refused."""

    server_version = "svomflow-products"

    def _send_file(self, body: bool) -> None:
        root: Path = self.server.root  # type: ignore[attr-defined]
        if self.path == ROOT_ENDPOINT:
            data = str(root).encode()
            self._headers(200, "text/plain; charset=utf-8", len(data))
            if body:
                self.wfile.write(data)
            return
        target = resolve_under(root, self.path)
        if target is None:
            self.send_error(403, "outside the products root")
            return
        if not target.is_file():
            self.send_error(404, "no such product")
            return
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        size = target.stat().st_size
        self._headers(200, kind, size)
        if body:
            with open(target, "rb") as f:
                while chunk := f.read(1 << 16):
                    self.wfile.write(chunk)

    def _headers(self, code: int, kind: str, size: int) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(size))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()

    def do_GET(self) -> None:
        """Send a file below the root."""
        self._send_file(body=True)

    def do_HEAD(self) -> None:
        """Send a file's headers."""
        self._send_file(body=False)

    def _refuse(self) -> None:
        self.send_error(405, "read-only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet (the UI fetches every preview)."""


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0) -> http.server.HTTPServer:
    """Return a threaded HTTP server of ``root`` (call ``serve_forever``; port 0: any free)."""
    server = http.server.ThreadingHTTPServer((host, port), _Handler)
    server.root = root.resolve()  # type: ignore[attr-defined]
    server.daemon_threads = True
    return server


@dataclass(frozen=True)
class ProductServerInfo:
    """A reachable product server: its base URL and whether it was started now."""

    url: str
    root: Path
    started_here: bool


def _served_root(url: str) -> Path | None:
    try:
        r = httpx.get(f"{url}{ROOT_ENDPOINT}", timeout=1.0)
    except httpx.HTTPError:
        return None
    return Path(r.text) if r.status_code == 200 else None


def _port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _candidate_ports(state: Path, port: int) -> list[int]:
    """Return the ports to try: the one this home used last, then the default."""
    try:
        recorded = int((state / "products-server.port").read_text().strip())
    except (OSError, ValueError):
        return [port]
    return [recorded, port] if recorded != port else [port]


def running_product_server(port: int = DEFAULT_PRODUCTS_PORT) -> str | None:
    """Return the URL of a running product server of this home's root, without starting one."""
    root = products_root()
    for candidate in _candidate_ports(data_home() / "prefect", port):
        if _served_root(f"http://127.0.0.1:{candidate}") == root:
            return f"http://127.0.0.1:{candidate}"
    return None


def ensure_product_server(
    port: int = DEFAULT_PRODUCTS_PORT, timeout_s: float = 20.0
) -> ProductServerInfo:
    """Return the product server of this home's root, starting it detached if none runs.

    The server runs on ``port`` unless that port serves another home's root (then on a free
    port, remembered in ``<home>/prefect/products-server.port``).

    Raises
    ------
    ServerUnavailableError
        When the server does not come up.
    """
    root = products_root()
    root.mkdir(parents=True, exist_ok=True)
    state = data_home() / "prefect"
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "products-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for candidate in _candidate_ports(state, port):
            if _served_root(f"http://127.0.0.1:{candidate}") == root:
                return ProductServerInfo(f"http://127.0.0.1:{candidate}", root, False)
        chosen = port if not _port_in_use(port) else 0
        if chosen == 0:
            from svomflow.operations.local_server import free_port

            chosen = free_port()
        url = f"http://127.0.0.1:{chosen}"
        cmd = [sys.executable, "-m", "svomflow.operations.product_server", str(root), str(chosen)]
        with open(state / "products-server.log", "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _DETACHED.append(proc)
        (state / "products-server.pid").write_text(str(proc.pid))
        (state / "products-server.port").write_text(str(chosen))
        deadline = time.monotonic() + timeout_s
        while _served_root(url) != root:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServerUnavailableError(
                    f"the product server did not start on port {chosen}; "
                    f"see {state / 'products-server.log'}"
                )
            time.sleep(0.2)
    return ProductServerInfo(url, root, True)


def stop_product_server() -> bool:
    """Stop the product server this home started; return whether one was running."""
    import signal

    pid_file = data_home() / "prefect" / "products-server.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    pid_file.unlink(missing_ok=True)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    """Serve ``ROOT`` on ``PORT`` until interrupted (``python -m ... ROOT PORT``)."""
    args = sys.argv[1:] if argv is None else argv
    root, port = Path(args[0]), int(args[1])
    server = make_server(root, port=port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
