"""A directory watcher with a ledger: nothing lost, nothing processed twice across restarts.

The mechanism shared by the GP1 online mode (:mod:`svomflow.operations.gp1_watch`) and the
housekeeping ingester (:mod:`svomflow.operations.hk_watch`):

* a real file-system watcher (watchdog's ``Observer``; ``PollingObserver`` when the native
  one cannot start or polling is asked for) signals new files; a directory scan at start and
  every ``rescan_seconds`` catches what the events missed (and files that arrived while the
  watcher was stopped);
* a file is considered once its size has not changed for ``settle_seconds``; the subclass's
  :meth:`DirectoryWatcher.dispatch` then checks it and routes it to a named queue;
* the :class:`Ledger` (SQLite) records every file by path, size, modification time and
  SHA-256; a file is claimed atomically before processing, so none is processed twice, and
  claims left ``running`` by a killed watcher are processed again at restart, so none is
  lost;
* each queue has its own worker thread: queues run side by side, each in arrival order.
  A processing error is recorded in the ledger as ``failed`` with its reason; the watcher
  goes on.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as _dt
import fnmatch
import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from svomflow.errors import SvomflowError

__all__ = ["DirectoryWatcher", "FileState", "Ledger", "sha256_file"]

log = logging.getLogger("svomflow.watch")


def sha256_file(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Ledger:
    """Persistent record of the files seen by a watcher (SQLite, one row per file version)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as c:
            c.execute(
                """CREATE TABLE IF NOT EXISTS files (
                    key TEXT PRIMARY KEY, path TEXT, size INTEGER, mtime_ns INTEGER,
                    sha256 TEXT, pipeline TEXT, status TEXT, reason TEXT,
                    claimed TEXT, finished TEXT)"""
            )

    def _connect(self) -> sqlite3.Connection:
        c = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        return c

    @staticmethod
    def key(path: Path, size: int, mtime_ns: int, sha256: str) -> str:
        """Return the identity of one version of a file."""
        return hashlib.sha256(f"{path.resolve()}|{size}|{mtime_ns}|{sha256}".encode()).hexdigest()

    def claim(self, path: Path, pipeline: str) -> str | None:
        """Claim a file for processing; return its key, or None if already claimed/done."""
        st = path.stat()
        digest = sha256_file(path)
        k = self.key(path, st.st_size, st.st_mtime_ns, digest)
        now = _dt.datetime.now(_dt.UTC).isoformat()
        with self._lock, self._connect() as c:
            try:
                c.execute(
                    "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (k, str(path.resolve()), st.st_size, st.st_mtime_ns, digest, pipeline,
                     "running", None, now, None),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                return None
        return k

    def finish(self, key: str, status: str, reason: str | None = None) -> None:
        """Record the outcome (``done``, ``failed`` or ``skipped``) of a claimed file."""
        now = _dt.datetime.now(_dt.UTC).isoformat()
        with self._lock, self._connect() as c:
            c.execute(
                "UPDATE files SET status=?, reason=?, finished=? WHERE key=?",
                (status, reason, now, key),
            )

    def record(self, path: Path, status: str, reason: str, pipeline: str = "") -> bool:
        """Record a file that will not be processed (no route, unreadable); False if known."""
        k = self.claim(path, pipeline)
        if k is None:
            return False
        self.finish(k, status, reason)
        return True

    def known(self, path: Path) -> bool:
        """Return whether this exact version of ``path`` (size, mtime) is in the ledger."""
        st = path.stat()
        with self._lock, self._connect() as c:
            row = c.execute(
                "SELECT 1 FROM files WHERE path=? AND size=? AND mtime_ns=?",
                (str(path.resolve()), st.st_size, st.st_mtime_ns),
            ).fetchone()
        return row is not None

    def release_interrupted(self) -> list[str]:
        """Forget claims left ``running`` by a killed watcher; return their paths."""
        with self._lock, self._connect() as c:
            rows = c.execute("SELECT path FROM files WHERE status='running'").fetchall()
            c.execute("DELETE FROM files WHERE status='running'")
        return [r[0] for r in rows]

    def rows(self) -> list[dict[str, Any]]:
        """Return every ledger row (oldest claim first)."""
        with self._lock, self._connect() as c:
            cur = c.execute("SELECT * FROM files ORDER BY claimed")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


class FileState:
    """Size history of a file that is being written (for the settle test)."""

    def __init__(self, size: int, now: float):
        self.size = size
        self.since = now


