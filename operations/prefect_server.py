"""Find or start the local Prefect server (SQLite, 127.0.0.1) that the demo and users run on.

The server is started detached, its log and pid kept under ``$SVOMFLOW_HOME/prefect``, and
it is left running for the UI unless asked to stop; :func:`stop_server` stops one we started.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from svomflow.errors import ServerUnavailableError, SvomflowError
from svomflow.operations.local_server import launch_server, wait_healthy
from svomflow.paths import data_home

__all__ = ["ServerInfo", "connect", "ensure_server", "server_healthy", "stop_server"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
# Handles of detached servers started here, kept so that Python does not warn at garbage
# collection about a child that outlives this process by design.
_DETACHED: list[subprocess.Popen[bytes]] = []


@dataclass(frozen=True)
class ServerInfo:
    """A reachable Prefect server: its API and UI URLs and whether we started it now."""

    api_url: str
    ui_url: str
    started_here: bool
    pid: int | None
    log_path: Path | None

    def flow_run_url(self, flow_run_id: str) -> str:
        """Return the UI address of a flow run."""
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}"


def _state_dir() -> Path:
    d = data_home() / "prefect"
    d.mkdir(parents=True, exist_ok=True)
    return d


def server_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Return whether a Prefect API answers ``/health`` at ``api_url``."""
    try:
        r = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(_state_dir()))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to itself
    return env


def ensure_server(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, timeout_s: float = 120.0
) -> ServerInfo:
    """Return a running server: the configured/default one if it answers, else start one.

    ``PREFECT_API_URL`` (if set) is used as is and never started here. Otherwise the server
    at ``http://host:port/api`` is used if healthy, or ``prefect server start`` is launched
    detached (SQLite database under ``$PREFECT_HOME``), and this waits until it is healthy.
    """
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        if not server_healthy(configured):
            raise ServerUnavailableError(
                f"the Prefect server at {configured} (PREFECT_API_URL) does not answer /health"
            )
        ui = configured.rstrip("/").removesuffix("/api")
        return ServerInfo(configured, ui, False, None, None)
    api = f"http://{host}:{port}/api"
    ui = f"http://{host}:{port}"
    if server_healthy(api):
        return ServerInfo(api, ui, False, _read_pid(), None)
    # One starter at a time: two commands launched together must not both start a server
    # (the second would lose the port and fail).
    with open(_state_dir() / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if server_healthy(api):
            return ServerInfo(api, ui, False, _read_pid(), None)
        log_path = _state_dir() / "server.log"
        with open(log_path, "ab") as log:
            proc = launch_server(host, port, _server_env(), log)
        _DETACHED.append(proc)
        (_state_dir() / "server.pid").write_text(str(proc.pid))
        try:
            wait_healthy(proc, api, timeout_s, str(log_path))
        except SvomflowError as exc:
            if server_healthy(api):  # another home's server took the port meanwhile
                return ServerInfo(api, ui, False, None, None)
            raise ServerUnavailableError(
                f"{exc}; start one with: svomflow server start (or set PREFECT_API_URL)"
            ) from None
    return ServerInfo(api, ui, True, proc.pid, log_path)


def _read_pid() -> int | None:
    f = _state_dir() / "server.pid"
    try:
        return int(f.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_server(timeout_s: float = 20.0) -> bool:
    """Stop the server this data home started (SIGINT, then SIGKILL); return whether it ran."""
    pid = _read_pid()
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGINT)  # Prefect shuts down cleanly on SIGINT, not SIGTERM
    except ProcessLookupError:
        (_state_dir() / "server.pid").unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(pid, signal.SIGKILL)
    (_state_dir() / "server.pid").unlink(missing_ok=True)
    return True


def connect() -> str:
    """Point this process's flows at the one long-lived server; return its API URL.

    For notebooks and scripts: call it before Prefect is first imported (Prefect reads its
    settings at import). ``PREFECT_API_URL`` when set (it must answer), else the svomflow
    local server, started on first use; never Prefect's temporary server.
    """
    info = ensure_server()
    os.environ["PREFECT_API_URL"] = info.api_url
    return info.api_url
