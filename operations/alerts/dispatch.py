"""Create deployment runs for alerts: one Prefect client per listener, idempotent creation.

``run_deployment`` opens a client and reads the deployment at every call; a backlog of
alerts after a restart then costs a client handshake and a deployment read per alert, and
many concurrent creations make a SQLite-backed server answer 503 (retried by the client
with long backoffs). This keeps one client and the deployment ids, and bounds the number
of creations in flight. The alert's identity is the idempotency key: creating the run of
an alert again returns the run that already exists.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["DeploymentDispatcher"]


class DeploymentDispatcher:
    """Create flow runs of deployments through one Prefect client (reopened after errors).

    Parameters
    ----------
    concurrency
        Most run creations in flight at once.
    """

    def __init__(self, concurrency: int = 4):
        self._client: Any = None
        self._ids: dict[str, Any] = {}
        self._gate = asyncio.Semaphore(max(1, concurrency))
        self._lock = asyncio.Lock()

    async def _get_client(self) -> Any:
        async with self._lock:
            if self._client is None:
                from prefect.client.orchestration import get_client

                client = get_client()
                await client.__aenter__()
                self._client = client
            return self._client

    async def create_run(
        self,
        deployment_name: str,
        parameters: dict[str, Any],
        *,
        name: str,
        idempotency_key: str,
        tags: list[str],
    ) -> str:
        """Create (or find, by ``idempotency_key``) the run; return its id."""
        async with self._gate:
            client = await self._get_client()
            try:
                dep_id = self._ids.get(deployment_name)
                if dep_id is None:
                    dep_id = (await client.read_deployment_by_name(deployment_name)).id
                    self._ids[deployment_name] = dep_id
                run = await client.create_flow_run_from_deployment(
                    dep_id,
                    parameters=parameters,
                    name=name,
                    tags=tags,
                    idempotency_key=idempotency_key,
                )
            except Exception:
                # a deployment re-created meanwhile, a server restarted: start afresh
                self._ids.pop(deployment_name, None)
                await self._reset(client)
                raise
        return str(run.id)

    async def _reset(self, client: Any) -> None:
        async with self._lock:
            if self._client is client:
                self._client = None
                with contextlib.suppress(Exception):
                    await client.__aexit__(None, None, None)

    async def close(self) -> None:
        """Close the client (the next creation opens a new one)."""
        if self._client is not None:
            await self._reset(self._client)
