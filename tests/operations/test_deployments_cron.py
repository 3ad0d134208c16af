"""A flow whose registry entry carries ``cron`` is deployed on that schedule (UTC)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from svomflow.flows import registry
from svomflow.operations.deployments import DeploymentSettings, build_deployments, prefect_yaml


@pytest.fixture
def cron_spec(monkeypatch: pytest.MonkeyPatch) -> registry.FlowSpec:
    """The alert flow registered a second time under another alias, every 5 minutes."""
    base = registry.REGISTRY["alert_ingest"]
    spec = dataclasses.replace(
        base, name="alert_ingest_cron", alias="alertcron", cron="*/5 * * * *"
    )
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    return spec


def test_cron_deployment_is_built_with_its_schedule(cron_spec: registry.FlowSpec) -> None:
    settings = DeploymentSettings(flows=[cron_spec.alias, "nightly"], timezone="Europe/Paris")
    deployments, missing = build_deployments(settings)
    assert not missing
    by_name = {d.name: d for d in deployments}
    (sched,) = by_name["alertcron"].schedules
    assert sched.schedule.cron == "*/5 * * * *"
    assert sched.schedule.timezone == "UTC"  # not the nightly's local time zone
    assert sched.active
    # the nightly keeps its own schedule and gains none
    (nightly,) = by_name["nightly"].schedules
    assert nightly.schedule.cron == "0 3 * * *" and nightly.schedule.timezone == "Europe/Paris"
    # a flow with neither has no schedule
    (plain,), _ = build_deployments(DeploymentSettings(flows=["alert"]))
    assert plain.schedules == []


def test_cron_schedule_written_to_prefect_yaml(cron_spec: registry.FlowSpec) -> None:
    text = prefect_yaml(
        DeploymentSettings(flows=[cron_spec.alias, "alert"]),
        work_pool="pool",
        working_directory="/srv/svomflow",
    )
    entries = {d["name"]: d for d in yaml.safe_load(text)["deployments"]}
    assert entries["alertcron"]["schedules"] == [
        {"cron": "*/5 * * * *", "timezone": "UTC", "active": True}
    ]
    assert "schedules" not in entries["alert"]


def test_bad_cron_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    base = registry.REGISTRY["alert_ingest"]
    spec = dataclasses.replace(base, name="alert_bad_cron", alias="badcron", cron="every day")
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    with pytest.raises(ValueError, match="cron"):
        build_deployments(DeploymentSettings(flows=["badcron"]))
