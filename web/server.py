"""Run the site: in the foreground (``svomflow web``), detached for the flow commands, or in a thread.

The flow commands link their products to ``<site>/files/...`` and start the site detached
on first use (:func:`ensure_web_server`), next to the local Prefect server: one server for
the pages and for the artifacts' links. It listens on 127.0.0.1:4300 unless that port
serves another home's products (then on a free port, remembered in
``<home>/web/server.port``); ``/_svomflow/root`` tells which products root a server serves.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from svomflow.errors import ServerUnavailableError
from svomflow.operations.product_server import products_root
from svomflow.paths import data_home
from svomflow.web.settings import DEFAULT_WEB_PORT, WebSettings

__all__ = [
    "RunningServer",
    "WebServerInfo",
    "bind_socket",
    "detached_idle_exit_s",
    "ensure_web_server",
    "running_web_server",
    "serve",
    "serve_in_thread",
    "stop_web_server",
]

# Handles of the detached servers started here: kept so that Python does not warn, at
# garbage collection, about a child that outlives this process by design.
_DETACHED: list[subprocess.Popen[bytes]] = []


def _state_dir() -> Path:
    d = data_home() / "web"
    d.mkdir(parents=True, exist_ok=True)
    return d


def bind_socket(host: str = "127.0.0.1", port: int = DEFAULT_WEB_PORT) -> socket.socket:
    """Return a listening socket on ``host:port`` (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _Activity:
    """ASGI wrapper that knows when the site last served (open requests count as activity)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.open = 0
        self.last = time.monotonic()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.open += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.last = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last request ended (0 while one is open)."""
        return 0.0 if self.open else time.monotonic() - self.last


def _stop_when_idle(server: uvicorn.Server, activity: _Activity, idle_exit_s: float) -> None:
    """Ask ``server`` to exit once no request came for ``idle_exit_s`` seconds."""
    while not server.should_exit:
        time.sleep(min(30.0, max(idle_exit_s / 4, 0.5)))
        if activity.idle_for() > idle_exit_s:
            server.should_exit = True


def _uvicorn_server(settings: WebSettings | None, idle_exit_s: float = 0.0) -> uvicorn.Server:
    from svomflow.web.app import create_app

    app: Any = create_app(settings)
    activity = _Activity(app) if idle_exit_s > 0 else None
    config = uvicorn.Config(
        activity or app,
        log_level="warning",
        access_log=False,  # requests carry no passwords, but tokens stay out of logs anyway
        timeout_graceful_shutdown=2,  # open live-update streams do not hold a stop
        lifespan="off",
    )
    server = uvicorn.Server(config)
    if activity is not None:
        threading.Thread(
            target=_stop_when_idle, args=(server, activity, idle_exit_s), daemon=True
        ).start()
    return server


def serve(
    sock: socket.socket, settings: WebSettings | None = None, *, idle_exit_s: float = 0.0
) -> None:
    """Serve the site on a bound socket until SIGINT/SIGTERM (or ``idle_exit_s`` without requests)."""
    server = _uvicorn_server(settings, idle_exit_s)
    server.run(sockets=[sock])


def detached_idle_exit_s() -> float:
    """Return how long a site started detached by a flow command waits idle before exiting.

    ``$SVOMFLOW_WEB_IDLE_EXIT_S`` (default 6 h; 0: never). A short-lived home (a test, a
    notebook's scratch folder) would otherwise leave one site per home running for ever;
    the next flow command of the home starts it again.
    """
    raw = os.environ.get("SVOMFLOW_WEB_IDLE_EXIT_S", "21600")
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return 21600.0


@dataclass
class RunningServer:
    """A site served from a thread of this process (tests, notebooks)."""

    url: str
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)


def serve_in_thread(settings: WebSettings | None = None, port: int = 0) -> RunningServer:
    """Start the site in a background thread on 127.0.0.1 (port 0: free); return it."""
    sock = bind_socket(port=port)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = _uvicorn_server(settings)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        daemon=True,
        name="svomflow-web",
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not getattr(server, "started", False):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServerUnavailableError(f"the web site did not start on {url}")
        time.sleep(0.02)
    return RunningServer(url, server, thread)


