"""``svomflow gp1 watch --follow-positions``: a bus that does not answer is one line, exit 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from svomflow.cli.main import app
from typer.testing import CliRunner


def test_follow_positions_without_a_bus_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "home"))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "in").mkdir()
    res = CliRunner().invoke(
        app,
        [
            "gp1", "watch", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
            "--until-idle", "1", "--no-prefect", "--follow-positions", f"nats://127.0.0.1:{port}",
        ],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "cannot follow positions" in res.output
    assert "Traceback" not in res.output
