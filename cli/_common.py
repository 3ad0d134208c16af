"""Shared pieces of the command line: user-error handling and common options."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from svomflow.errors import SvomflowError

__all__ = ["ConfigFiles", "SetOverrides", "fail", "user_errors", "user_errors_printed_once"]

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
