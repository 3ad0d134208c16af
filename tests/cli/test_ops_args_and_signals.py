"""Arguments are checked before Prefect is contacted; SIGINT/SIGTERM stop a command in 5 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from svomflow.cli.main import app
from typer.testing import CliRunner

DEAD_API = "http://127.0.0.1:9/api"  # nothing listens: reaching it would fail differently


@pytest.fixture
def dead_prefect(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", DEAD_API)
    # a session test server entered earlier would win over the environment
    with temporary_settings(updates={PREFECT_API_URL: DEAD_API}):
        yield


def _one_line_error(res: object, needle: str) -> None:
    out = res.output  # type: ignore[attr-defined]
    assert res.exit_code == 2, out  # type: ignore[attr-defined]
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("svomflow: error:")]
    assert len(errors) == 1, out
    assert needle in errors[0]
    assert "does not answer" not in out


def test_calib_nightly_refuses_a_path_as_instrument_before_anything(
    dead_prefect: None, tmp_path: Path
) -> None:
    res = CliRunner().invoke(
        app,
        [
            "calib",
            "nightly",
            "--night",
            "2026-11-23",
            "--raw",
            str(tmp_path),
            "--instrument",
            "../../..",
        ],
    )
    _one_line_error(res, "--instrument")
    assert not (tmp_path / "calibration").exists()


def test_calib_nightly_refuses_an_unknown_camera(dead_prefect: None, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["calib", "nightly", "--night", "last", "--raw", str(tmp_path), "--instrument", "nope"]
    )
    _one_line_error(res, "no such camera definition")


def test_vhf_missing_file_is_refused_before_prefect(dead_prefect: None, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["vhf", "--events", str(tmp_path / "none.fits")])
    _one_line_error(res, "no such event file")


def test_unreachable_server_is_one_line_with_the_fix(dead_prefect: None) -> None:
    from svomflow.cli._common import flow_server
    from svomflow.errors import ServerUnavailableError

    with pytest.raises(ServerUnavailableError, match=r"does not answer.*svomflow server start"):
        with flow_server(quiet=True):
            pass


def _spawn(args: list[str], home: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, SVOMFLOW_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-c", "from svomflow.cli.main import main; main()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_a_busy_command_within_5_s(sig: int, tmp_path: Path) -> None:
    # a COLIBRI night takes minutes to simulate: still busy when the signal comes
    proc = _spawn(["simulate", "colibri_night", "--out", str(tmp_path / "sim")], tmp_path / "h")
    time.sleep(6)  # imports done, simulating
    assert proc.poll() is None, proc.communicate()
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the command was still running 10 s after the signal")
    assert time.monotonic() - t0 < 5.0
    assert proc.returncode in (130, 128 + sig), err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [["web", "--port", "0"], ["serve-products", "--port", "0"]])
def test_signal_stops_the_web_site(command: list[str], tmp_path: Path) -> None:
    proc = _spawn(command, tmp_path / "h")
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "read-only at http://127.0.0.1:" in line
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 5.0
