"""Publication off the critical path: step calls' products written in call order on one thread.

A pipeline's plan hands each step call's products to a :class:`PublicationLane` and goes on
with the next steps while they are written (FITS serialisation, fsyncs and database commits
then overlap the next steps' numba kernels, which release the GIL). The lane keeps the
guarantees of publishing in the caller's thread:

* order: batches are published one at a time in the order they were handed over, so a
  product that links to an earlier one (an OGIP response named by a spectrum) finds it, and
  each step call's figures still follow its science products (the publisher's figure thread);
* atomicity: each batch is the publisher's own atomic, recorded batch; the lane adds no
  state of its own on disk or in the database;
* failure: the first failed batch fails the run. Batches handed over after it are not
  written, the next hand-over raises the error in the plan's thread, and so does
  :meth:`PublicationLane.finish`, which waits for every batch first so that no run ends
  while one of its files is being written.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from svomflow.products.catalogue import Product
from svomflow.products.store import ProductRef

__all__ = ["LanePublisher", "PublicationLane"]


class PublicationLane:
    """Run publications one at a time, in hand-over order, on one background thread.

    Parameters
    ----------
    name
        Prefix of the thread's name (shown in tracebacks and profiles).
    """

    def __init__(self, name: str = "svomflow-publish") -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._batches: list[Future[list[ProductRef]]] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def submit(self, publish: Callable[[], Sequence[ProductRef]]) -> None:
        """Hand over one batch: ``publish()`` runs after every batch handed over before it.

        ``publish`` runs in a copy of the caller's context (a Prefect task called there
        belongs to the caller's flow run).

        Raises
        ------
        BaseException
            The error of an earlier batch, if one failed (this batch is then not queued).
        """
        self._raise_failure()
        context = contextvars.copy_context()
        batch = self._pool.submit(context.run, self._run, publish)
        with self._lock:
            self._batches.append(batch)

    def _run(self, publish: Callable[[], Sequence[ProductRef]]) -> list[ProductRef]:
        if self._error is not None:
            return []  # an earlier batch failed: the run fails with its error, write no more
        try:
            return list(publish())
        except BaseException as exc:
            with self._lock:
                self._error = self._error or exc
            raise

    def _raise_failure(self) -> None:
        with self._lock:
            error = self._error
        if error is not None:
            raise error

    def finish(self) -> list[ProductRef]:
        """Wait for every batch handed over; return their references in hand-over order.

        Raises
        ------
        BaseException
            The first failed batch's error, once every batch is finished.
        """
        with self._lock:
            batches, self._batches = self._batches, []
        refs: list[ProductRef] = []
        for batch in batches:
            try:
                refs.extend(batch.result())
            except BaseException as exc:  # raised once all are done (the first one)
                with self._lock:
                    self._error = self._error or exc
        self._raise_failure()
        return refs

    def close(self) -> None:
        """Wait for the batches still queued (errors ignored) and stop the thread."""
        self._pool.shutdown(wait=True)


class LanePublisher:
    """A step runner's publisher that hands each step call's products to a lane.

    Parameters
    ----------
    lane
        Where the publications run.
    publisher
        What publishes a batch (``publish(step, products)``), e.g. a
        :class:`~svomflow.products.catalogue.publish.CataloguePublisher`.
    """

    def __init__(self, lane: PublicationLane, publisher: Any) -> None:
        self.lane = lane
        self.publisher = publisher

    def publish(self, step: Any, products: Sequence[Product]) -> list[ProductRef]:
        """Queue the products' publication; their references come from the lane's ``finish``."""
        batch = list(products)
        self.lane.submit(lambda: self.publisher.publish(step, batch))
        return []
