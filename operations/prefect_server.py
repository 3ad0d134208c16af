"""Find or start this home's local Prefect server (SQLite, 127.0.0.1) that commands run on.

One home, one server: the managed server keeps its database under ``$SVOMFLOW_HOME/prefect``
(its ``PREFECT_HOME``), and its port and pid are recorded there (``server.port``,
``server.pid``). A server answering on the port is reused only if it is this home's: Prefect
reports its own ``PREFECT_HOME`` (``GET /api/admin/settings``), which must be this home's
``prefect`` folder. Another home's server (or any other program) on port 4200 is left
alone: this home's server then starts on a free port, remembered for the next commands.

The server is started detached, its log kept beside the records, and left running for the
UI unless asked to stop; :func:`stop_server` stops the one this home started.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from svomflow.errors import ServerUnavailableError, SvomflowError
from svomflow.operations.local_server import (
    SERVER_MODULE,
    free_port,
    launch_server,
    port_free,
    wait_healthy,
)
from svomflow.paths import data_home

__all__ = [
    "ServerInfo",
    "connect",
    "ensure_server",
    "home_server_url",
    "is_home_server",
    "server_healthy",
    "stop_server",
]

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


def _api(port: int) -> str:
    return f"http://{DEFAULT_HOST}:{port}/api"


def server_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Return whether a Prefect API answers ``/health`` at ``api_url``."""
    try:
        r = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def is_home_server(api_url: str, timeout: float = 2.0) -> bool:
    """Return whether the Prefect server at ``api_url`` is this home's managed server.

    It is when it reports this home's ``prefect`` folder as its ``PREFECT_HOME``; anything
    else (another home's server, a server without that endpoint, no answer) is not.
    """
    try:
        r = httpx.get(f"{api_url.rstrip('/')}/admin/settings", timeout=timeout)
        home = r.json().get("home") if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    if not isinstance(home, str):
        return False
    return Path(home).expanduser().resolve() == _state_dir().resolve()


def _read_int(name: str) -> int | None:
    try:
        return int((_state_dir() / name).read_text().strip())
    except (OSError, ValueError):
        return None


def _record(port: int, pid: int | None) -> None:
    (_state_dir() / "server.port").write_text(str(port))
    if pid is not None:
        (_state_dir() / "server.pid").write_text(str(pid))


def _running(ports: list[int]) -> int | None:
    """Return the first of ``ports`` where this home's server answers."""
    for port in dict.fromkeys(ports):
        if server_healthy(_api(port)) and is_home_server(_api(port)):
            return port
    return None


def home_server_url() -> str | None:
    """Return the API URL of this home's running managed server, or None.

    Another home's server on the default port is not taken for it.
    """
    recorded = _read_int("server.port")
    port = _running([p for p in (recorded, DEFAULT_PORT) if p is not None])
    return _api(port) if port is not None else None


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    # the server's database and identity are this home's, whatever PREFECT_HOME says
    env["PREFECT_HOME"] = str(_state_dir())
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to itself
    return env


def ensure_server(port: int = DEFAULT_PORT, timeout_s: float = 120.0) -> ServerInfo:
    """Return a running server for this home: the configured one, this home's, or a new one.

    ``PREFECT_API_URL`` (if set) is used as is and never started here. Otherwise this
    home's managed server is reused where it answers (its recorded port, else ``port``);
    if none runs, ``prefect server start`` is launched detached on ``port`` (on a free
    port when ``port`` is taken, by another home's server or anything else), its port and
    pid recorded under ``$SVOMFLOW_HOME/prefect``, and this waits until it is healthy.
    """
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        if not server_healthy(configured):
            raise ServerUnavailableError(
                f"the Prefect server at {configured} (PREFECT_API_URL) does not answer /health"
            )
        ui = configured.rstrip("/").removesuffix("/api")
        return ServerInfo(configured, ui, False, None, None)
    candidates = [p for p in (_read_int("server.port"), port, DEFAULT_PORT) if p is not None]
    found = _running(candidates)
    if found is not None:
        return _reused(found)
    # One starter at a time: two commands of this home launched together must not both
    # start a server.
    with open(_state_dir() / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _running(candidates)
        if found is not None:
            return _reused(found)
        return _start(port, timeout_s)


def _reused(port: int) -> ServerInfo:
    if _read_int("server.port") != port:  # adopted (started before ports were recorded)
        _record(port, None)
    api = _api(port)
    return ServerInfo(api, api.removesuffix("/api"), False, _read_int("server.pid"), None)


def _start(port: int, timeout_s: float) -> ServerInfo:
    log_path = _state_dir() / "server.log"
    for attempt in range(2):
        chosen = port if attempt == 0 and port_free(port) else free_port()
        api = _api(chosen)
        with open(log_path, "ab") as log:
            proc = launch_server(DEFAULT_HOST, chosen, _server_env(), log)
        _DETACHED.append(proc)
        _record(chosen, proc.pid)
        try:
            wait_healthy(proc, api, timeout_s, str(log_path))
        except SvomflowError as exc:
            if proc.poll() is not None and not port_free(chosen):
                continue  # the port was taken meanwhile: once more on a free one
            raise ServerUnavailableError(
                f"{exc}; start one with: svomflow server start (or set PREFECT_API_URL)"
            ) from None
        # the first /admin/settings of a fresh server took 4.9 s at load 18 (corpus): with
        # the 2 s default our own server was taken for a stranger and killed, twice
        if is_home_server(api, timeout=timeout_s):
            return ServerInfo(api, api.removesuffix("/api"), True, proc.pid, log_path)
        # something else answered on the port before ours could bind it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    raise ServerUnavailableError(
        f"this home's Prefect server could not get a port; see {log_path} (or set PREFECT_API_URL)"
    )


def _is_prefect_server(pid: int) -> bool:
    """Whether ``pid`` is a ``prefect server start`` process (the pid file may be stale)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # started by svomflow (SERVER_MODULE), or as ``prefect server start`` by an older one
    started = SERVER_MODULE.encode() in cmd or b"prefect" in cmd
    return started and b"server" in cmd and b"start" in cmd


def stop_server(timeout_s: float = 20.0) -> bool:
    """Stop the server this data home started (SIGINT, then SIGKILL); return whether it ran."""
    pid = _read_int("server.pid")
    if pid is None:
        return False
    (_state_dir() / "server.pid").unlink(missing_ok=True)
    if not _is_prefect_server(pid):  # gone, and its pid perhaps reused by another program
        return False
    try:
        os.killpg(pid, signal.SIGINT)  # Prefect shuts down cleanly on SIGINT, not SIGTERM
    except ProcessLookupError:
        return False
    ours = [p for p in _DETACHED if p.pid == pid]  # started by this process: reap it
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ours and ours[0].poll() is not None:
            break
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    for proc in ours:
        proc.wait(timeout=10)
        _DETACHED.remove(proc)
    return True


def connect() -> str:
    """Point this process's flows at the one long-lived server; return its API URL.

    For notebooks and scripts: call it before Prefect is first imported (Prefect reads its
    settings at import). ``PREFECT_API_URL`` when set (it must answer), else this home's
    local server, started on first use; never Prefect's temporary server.
    """
    info = ensure_server()
    os.environ["PREFECT_API_URL"] = info.api_url
    return info.api_url