class DirectoryWatcher(abc.ABC):
    """Watch a directory and feed settled files to named worker queues through a ledger.

    Subclasses implement :meth:`dispatch` (check a settled file, record it in the ledger as
    failed/skipped or claim it and return its queue) and :meth:`process` (handle one claimed
    file; raising marks it failed).
    """

    def __init__(
        self,
        input_dir: str | Path,
        ledger: Ledger,
        *,
        patterns: Sequence[str],
        queues: Iterable[str],
        settle_seconds: float,
        poll_seconds: float,
        use_polling: bool = False,
        thread_prefix: str = "watch",
    ):
        self.input_dir = Path(input_dir)
        self.input_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = ledger
        self.patterns = tuple(patterns)
        self.settle_seconds = settle_seconds
        self.poll_seconds = poll_seconds
        self.use_polling = use_polling
        self._thread_prefix = thread_prefix
        self._pending: dict[Path, FileState] = {}
        self._events: queue.Queue[Path] = queue.Queue()
        self._queues: dict[str, queue.Queue[tuple[Path, str] | None]] = {
            name: queue.Queue() for name in queues
        }
        self._workers: list[threading.Thread] = []
        self._observer: Any = None
        self._busy = 0
        self._busy_lock = threading.Lock()
        self.observer_kind = ""

    # --- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def dispatch(self, path: Path) -> tuple[str, str] | None:
        """Check a settled file; return ``(queue name, ledger key)`` once claimed, or None."""

    @abc.abstractmethod
    def process(self, name: str, path: Path) -> Any:
        """Handle one claimed file of queue ``name`` (raise to record it as failed)."""

    # --- discovery ------------------------------------------------------------------
    def _wanted(self, path: Path) -> bool:
        return path.is_file() and any(fnmatch.fnmatch(path.name, pat) for pat in self.patterns)

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        events = self._events

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if not event.is_directory:
                    events.put(Path(getattr(event, "dest_path", "") or event.src_path))

        kinds: list[tuple[str, Any]] = [("polling", PollingObserver)]
        if not self.use_polling:
            kinds.insert(0, ("native", Observer))
        for kind, cls in kinds:
            obs = cls(timeout=self.poll_seconds) if kind == "polling" else cls()
            try:
                obs.schedule(Handler(), str(self.input_dir), recursive=False)
                obs.start()
            except OSError as exc:  # e.g. inotify watch limit reached
                log.warning("file-system observer %s failed (%s); trying the next", kind, exc)
                continue
            self._observer = obs
            self.observer_kind = kind
            return
        log.warning("no file-system observer available: directory scans only")
        self.observer_kind = "scan"

    def scan(self) -> None:
        """Queue every wanted file of the input directory not yet in the ledger."""
        for p in sorted(self.input_dir.iterdir()):
            if self._wanted(p):
                self._events.put(p)

    # --- readiness ------------------------------------------------------------------------
    def _drain_events(self, now: float) -> None:
        while True:
            try:
                p = self._events.get_nowait()
            except queue.Empty:
                break
            if not self._wanted(p):
                continue
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                continue
            st = self._pending.get(p)
            if st is None or st.size != size:
                self._pending[p] = FileState(size, now)

    def _ready_files(self, now: float) -> list[Path]:
        ready = []
        for p, st in list(self._pending.items()):
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                del self._pending[p]
                continue
            if size != st.size:
                st.size, st.since = size, now
                continue
            if now - st.since >= self.settle_seconds:
                ready.append(p)
        return sorted(ready, key=lambda q: (q.stat().st_mtime_ns, q.name))

    def _dispatch(self, p: Path) -> None:
        del self._pending[p]
        if self.ledger.known(p):
            return
        claimed = self.dispatch(p)
        if claimed is None:
            return
        name, key = claimed
        with self._busy_lock:
            self._busy += 1
        self._queues[name].put((p, key))

    # --- workers ------------------------------------------------------------------------
    def _worker(self, name: str) -> None:
        q = self._queues[name]
        while True:
            item = q.get()
            if item is None:
                return
            path, key = item
            try:
                self.process(name, path)
            except SvomflowError as exc:
                self.ledger.finish(key, "failed", str(exc))
                log.warning("%s [%s]: %s", path.name, name, exc)
            except Exception as exc:  # a bug must not stop the watcher either
                self.ledger.finish(key, "failed", f"{type(exc).__name__}: {exc}")
                log.exception("%s [%s]: unexpected error", path.name, name)
            else:
                self.ledger.finish(key, "done")
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def start(self) -> None:
        """Start the observer and one worker thread per queue."""
        resumed = self.ledger.release_interrupted()
        if resumed:
            log.info("resuming %d file(s) interrupted by the last stop", len(resumed))
        for name in self._queues:
            t = threading.Thread(
                target=self._worker,
                args=(name,),
                name=f"{self._thread_prefix}-{name}",
                daemon=True,
            )
            t.start()
            self._workers.append(t)
        self._start_observer()
        self.scan()

    def stop(self) -> None:
        """Stop the observer and let the workers finish the file they are on."""
        if self._observer is not None:
            self._observer.stop()
            with contextlib.suppress(RuntimeError):
                self._observer.join(timeout=5)
        for q in self._queues.values():
            q.put(None)
        for t in self._workers:
            t.join()
        self._workers.clear()

    @property
    def idle(self) -> bool:
        """True when nothing is pending, queued or being processed."""
        with self._busy_lock:
            return not self._pending and self._busy == 0 and self._events.empty()

    def step(self) -> None:
        """Take in events and dispatch the files that have settled (one loop iteration)."""
        now = time.monotonic()
        self._drain_events(now)
        for p in self._ready_files(now):
            try:
                self._dispatch(p)
            except FileNotFoundError:
                self._pending.pop(p, None)
            except OSError as exc:
                log.warning("%s: %s", p.name, exc)
                self._pending.pop(p, None)

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        until_idle: float | None = None,
        rescan_seconds: float = 10.0,
    ) -> None:
        """Run until ``stop`` is set, or until idle for ``until_idle`` seconds."""
        stop = stop or threading.Event()
        self.start()
        idle_since: float | None = None
        last_scan = time.monotonic()
        try:
            while not stop.is_set():
                self.step()
                now = time.monotonic()
                if now - last_scan > rescan_seconds:
                    self.scan()
                    last_scan = now
                if self.idle:
                    idle_since = idle_since or now
                    if until_idle is not None and now - idle_since >= until_idle:
                        break
                else:
                    idle_since = None
                stop.wait(self.poll_seconds / 2)
        finally:
            self.stop()
