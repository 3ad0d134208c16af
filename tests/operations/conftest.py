"""A real ``prefect server start`` (scheduler and all services) for the operations tests.

The session test harness runs an ephemeral server without the scheduler service, so the
tests that need schedules or served deployments start their own server on a free port of
127.0.0.1 with a temporary PREFECT_HOME (SQLite) and a 2 s scheduler loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def server_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """Environment for a Prefect server or client process isolated under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
        PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS="1",
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the API of a private ``prefect server start`` (one per session)."""
    from svomflow.operations.local_server import prefect_server as start

    home = tmp_path_factory.mktemp("prefect_server")
    with start(env=server_env(home), log_file=home / "server.log", timeout_s=90) as url:
        yield url


@pytest.fixture
def use_prefect_server(prefect_server: str) -> Iterator[str]:
    """Point this test's Prefect client at :func:`prefect_server`."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        yield prefect_server


@pytest.fixture
def nats_prefix() -> Iterator[str]:
    """A unique subject prefix (and stream ``S_<prefix>``); skip when NATS/JetStream is absent."""
    import asyncio
    import socket
    import uuid

    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex(("127.0.0.1", 4222)) != 0:
            pytest.skip("no NATS server on 127.0.0.1:4222")

    async def jetstream(delete: str | None = None) -> bool:
        import nats

        nc = await nats.connect(
            "nats://127.0.0.1:4222", connect_timeout=2, max_reconnect_attempts=0
        )
        try:
            if delete:
                await nc.jetstream().delete_stream(delete)
            await nc.jetstream().account_info()
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    if not asyncio.run(jetstream()):
        pytest.skip("the NATS server on 127.0.0.1:4222 has no JetStream")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    asyncio.run(jetstream(delete=f"S_{prefix}"))
