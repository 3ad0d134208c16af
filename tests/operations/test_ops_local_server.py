"""The local Prefect server: its UI talks to its own API whatever the port."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from svomflow.operations import local_server


def test_ui_api_url_follows_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class FakePopen:
        def __init__(self, cmd: list[str], **kw: Any) -> None:
            seen["cmd"], seen["env"] = cmd, kw["env"]

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    local_server.launch_server("127.0.0.1", 4317, {"PATH": "/bin"}, None)
    assert seen["cmd"][-2:] == ["--port", "4317"]
    # without it the UI of a server on 4317 asks the API on 4200 (another server's runs)
    assert seen["env"]["PREFECT_UI_API_URL"] == "http://127.0.0.1:4317/api"


def test_explicit_ui_api_url_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class FakePopen:
        def __init__(self, cmd: list[str], **kw: Any) -> None:
            seen["env"] = kw["env"]

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    env = {"PREFECT_UI_API_URL": "https://prefect.example.org/api"}
    local_server.launch_server("0.0.0.0", 4200, env, None)
    assert seen["env"]["PREFECT_UI_API_URL"] == "https://prefect.example.org/api"
