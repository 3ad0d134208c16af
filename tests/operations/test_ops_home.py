"""One home rule for every command: $SVOMFLOW_HOME, else the nearest .svomflow, else ~/.svomflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from svomflow.cli.main import app
from svomflow.paths import data_home, home_with_reason
from typer.testing import CliRunner


def test_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "h"))
    (tmp_path / "project" / ".svomflow").mkdir(parents=True)
    home, why = home_with_reason(tmp_path / "project")
    assert home == (tmp_path / "h").resolve()
    assert why == "$SVOMFLOW_HOME"


def test_nearest_project_home_found_from_a_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SVOMFLOW_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    project = tmp_path / "project"
    (project / ".svomflow").mkdir(parents=True)
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    home, why = home_with_reason(deep)
    assert home == (project / ".svomflow").resolve()
    assert why == "nearest .svomflow"
    monkeypatch.chdir(deep)
    assert data_home() == (project / ".svomflow").resolve()


def test_default_is_the_user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SVOMFLOW_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    (tmp_path / "user" / ".svomflow").mkdir(parents=True)  # not a "project" home
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home, why = home_with_reason(elsewhere)
    assert home == (tmp_path / "user" / ".svomflow").resolve()
    assert why == "default ~/.svomflow"


def test_status_where_names_home_database_and_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "h"))
    from prefect.settings import PREFECT_API_URL, temporary_settings

    dead = "http://127.0.0.1:9/api"  # nothing listens there
    monkeypatch.setenv("PREFECT_API_URL", dead)
    with temporary_settings(updates={PREFECT_API_URL: dead}):  # over any session server
        res = CliRunner().invoke(app, ["status", "--where"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[1] == str((tmp_path / "h").resolve())
    assert f"sqlite:///{(tmp_path / 'h').resolve()}/products.db" in lines[1]
    assert "http://127.0.0.1:9/api (not running" in res.output


def test_listing_says_which_database_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "h"))
    res = CliRunner().invoke(app, ["products", "list"])
    assert res.exit_code == 0, res.output
    assert f"{(tmp_path / 'h').resolve()}/products.db" in res.stderr
