"""The README's newcomer path, typed in order in a fresh folder, works with no other option.

The commands are read from the README's "First steps after the demo" block, so the README
stays true. The whole path (demo, each flow on simulated data, status, products list) is
slow; the default run checks the fast part (where, status, products list on a fresh home).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def first_steps() -> list[str]:
    """Return the README's first-steps commands (continuation lines joined, comments cut)."""
    text = (REPO / "README.md").read_text()
    block = text.split("### First steps after the demo", 1)[1].split("```bash", 1)[1]
    block = block.split("```", 1)[0].replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("source "):
            commands.append(re.sub(r"\s+", " ", line))
    return commands


def _run(
    cmd: str, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _newcomer_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SVOMFLOW_", "PREFECT_"))}
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '')}",
        HOME=str(tmp_path / "user"),  # never the real ~/.svomflow
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return env


def test_readme_first_steps_are_commands_of_ours() -> None:
    steps = first_steps()
    assert [s.split()[1] for s in steps] == [
        "simulate",
        "vhf",
        "xband",
        "simulate",
        "mxt",
        "status",
        "products",
        "status",
    ]
    assert all(s.startswith("svomflow ") for s in steps)
    assert not any("--caldb" in s or "--calib" in s for s in steps)


def test_fresh_folder_where_status_and_products_list(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".svomflow").mkdir(parents=True)  # what `make demo` leaves
    env = _newcomer_env(tmp_path)
    for cmd in [s for s in first_steps() if s.split()[1] in ("status", "products")]:
        res = _run(cmd, project, env, 120)
        assert res.returncode == 0, (cmd, res.stderr)
        assert "Traceback" not in res.stderr
    where = _run("svomflow status --where", project, env, 60).stdout
    assert f"home      {(project / '.svomflow').resolve()}  (nearest .svomflow)" in where


@pytest.mark.slow
@pytest.mark.integration
def test_newcomer_path_end_to_end(prefect_server: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env = _newcomer_env(tmp_path)
    env["PREFECT_API_URL"] = prefect_server  # the session's server stands for the local one
    demo = _run("svomflow demo", project, env | {"SVOMFLOW_HOME": str(project / ".svomflow")}, 900)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "export SVOMFLOW_HOME=" in demo.stdout
    for cmd in first_steps():
        res = _run(cmd, project, env, 900)
        assert res.returncode == 0, (cmd, res.stderr[-3000:])
        assert "Traceback" not in res.stderr, cmd
        assert "Starting temporary server" not in res.stdout + res.stderr, cmd
    listing = _run("svomflow products list --json", project, env, 120)
    types = {(p["type_code"], p["obs_id"]) for p in json.loads(listing.stdout)}
    assert ("QSUM", "bright_long_grb_1") in types  # VHF on the newcomer's own simulation
    assert any(t == "SRCLIST" for t, _ in types)  # MXT
    assert any(t.startswith("SP") or t == "FLUENCE" for t, _ in types)  # X-band
    status = _run("svomflow status --json", project, env, 120)
    states = {r["key"]: r["state"] for r in json.loads(status.stdout)["status"]}
    assert states and all(s == "done" for s in states.values()), states
