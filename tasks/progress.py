"""Progress of the work in this process, told to whoever listens (a command's progress bar).

A flow or a pipeline's plan calls :func:`report` as its work advances: ``done`` of
``total`` items when it counts them, or one ``item`` (an input file) that ended; the
command line listens with :func:`listening` and moves its bar. Nothing listens by default
(a deployment run reports to no one), and a listener's error never stops the run (it is
dropped). It lives in the tasks layer so that steps' plans and flows share it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["ProgressEvent", "listening", "report"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """Where a run is: what it is doing, ``done`` of ``total`` items, or which item ended.

    Attributes
    ----------
    flow : str
        The flow (or pipeline) reporting.
    doing : str
        What it is doing now, or how the item ended (``done``, ``failed``, ``skipped``).
    done, total : int or None
        Items done and items in all, when the reporter counts them.
    item : str or None
        The input (a file path) the event is about; a listener counts each item once.
    """

    flow: str
    doing: str
    done: int | None = None
    total: int | None = None
    item: str | None = None


_LISTENERS: list[Callable[[ProgressEvent], None]] = []
_LOCK = threading.Lock()


@contextmanager
def listening(callback: Callable[[ProgressEvent], None]) -> Iterator[None]:
    """Call ``callback`` with every progress event reported inside the block."""
    with _LOCK:
        _LISTENERS.append(callback)
    try:
        yield
    finally:
        with _LOCK:
            _LISTENERS.remove(callback)


def report(
    flow: str,
    doing: str,
    *,
    done: int | None = None,
    total: int | None = None,
    item: str | None = None,
) -> None:
    """Tell the listeners where ``flow`` is (see :class:`ProgressEvent`)."""
    with _LOCK:
        listeners = list(_LISTENERS)
    event = ProgressEvent(flow, doing, done, total, item)
    for cb in listeners:
        try:
            cb(event)
        except Exception:  # a display must never stop the processing
            log.debug("progress listener failed", exc_info=True)
