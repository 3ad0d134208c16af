"""Shared pieces of the command line: user-error handling and common options."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from svomflow.errors import SvomflowError

__all__ = [
    "ConfigFiles",
    "SetOverrides",
    "fail",
    "flow_server",
    "products_url_for_links",
    "redact_url",
    "user_errors",
    "user_errors_printed_once",
    "where_lines",
]

F = TypeVar("F", bound=Callable[..., Any])

ConfigFiles = Annotated[
    list[str] | None,
    typer.Option("--config", "-c", help="Configuration file (YAML); repeat to layer several."),
]
SetOverrides = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override one value: dotted.key=value (repeatable)."),
]
CaldbDir = Annotated[
    str | None,
    typer.Option("--caldb", help="CALDB directory (default $SVOMFLOW_CALDB)."),
]
ProductsRoot = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Products root (default under $SVOMFLOW_HOME)."),
]


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error to stderr and exit with ``code``."""
    typer.echo(f"svomflow: error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(func: F) -> F:
    """Turn user errors (SvomflowError, missing files) into one line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SvomflowError as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"file not found: {exc.filename or exc}")
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _error_types() -> set[str]:
    """Names of every user-error class (:class:`SvomflowError` and its subclasses)."""
    seen: set[str] = set()
    todo: list[type[BaseException]] = [SvomflowError]
    while todo:
        cls = todo.pop()
        seen.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return seen


class _UserErrorOnce(logging.Filter):
    """Drop console records that repeat a user error this command prints itself.

    Prefect logs a failed run's exception with its traceback (task, then flow) and again in
    the final states; for a user error (a missing calibration file, a bad input) the command
    prints one line instead. Only the console is filtered: the records still reach the run's
    logs in the Prefect UI through Prefect's own API handler.
    """

    def __init__(self) -> None:
        super().__init__()
        self.names = _error_types()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, SvomflowError):
            return False
        message = record.getMessage()
        return not any(f"{n}:" in message or f"{n}(" in message for n in self.names)


@contextmanager
def user_errors_printed_once() -> Iterator[None]:
    """Print a user error once: filter the console handlers (root logger's) while a flow runs."""
    handlers = list(logging.getLogger().handlers)
    quiet = _UserErrorOnce()
    for h in handlers:
        h.addFilter(quiet)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(quiet)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to print)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def where_lines(api_url: str | None = None) -> list[str]:
    """Return what this command uses: home (and why), products database, CALDB, Prefect API."""
    import os

    from svomflow.calibration.caldb.redact import redact_url as redact_caldb_url
    from svomflow.paths import home_with_reason

    home, why = home_with_reason()
    db = os.environ.get("SVOMFLOW_DATABASE_URL") or f"sqlite:///{home / 'products.db'}"
    caldb = os.environ.get("SVOMFLOW_CALDB") or str(home / "caldb")
    products = os.environ.get("SVOMFLOW_PRODUCTS") or str(home / "products")
    lines = [
        f"home      {home}  ({why})",
        f"database  {redact_url(db)}",
        f"products  {products}",
        f"caldb     {redact_caldb_url(caldb)}",
    ]
    if api_url:
        lines.append(f"prefect   {api_url}")
    return lines


@contextmanager
def flow_server(quiet: bool = False) -> Iterator[str]:
    """Run this command's flows on the one long-lived Prefect server; say which one.

    The server is the one ``PREFECT_API_URL`` names (it must answer), else the
    svomflow-managed local server (started detached on first use, then reused). No command
    starts a throw-away server of its own. One line on stderr names the home, the database
    and the server unless ``quiet``.

    Yields
    ------
    str
        The Prefect API URL the flows of this command report to.
    """
    import os

    from prefect.settings import PREFECT_API_URL, temporary_settings
    from svomflow.errors import ServerUnavailableError
    from svomflow.operations.prefect_server import ensure_server, is_home_server, server_healthy

    configured = PREFECT_API_URL.value()
    if configured:
        if not server_healthy(configured):
            raise ServerUnavailableError(
                f"the Prefect server at {configured} (PREFECT_API_URL) does not answer: "
                "start it, or unset PREFECT_API_URL to use svomflow's own (svomflow server start)"
            )
        url, origin = configured, "PREFECT_API_URL"
        # an operator's server: link to the web site only if one runs for this home, or if
        # it is this home's local server (where svomflow also serves the site)
        start_products = is_home_server(url)
    else:
        start_products = True
        if not quiet:
            typer.echo("svomflow: connecting to the local Prefect server...", err=True)
        info = ensure_server()
        url = info.api_url
        origin = "svomflow server, started now" if info.started_here else "svomflow server"
    products_url = products_url_for_links(quiet, start=start_products)
    if not quiet:
        home_line = where_lines()[0].split(None, 1)[1]
        typer.echo(f"svomflow: home {home_line}; Prefect {url} ({origin})", err=True)
    # child processes (Dask, subprocess runs) follow; restored when the command ends
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "SVOMFLOW_PRODUCTS_URL")}
    os.environ["PREFECT_API_URL"] = url
    if products_url:
        os.environ["SVOMFLOW_PRODUCTS_URL"] = products_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def products_url_for_links(quiet: bool, start: bool = True) -> str | None:
    """Return the address the summary artifacts link products to.

    ``$SVOMFLOW_PRODUCTS_URL`` when set (a server of the operator's choice), else the
    ``/files`` of this home's instrument-centre site (``svomflow web``): reused when it
    runs, started detached on first use when ``start``. A failure only costs the links (the
    products are written all the same): it is said once.
    """
    import os

    from svomflow.errors import ServerUnavailableError
    from svomflow.web.server import ensure_web_server, running_web_server

    if os.environ.get("SVOMFLOW_PRODUCTS_URL"):
        return os.environ["SVOMFLOW_PRODUCTS_URL"]
    if not start:
        running = running_web_server()
        return f"{running}/files" if running else None
    try:
        return ensure_web_server().files_url
    except ServerUnavailableError as exc:
        if not quiet:
            typer.echo(f"svomflow: warning: products will not be linked in the UI: {exc}", err=True)
        return None
