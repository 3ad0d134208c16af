"""``svomflow server start|stop|status``: the local Prefect server (SQLite) and the web site."""

from __future__ import annotations

from typing import Annotated

import typer
from svomflow.cli._common import user_errors

__all__ = ["app", "serve_products"]

app = typer.Typer(
    help="Start, stop or check the local Prefect server (UI and API).", no_args_is_help=True
)


@app.command("start")
@user_errors
def start(
    port: Annotated[
        int,
        typer.Option(
            "--port", help="Port on 127.0.0.1 (a free one if taken; this home's server is reused)."
        ),
    ] = 4200,
) -> None:
    """Start this home's Prefect server and the web site (if not running); leave them running."""
    from svomflow.operations.prefect_server import ensure_server

    info = ensure_server(port=port)
    state = "started now" if info.started_here else "already running"
    typer.echo(f"Prefect server {state}: UI {info.ui_url}  API {info.api_url}")
    if info.log_path:
        typer.echo(f"log: {info.log_path}")
    from svomflow.web.server import ensure_web_server

    site = ensure_web_server(idle_exit_s=0)
    typer.echo(f"instrument-centre site (and the products of {site.root}): {site.url}")
    typer.echo("stop both with: svomflow server stop")


@app.command("stop")
@user_errors
def stop() -> None:
    """Stop the Prefect server that svomflow started (from its pid file)."""
    from svomflow.operations.prefect_server import stop_server
    from svomflow.web.server import stop_web_server

    if stop_web_server():
        typer.echo("web site stopped")
    if stop_server():
        typer.echo("Prefect server stopped")
    else:
        typer.echo("no Prefect server started by svomflow is running")


@app.command("status")
@user_errors
def status() -> None:
    """Say which Prefect server commands use and whether it answers.

    ``PREFECT_API_URL`` when set, else this home's local server (its port is recorded
    under ``$SVOMFLOW_HOME/prefect``).
    """
    import os

    from svomflow.operations.prefect_server import home_server_url, server_healthy

    configured = os.environ.get("PREFECT_API_URL")
    api = configured or home_server_url()
    if api and server_healthy(api):
        origin = "PREFECT_API_URL" if configured else "this home's server"
        typer.echo(f"running: {api.removesuffix('/api')} ({origin})")
    else:
        typer.echo(f"not running: {api or 'no server of this home'}; svomflow server start")
        raise typer.Exit(1)


@user_errors
def serve_products(
    port: Annotated[
        int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free one).")
    ] = 4300,
) -> None:
    """Serve the products read-only over HTTP: an alias of ``svomflow web`` (one server)."""
    from svomflow.cli.web_cmd import _serve

    _serve("127.0.0.1", port)
