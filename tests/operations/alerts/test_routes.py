"""Listener settings and the mapping of alert fields to flow parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from svomflow.errors import ConfigError
from svomflow.operations.alerts.listener import Route, flow_parameters, load_listener_settings
from svomflow.products.alert_messages import parse_alert


def test_default_route_feeds_alert_ingest(make_voevent) -> None:
    text = make_voevent("sb26112380")
    alert = parse_alert(text)
    params = flow_parameters(
        Route(subject="svom.alert.eclairs", instrument="eclairs"), alert, text, "svom.alert.eclairs"
    )
    assert params["burst_id"] == "sb26112380" and params["instrument"] == "eclairs"
    assert params["payload"] == text and params["subject"] == "svom.alert.eclairs"
    assert params["alert"]["trigger_time"] == "2026-11-23T03:14:15.250000Z"
    # the flow's own parameter model accepts exactly these
    from svomflow.flows.alert_ingest import alert_ingest

    alert_ingest.validate_parameters(params)


def test_custom_mapping_and_fixed_parameters(make_json_alert) -> None:
    alert = parse_alert(make_json_alert("sb26112381"))
    route = Route(
        subject="svom.alert.grm",
        instrument="grm",
        flow="vhf",
        parameter_map={"obs_id": "trigger_id", "t0_utc": "trigger_time"},
        parameters={"event_files": ["/data/grm/sb26112381.fits"]},
    )
    params = flow_parameters(route, alert, "{}", "svom.alert.grm")
    assert params == {
        "obs_id": "sb26112381",
        "t0_utc": "2026-11-23T04:00:00+00:00",
        "event_files": ["/data/grm/sb26112381.fits"],
    }
    bad = route.model_copy(update={"parameter_map": {"obs_id": "colour"}})
    with pytest.raises(ConfigError, match="unknown alert field 'colour'"):
        flow_parameters(bad, alert, "{}", "svom.alert.grm")


def test_settings_file_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "listen.yaml"
    f.write_text(
        "servers: [nats://10.0.0.1:4222]\nmode: direct\nroutes:\n"
        "  - {subject: svom.alert.mxt, instrument: mxt}\n"
    )
    s = load_listener_settings(f, stream="OTHER")
    assert s.servers == ["nats://10.0.0.1:4222"] and s.mode == "direct" and s.stream == "OTHER"
    assert [r.subject for r in s.routes] == ["svom.alert.mxt"] and s.routes[0].flow == "alert"
    f.write_text("mode: sometimes\n")
    with pytest.raises(ConfigError, match="mode"):
        load_listener_settings(f)
