"""A site started detached by a flow command exits by itself once idle (no pile-up per home)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from svomflow.web.server import detached_idle_exit_s


def test_idle_exit_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVOMFLOW_WEB_IDLE_EXIT_S", "90")
    assert detached_idle_exit_s() == 90.0
    monkeypatch.setenv("SVOMFLOW_WEB_IDLE_EXIT_S", "nonsense")
    assert detached_idle_exit_s() == 21600.0
    monkeypatch.delenv("SVOMFLOW_WEB_IDLE_EXIT_S")
    assert detached_idle_exit_s() == 21600.0


def test_site_exits_after_its_idle_time_but_not_while_used(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "SVOMFLOW_HOME": str(tmp_path / "home"),
        "SVOMFLOW_PRODUCTS": str(tmp_path / "products"),
    }
    (tmp_path / "products").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "svomflow.web.server", "--port", str(port), "--idle-exit-s", "3"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/login"
        for _ in range(600):  # wait until it serves (a loaded machine starts it slowly)
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    pytest.fail("the site exited before it served")
                time.sleep(0.2)
        else:
            pytest.fail("the site never served")
        # requests every second keep it alive past its idle time
        for _ in range(6):
            assert httpx.get(url, timeout=5).status_code == 200
            time.sleep(1.0)
        assert proc.poll() is None
        proc.wait(timeout=30)  # then idle: it exits by itself
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
