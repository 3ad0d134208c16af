"""Create the flow runs of alerts: one Prefect client per listener, idempotent creation.

``run_deployment`` opens a client and reads the deployment at every call; a backlog of
alerts after a restart then costs a client handshake and a deployment read per alert, and
many concurrent creations make a SQLite-backed server answer 503 (retried by the client
with long backoffs). This keeps one client and the deployment ids, and bounds the number
of creations in flight. The alert's identity is the idempotency key: creating the run of
an alert again returns the run that already exists.

Two kinds of run, one key: a *deployment* run (``create_run``), executed by the process
serving the deployment (``svomflow serve``: Prefect 3 starts a fresh interpreter per run),
or a *local* run (``create_local_run``), created ``Pending`` — which no runner or worker
picks up — for the listener to execute in its own long-lived process, where the imports
and the numba kernels are already loaded (the listener's ``direct`` mode). Both are keyed
``alert:<alert id>:<flow>`` on the same flow, so an alert has at most one run either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

__all__ = ["DeploymentDispatcher", "LocalRun"]

# A local run found in one of these states already ran to its end (a listener that died
# before recording it): it is recorded, not run again.
_FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


@dataclass(frozen=True)
class LocalRun:
    """A flow run created (or found) for this process to execute.

    Attributes
    ----------
    flow_run
        Prefect's ``FlowRun`` (state ``Pending``, ready for the flow engine).
    finished
        True when the run already ended (do not execute it again).
    """

    flow_run: Any
    finished: bool

    @property
    def id(self) -> str:
        """The flow run id."""
        return str(self.flow_run.id)


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

    async def create_local_run(
        self,
        flow: Any,
        parameters: dict[str, Any],
        *,
        name: str,
        idempotency_key: str,
        tags: list[str],
    ) -> LocalRun:
        """Create (or find, by ``idempotency_key``) a ``Pending`` run of ``flow`` to run here.

        A run found unfinished (``Running`` or ``Crashed``: its listener died mid-way and its
        claim's lease expired) is set back to ``Pending`` to be executed again, so the alert
        keeps one run in Prefect whatever happened.
        """
        from prefect.client.schemas.actions import FlowRunCreate
        from prefect.client.schemas.objects import FlowRun, FlowRunPolicy
        from prefect.states import Pending, to_state_create

        async with self._gate:
            client = await self._get_client()
            try:
                flow_id = self._ids.get(f"flow:{flow.name}")
                if flow_id is None:
                    flow_id = await client.create_flow_from_name(flow.name)
                    self._ids[f"flow:{flow.name}"] = flow_id
                create = FlowRunCreate(
                    flow_id=flow_id,
                    flow_version=flow.version,
                    name=name,
                    parameters=parameters,
                    tags=tags,
                    state=to_state_create(Pending()),
                    idempotency_key=idempotency_key,
                    empirical_policy=FlowRunPolicy(
                        retries=flow.retries, retry_delay=int(flow.retry_delay_seconds or 0)
                    ),
                )
                # the client's create_flow_run takes no idempotency key: the same request
                # with the key the server's model accepts
                response = await client.request(
                    "POST", "/flow_runs/", json=create.model_dump(mode="json", exclude_unset=True)
                )
                response.raise_for_status()
                run = FlowRun.model_validate(response.json())
                state = run.state.type.value if run.state is not None else "PENDING"
                if state in _FINISHED:
                    return LocalRun(run, finished=True)
                if state != "PENDING":
                    await client.set_flow_run_state(run.id, Pending(), force=True)
                    run = await client.read_flow_run(run.id)
            except Exception:
                self._ids.pop(f"flow:{flow.name}", None)
                await self._reset(client)
                raise
        run.parameters = parameters  # the Python values, as the engine expects
        return LocalRun(run, finished=False)

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
