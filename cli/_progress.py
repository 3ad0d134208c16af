"""Progress bars of the long commands: counts, elapsed time and ETA (rich), on stderr.

:func:`progress_bar` is the one look of every bar; :func:`flow_progress` moves one with the
progress a flow reports in this process (:mod:`svomflow.tasks.progress`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["flow_progress", "progress_bar"]


def progress_bar(*, transient: bool = False, disable: bool = False) -> Any:
    """Return a rich ``Progress`` on stderr: description, bar, done/total, elapsed, ETA.

    ``disable`` hides it (machine-readable output such as ``--json``).
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
        disable=disable,
    )


@contextmanager
def flow_progress(label: str, *, quiet: bool = False) -> Iterator[None]:
    """Show a bar moved by the progress the flows inside the block report (none if quiet)."""
    from svomflow.tasks.progress import ProgressEvent, listening

    if quiet:
        yield
        return
    with progress_bar() as bar:
        task = bar.add_task(label, total=None)

        def move(event: ProgressEvent) -> None:
            if event.done is None:  # an item event: counted by the commands that list items
                return
            bar.update(
                task, completed=event.done, total=event.total, description=f"{label}: {event.doing}"
            )

        with listening(move):
            yield
