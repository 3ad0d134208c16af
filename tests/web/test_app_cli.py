"""``svomflow web user|token``: accounts made on the command line sign in on the site."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session
from svomflow.cli.main import app
from svomflow.products.database import dispose_engines
from svomflow.web.auth import authenticate, users
from svomflow.web.db import engine_for
from typer.testing import CliRunner


def test_user_and_token_commands(tmp_path: Path, svomflow_home: Path) -> None:
    runner = CliRunner()
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery\n")
    res = runner.invoke(
        app,
        [
            "web",
            "user",
            "add",
            "alice",
            "--role",
            "svom_user",
            "--role",
            "coordinator",
            "--password-file",
            str(pw),
        ],
    )
    assert res.exit_code == 0, res.output
    # asked on the terminal when no file is given (twice: confirmation)
    res = runner.invoke(
        app,
        ["web", "user", "add", "bob", "--role", "colibri_user"],
        input="another long password\nanother long password\n",
    )
    assert res.exit_code == 0, res.output
    assert "another long password" not in res.output  # never echoed
    bad = runner.invoke(
        app, ["web", "user", "add", "eve", "--role", "wizard", "--password-file", str(pw)]
    )
    assert bad.exit_code == 2 and "not a valid Role" in bad.output and "Traceback" not in bad.output
    short = tmp_path / "short"
    short.write_text("short\n")
    weak = runner.invoke(
        app, ["web", "user", "add", "eve", "--role", "admin", "--password-file", str(short)]
    )
    assert weak.exit_code == 2 and "at least 10 characters" in weak.output
    again = runner.invoke(
        app, ["web", "user", "add", "alice", "--role", "admin", "--password-file", str(pw)]
    )
    assert again.exit_code == 2 and "already exists" in again.output
    with Session(engine_for(None)) as s:
        assert {u.name: u.roles for u in users(s)} == {
            "alice": "coordinator,svom_user",
            "bob": "colibri_user",
        }
        assert authenticate(s, "alice", "correct horse battery") is not None
        assert authenticate(s, "alice", "correct horse batterY") is None
        assert authenticate(s, "bob", "another long password") is not None
        stored = next(u for u in users(s) if u.name == "alice").password_hash
        assert stored.startswith("$argon2id$") and "correct horse" not in stored
    token = runner.invoke(app, ["web", "token", "create", "alice", "--name", "telescope"])
    assert token.exit_code == 0
    secret = token.output.strip().splitlines()[-1]
    assert secret.startswith("svf_")
    listed = runner.invoke(app, ["web", "token", "list"]).output
    assert "telescope" in listed and secret not in listed
    assert runner.invoke(app, ["web", "token", "revoke", "1"]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["web", "token", "list"]).output
    assert runner.invoke(app, ["web", "user", "remove", "bob"]).exit_code == 0
    assert "bob" not in runner.invoke(app, ["web", "user", "list"]).output
    dispose_engines()


def test_demo_makes_the_first_admin_once_with_a_generated_password(
    tmp_path: Path, svomflow_home: Path
) -> None:
    import stat

    from rich.console import Console
    from svomflow.cli.demo_cmd import _print_site

    console = Console(record=True, width=200)
    _print_site(console, "http://127.0.0.1:4300")
    secret = svomflow_home / "web" / "admin-password"
    password = secret.read_text().strip()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(password) >= 12
    out = console.export_text()
    assert "http://127.0.0.1:4300" in out and password in out
    with Session(engine_for(None)) as s:
        admin = authenticate(s, "admin", password)
        assert admin is not None and admin.roles == "admin"
    # a second demo neither makes another admin nor prints the password again
    console = Console(record=True, width=200)
    _print_site(console, "http://127.0.0.1:4300")
    out = console.export_text()
    assert password not in out and str(secret) in out
    with Session(engine_for(None)) as s:
        assert [u.name for u in users(s)] == ["admin"]
    dispose_engines()
