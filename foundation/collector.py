"""How a svomflow command treats Python's cyclic garbage collector: not during imports, not at exit.

Importing a pipeline creates about 300,000 objects that live until the process ends
(modules, classes, functions, numba and astropy tables). The cyclic collector scans them
again in every full collection: while they are being created (a growing heap, several
full collections), during the run, and once more when the interpreter shuts down. In a
fresh ``svomflow vhf --no-prefect`` process that was more than a second of CPU of about
six (docs/bench.md, bench_cold_start), for no garbage found.

The policy belongs to the process, so the command line's entry point adopts it
(:func:`adopt`): everything is frozen at exit (:func:`gc.freeze` moves all objects to the
collector's permanent generation, which its collections skip), so that the shutdown's
collection scans nothing. :func:`imports_frozen` then pauses the collector while a block
imports and freezes what it made. In a process that has not adopted the policy (a test
session or a notebook that calls a command's function) it does nothing: the host's heap
is the host's. Garbage made after a freeze is collected as usual; an object frozen while
alive is never collected by the cyclic collector (reference counting still frees it),
which for long-lived module state costs nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
from collections.abc import Iterator

__all__ = ["adopt", "imports_frozen"]

_adopted = False


def adopt() -> None:
    """Adopt the policy for this process: freeze every object at exit, let imports freeze theirs.

    Call it first thing in the entry point: the exit function it registers runs after those
    registered later (they run first), which may still free objects.
    """
    global _adopted
    if not _adopted:
        _adopted = True
        atexit.register(gc.freeze)


@contextlib.contextmanager
def imports_frozen() -> Iterator[None]:
    """Pause the cyclic collector while the block runs, then freeze every object allocated so far.

    For a block that imports modules (or builds other state that lives until the end of
    the process); the collector is enabled again afterwards if it was enabled before. Does
    nothing unless the process adopted the policy (:func:`adopt`).
    """
    if not _adopted:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
