"""Shared pieces of the command line: user-error handling and common options."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from svomflow.errors import SvomflowError

__all__ = ["ConfigFiles", "SetOverrides", "fail", "user_errors"]

F = TypeVar("F", bound=Callable[..., Any])

ConfigFiles = Annotated[
    list[str] | None,
    typer.Option("--config", "-c", help="Configuration file (YAML); repeat to layer several."),
]
SetOverrides = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override one value: dotted.key=value (repeatable)."),
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
