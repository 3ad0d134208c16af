"""``svomflow web``: serve the instrument-centre site; manage its users and API tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from svomflow.cli._common import fail, user_errors

__all__ = ["app"]

app = typer.Typer(
    help="The instrument-centre web site: `svomflow web` serves it on 127.0.0.1:4300.",
    invoke_without_command=True,
)
user_app = typer.Typer(help="Users of the site (names, roles, passwords).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens of machine clients.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")

RoleOption = Annotated[
    list[str],
    typer.Option(
        "--role",
        "-r",
        help="svom_user, colibri_user, coordinator or admin (repeat for several).",
    ),
]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="Read the password from the first line of this file (else it is asked).",
        exists=True,
        dir_okay=False,
    ),
]


@app.callback()
@user_errors
def web(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free one).")] = 4300,
) -> None:
    """Serve the site in the foreground (Ctrl-C stops), unless a subcommand is given."""
    if ctx.invoked_subcommand is not None:
        return
    _serve(host, port)


def _serve(host: str, port: int) -> None:
    from svomflow.cli._common import where_lines
    from svomflow.web.server import bind_socket, serve
    from svomflow.web.settings import WebSettings

    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    settings = WebSettings()
    url = f"http://{host}:{sock.getsockname()[1]}"
    for line in where_lines():
        typer.echo(f"svomflow: {line}", err=True)
    typer.echo(
        f"instrument-centre site at {url} (products of {settings.products_root} read-only "
        f"at {url}/files; Ctrl-C stops)",
        err=False,
    )
    serve(sock, settings)


@app.command("start")
@user_errors
def start(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 4300,
) -> None:
    """Start the site detached (if this home's is not running) and leave it running."""
    from svomflow.web.server import ensure_web_server

    info = ensure_web_server(port=port, idle_exit_s=0)
    state = "started now" if info.started_here else "already running"
    typer.echo(f"instrument-centre site {state}: {info.url}")


@app.command("stop")
@user_errors
def stop() -> None:
    """Stop the site started detached for this home."""
    from svomflow.web.server import stop_web_server

    typer.echo("site stopped" if stop_web_server() else "no site started by svomflow is running")


def _session():  # type: ignore[no-untyped-def]
    from sqlmodel import Session
    from svomflow.web.db import engine_for

    return Session(engine_for(None))


def _password(password_file: Path | None, confirm: bool = True) -> str:
    if password_file is not None:
        lines = password_file.read_text().splitlines()
        if not lines or not lines[0]:
            fail(f"{password_file} is empty")
        return lines[0]
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=confirm))


@user_app.command("add")
@user_errors
def user_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: RoleOption,
    password_file: PasswordFile = None,
) -> None:
    """Add a user with roles; the password is asked (or read from --password-file)."""
    from svomflow.web.auth import add_user

    password = _password(password_file)
    with _session() as s:
        user = add_user(s, name, password, role)
        typer.echo(f"user {user.name} added ({user.roles})")


@user_app.command("list")
@user_errors
def user_list() -> None:
    """List the users and their roles."""
    from svomflow.web.auth import users

    with _session() as s:
        for u in users(s):
            typer.echo(f"{u.name}\t{u.roles}\t{'active' if u.active else 'disabled'}")


@user_app.command("passwd")
@user_errors
def user_passwd(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_file: PasswordFile = None,
) -> None:
    """Change a user's password (their open sessions end)."""
    from svomflow.web.auth import set_password

    password = _password(password_file)
    with _session() as s:
        set_password(s, name, password)
    typer.echo(f"password of {name} changed")


@user_app.command("roles")
@user_errors
def user_roles(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: RoleOption,
) -> None:
    """Replace a user's roles."""
    from svomflow.web.auth import set_roles

    with _session() as s:
        user = set_roles(s, name, role)
        typer.echo(f"{user.name}: {user.roles}")


@user_app.command("remove")
@user_errors
def user_remove(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Remove a user and their API tokens."""
    from svomflow.web.auth import remove_user

    with _session() as s:
        remove_user(s, name)
    typer.echo(f"user {name} removed")


@token_app.command("create")
@user_errors
def token_create(
    user: Annotated[str, typer.Argument(help="The user the client acts as.")],
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "client",
) -> None:
    """Make an API token; it is printed once (only its hash is stored)."""
    from svomflow.web.auth import create_token

    with _session() as s:
        token, secret = create_token(s, user, name)
        typer.echo(f"token {token.id} for {user} ({name}); send it as 'Authorization: Bearer':")
    typer.echo(secret)


@token_app.command("list")
@user_errors
def token_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's.")] = None,
) -> None:
    """List API tokens (never their secrets)."""
    from svomflow.web.auth import tokens

    with _session() as s:
        for t, owner in tokens(s, user):
            state = "revoked" if t.revoked else "active"
            typer.echo(f"{t.id}\t{owner}\t{t.name}\t{state}\t{t.created:%Y-%m-%d %H:%M} UTC")


@token_app.command("revoke")
@user_errors
def token_revoke(token_id: Annotated[int, typer.Argument(help="Token id (token list).")]) -> None:
    """Revoke an API token."""
    from svomflow.web.auth import revoke_token

    with _session() as s:
        revoke_token(s, token_id)
    typer.echo(f"token {token_id} revoked")