@dataclass(frozen=True)
class WebServerInfo:
    """A reachable site of this home: its base URL and whether it was started now."""

    url: str
    root: Path
    started_here: bool

    @property
    def files_url(self) -> str:
        """Base address of the product files (``$SVOMFLOW_PRODUCTS_URL``)."""
        return f"{self.url}/files"


def _serves_root(url: str, root: Path) -> bool:
    from svomflow.web.routes.files import ROOT_ENDPOINT, root_fingerprint

    try:
        r = httpx.get(f"{url}{ROOT_ENDPOINT}", timeout=1.0)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.text == root_fingerprint(str(root))


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _candidate_ports(port: int) -> list[int]:
    """Return the ports to try: the one this home used last, then ``port``."""
    try:
        recorded = int((_state_dir() / "server.port").read_text().strip())
    except (OSError, ValueError):
        return [port]
    return [recorded, port] if recorded != port else [port]


def running_web_server(port: int = DEFAULT_WEB_PORT) -> str | None:
    """Return the URL of a running site of this home's products, without starting one."""
    root = products_root()
    for candidate in _candidate_ports(port):
        if _serves_root(f"http://127.0.0.1:{candidate}", root):
            return f"http://127.0.0.1:{candidate}"
    return None


def ensure_web_server(
    port: int = DEFAULT_WEB_PORT, timeout_s: float = 30.0, idle_exit_s: float | None = None
) -> WebServerInfo:
    """Return the site of this home's products, starting it detached if none runs.

    ``idle_exit_s``: a site started now exits after that long without requests (None: the
    flow commands' :func:`detached_idle_exit_s`; 0: never, for ``svomflow web start``).

    Raises
    ------
    ServerUnavailableError
        When the site does not come up (its log is named).
    """
    root = products_root()
    root.mkdir(parents=True, exist_ok=True)
    state = _state_dir()
    with open(state / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for candidate in _candidate_ports(port):
            if _serves_root(f"http://127.0.0.1:{candidate}", root):
                return WebServerInfo(f"http://127.0.0.1:{candidate}", root, False)
        chosen = port
        if _port_in_use(port):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                chosen = s.getsockname()[1]
        url = f"http://127.0.0.1:{chosen}"
        cmd = [
            sys.executable, "-m", "svomflow.web.server", "--port", str(chosen),
            "--idle-exit-s", str(detached_idle_exit_s() if idle_exit_s is None else idle_exit_s),
        ]  # fmt: skip
        env = dict(os.environ, SVOMFLOW_PRODUCTS=str(root))
        with open(state / "server.log", "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        _DETACHED.append(proc)
        (state / "server.pid").write_text(str(proc.pid))
        (state / "server.port").write_text(str(chosen))
        deadline = time.monotonic() + timeout_s
        while not _serves_root(url, root):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServerUnavailableError(
                    f"the web site did not start on port {chosen}; see {state / 'server.log'}"
                )
            time.sleep(0.1)
    return WebServerInfo(url, root, True)


def stop_web_server() -> bool:
    """Stop the site this home started detached; return whether one was running."""
    pid_file = _state_dir() / "server.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    pid_file.unlink(missing_ok=True)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for proc in [p for p in _DETACHED if p.pid == pid]:  # started by this process: reap it
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
            proc.wait(timeout=5)
        _DETACHED.remove(proc)
    return True


def main(argv: list[str] | None = None) -> None:
    """Serve the site of this home (``python -m svomflow.web.server --port N``)."""
    parser = argparse.ArgumentParser(prog="python -m svomflow.web.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_WEB_PORT)
    parser.add_argument(
        "--idle-exit-s", type=float, default=0.0, help="exit after this long without requests"
    )
    args = parser.parse_args(argv)
    serve(bind_socket(args.host, args.port), idle_exit_s=args.idle_exit_s)


if __name__ == "__main__":
    main()
