"""The Prefect server on PostgreSQL (PREFECT_API_DATABASE_CONNECTION_URL), with svomflow's
deployments and the scheduler creating runs. Runs when SVOMFLOW_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from .conftest import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


@pytest.fixture
def prefect_pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh database for the Prefect server (asyncpg URL), dropped afterwards."""
    name = f"prefect_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(postgres_url).set(drivername="postgresql+asyncpg", database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_prefect_server_on_postgres_schedules_nightly(prefect_pg_url: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from svomflow.operations.deployments import (
        DeploymentSettings,
        apply_deployments,
        build_deployments,
    )
    from svomflow.operations.local_server import prefect_server

    env = server_env(tmp_path / "home")
    with (
        prefect_server(database_url=prefect_pg_url, env=env, log_file=tmp_path / "s.log") as api,
        temporary_settings(updates={PREFECT_API_URL: api}),
    ):
        settings = DeploymentSettings(
            flows=["nightly"], nightly_cron="* * * * *", raw_dir=str(tmp_path)
        )
        ids = apply_deployments(build_deployments(settings)[0])
        dep_id = ids["nightly_master_calibration/nightly"]
        runs: list = []
        with get_client(sync_client=True) as client:
            deadline = time.time() + 60
            while time.time() < deadline and len(runs) < 3:
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep_id])),
                    sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                    limit=10,
                )
                time.sleep(1)
        # the runs really live in PostgreSQL
        sync_url = make_url(prefect_pg_url).set(drivername="postgresql+psycopg")
        eng = create_engine(sync_url)
        with eng.connect() as conn:
            n = conn.execute(
                text("SELECT count(*) FROM flow_run WHERE deployment_id = :d"), {"d": dep_id}
            ).scalar()
        eng.dispose()
        with get_client(sync_client=True) as client:
            client.pause_deployment(dep_id)  # (this deletes its scheduled runs)
    assert len(runs) >= 3 and all(r.state.type.value == "SCHEDULED" for r in runs)
    assert n >= 3
