"""Run a local ``prefect server start`` (UI, API and scheduler) as a child process.

Used by ``svomflow serve --start-server`` and by the tests that need the scheduler (the
Prefect test harness runs no scheduler service). ``PREFECT_API_DATABASE_CONNECTION_URL``
(``postgresql+asyncpg://user:pass@host/db``) puts the server on PostgreSQL; the default is
SQLite under ``PREFECT_HOME``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from svomflow.errors import SvomflowError

SERVER_MODULE = "svomflow.operations.prefect_server_main"
"""The module every local Prefect server runs as (``python -m``)."""

__all__ = [
    "SERVER_MODULE",
    "free_port",
    "launch_server",
    "port_free",
    "prefect_server",
    "stop_process",
    "wait_healthy",
]


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether a server could listen on ``host:port`` now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child started in its own session (SIGINT, then SIGKILL after 20 s)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def launch_server(
    host: str, port: int, env: Mapping[str, str], stdout: IO[bytes] | IO[str] | None
) -> subprocess.Popen[bytes]:
    """Start ``prefect server start`` in its own session (stop it with :func:`stop_process`).

    Through :data:`SERVER_MODULE`: Prefect's command line with SQLite transactions that
    take the write lock first (:mod:`svomflow.operations.prefect_server_main`).
    """
    cmd = [sys.executable, "-m", SERVER_MODULE, "server", "start"]
    cmd += ["--host", host, "--port", str(port)]
    environ = dict(env)
    # The UI asks its API at PREFECT_UI_API_URL, which otherwise defaults to port 4200
    # whatever --port says: on another port the UI would show another server's runs.
    environ.setdefault("PREFECT_UI_API_URL", f"http://{host}:{port}/api")
    environ.setdefault("PREFECT_SERVER_API_PORT", str(port))
    return subprocess.Popen(
        cmd,
        env=environ,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_healthy(
    proc: subprocess.Popen[bytes], api_url: str, timeout_s: float, log_hint: str = ""
) -> None:
    """Wait until the server answers ``/health``; raise if it exits or times out first."""
    import httpx

    hint = f"; see {log_hint}" if log_hint else ""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url.rstrip('/')}/health", timeout=1).status_code == 200:
                return
        if proc.poll() is not None:
            raise SvomflowError(f"the Prefect server exited with code {proc.returncode}{hint}")
        if time.monotonic() > deadline:
            raise SvomflowError(f"the Prefect server did not answer within {timeout_s:.0f} s{hint}")
        time.sleep(0.5)


@contextlib.contextmanager
def prefect_server(
    *,
    port: int | None = None,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
    log_file: str | Path | None = None,
    timeout_s: float = 120.0,
) -> Iterator[str]:
    """Start ``prefect server start`` on 127.0.0.1 and yield its API URL until the block ends.

    Parameters
    ----------
    port
        Port (default: a free one).
    database_url
        ``PREFECT_API_DATABASE_CONNECTION_URL`` for the server (PostgreSQL in operations).
    env
        Environment of the server (default: this process's).
    log_file
        Where the server's output goes (default: inherited).
    """
    port = port or free_port()
    environ = dict(env if env is not None else os.environ)
    environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if database_url:
        environ["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    url = f"http://127.0.0.1:{port}/api"
    out = open(log_file, "w") if log_file else None
    proc = launch_server("127.0.0.1", port, environ, out)
    try:
        wait_healthy(proc, url, timeout_s)
        yield url
    finally:
        stop_process(proc)
        if out:
            out.close()
