"""GP1 online mode: watch a directory, wait for complete files, route, process, keep a ledger.

* A real file-system watcher (watchdog's ``Observer``; ``PollingObserver`` when the native
  one cannot start or ``use_polling`` is set) signals new files; a directory scan at start
  and on every idle period catches anything the events missed (and files that arrived
  while the watcher was stopped).
* A file is *complete* when its size has not changed for ``settle_seconds``, it opens as
  FITS, its headers end with an END card and every HDU's data is present (gzip'd files are
  decompressed fully to check; for fpack'd ``.fits.fz`` the tile heap counts as data). A
  file whose size is stable but that stays unreadable (truncated, corrupt, no image) is
  recorded as failed, so the watcher goes on.
* Each image goes to the first pipeline instance whose header rules all match
  (``EXPTYPE,OBSERVER = object,svom``); each instance has its own worker thread, so the
  instances run side by side while each processes its images one by one, in arrival order.
* The ledger (SQLite) records every file by path, size, modification time and SHA-256; a
  file is claimed atomically before processing, so no image is processed twice, and claims
  left ``running`` by a killed watcher are processed again at restart, so none is lost.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import gzip
import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError, SvomflowError
from svomflow.products.ccd_frames import read_image_header
from svomflow.tasks.gp1.config import GP1Config, GP1WatchConfig

__all__ = [
    "FileState",
    "GP1Watcher",
    "Ledger",
    "check_complete",
    "default_processor",
    "flow_processor",
    "plain_processor",
    "route_image",
]

log = logging.getLogger("svomflow.gp1.watch")

Processor = Callable[[Path, GP1Config], Any]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Ledger:
    """Persistent record of the files seen by the watcher (SQLite, one row per file version)."""

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
        digest = _sha256(path)
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


def _fits_structure(buf: bytes) -> str | None:
    """Walk the HDUs of a FITS byte string: every header ends with END, all data present."""
    pos = 0
    n = len(buf)
    nhdu = 0
    while pos < n:
        cards: dict[str, str] = {}
        end = False
        while not end:
            if pos + 2880 > n:
                return f"header {nhdu} is cut (no END card)"
            block = buf[pos : pos + 2880]
            pos += 2880
            for k in range(36):
                card = block[80 * k : 80 * (k + 1)].decode("ascii", "replace")
                key = card[:8].strip()
                if key == "END":
                    end = True
                    break
                if card[8:10] == "= ":
                    cards.setdefault(key, card[10:].split("/")[0].strip())
        if nhdu == 0 and cards.get("SIMPLE") != "T":
            return "not a FITS file (SIMPLE = T missing)"
        try:
            naxis = int(cards.get("NAXIS", "0"))
            bitpix = abs(int(cards["BITPIX"]))
            dims = [int(cards[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
            pcount = int(cards.get("PCOUNT", "0"))
            gcount = int(cards.get("GCOUNT", "1"))
        except (KeyError, ValueError):
            return f"header {nhdu} has invalid BITPIX/NAXIS keywords"
        size = 0
        if naxis:
            size = int(np.prod(dims, dtype=np.int64)) if dims else 0
            size = bitpix // 8 * gcount * (pcount + size)
        blocks = -(-size // 2880) * 2880
        if pos + size > n:
            return f"data of HDU {nhdu} are cut ({n - pos} of {size} bytes)"
        pos += blocks
        nhdu += 1
    return None if nhdu else "empty file"


def check_complete(path: Path) -> str | None:
    """Return None when ``path`` is a complete FITS file, else the reason it is not.

    Every header must end with END and every HDU's data must be fully present; gzip files
    are decompressed completely (a file still being compressed fails the stream check).
    The structure is walked directly (no FITS library), so a truncated file costs one read.
    """
    try:
        if path.name.endswith(".gz"):
            try:
                buf = gzip.decompress(path.read_bytes())
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                return f"gzip stream incomplete ({exc})"
        else:
            buf = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc})"
    reason = _fits_structure(buf)
    return None if reason is None else f"not a complete FITS file: {reason}"


def route_image(header: fits.Header, pipelines: list[GP1Config]) -> GP1Config | None:
    """Return the first pipeline whose header rules all match (case-insensitive), or None."""
    for p in pipelines:
        ok = True
        for key, want in p.route.items():
            if key not in header or str(header[key]).strip().lower() != want.strip().lower():
                ok = False
                break
        if ok:
            return p
    return None


def flow_processor(caldb_root: str | None = None) -> Processor:
    """Return a processor running the ``gp1_reduction`` flow on one image.

    The products of the image's sequence are rebuilt from every image of it so far.
    """

    def process(path: Path, cfg: GP1Config) -> Any:
        from svomflow.flows.gp1 import gp1_reduction

        # the configuration as a mapping: Prefect validates it into the model (as from the UI)
        settings: Any = cfg.model_dump(mode="json")
        result = gp1_reduction(images=[str(path)], config=settings, caldb_root=caldb_root)
        return _checked(result)

    return process


def plain_processor(caldb_root: str | None = None) -> Processor:
    """Return a processor running the GP1 pipeline on one image in plain Python (no Prefect)."""

    def process(path: Path, cfg: GP1Config) -> Any:
        from svomflow.flows.gp1 import process_images

        return _checked(process_images([path], cfg, caldb_root=caldb_root))

    return process


def _checked(result: dict[str, Any]) -> dict[str, Any]:
    """Raise the image's failure (the watcher records it in the ledger)."""
    if result["failed"]:
        raise SvomflowError("; ".join(f"{k}: {v}" for k, v in result["failed"].items()))
    return result


def default_processor(path: Path, cfg: GP1Config) -> Any:
    """Run the ``gp1_reduction`` flow on one image with the default CALDB."""
    return flow_processor()(path, cfg)


class GP1Watcher:
    """Watch ``input_dir`` and feed complete images to the routed pipeline instances."""

    def __init__(self, config: GP1WatchConfig, processor: Processor | None = None):
        self.cfg = config
        self.input_dir = Path(config.input_dir)
        self.input_dir.mkdir(parents=True, exist_ok=True)
        out = Path(config.output_dir or config.pipelines[0].output_dir)
        self.ledger = Ledger(config.ledger or out / "gp1_ledger.sqlite")
        self.processor = processor or flow_processor(config.caldb)
        self._pending: dict[Path, FileState] = {}
        self._events: queue.Queue[Path] = queue.Queue()
        self._queues: dict[str, queue.Queue[tuple[Path, str] | None]] = {
            p.name: queue.Queue() for p in config.pipelines
        }
        self._by_name = {p.name: p for p in config.pipelines}
        self._workers: list[threading.Thread] = []
        self._observer: Any = None
        self._busy = 0
        self._busy_lock = threading.Lock()
        self.observer_kind = ""

    # --- discovery ------------------------------------------------------------------
    def _wanted(self, path: Path) -> bool:
        return path.is_file() and any(fnmatch.fnmatch(path.name, pat) for pat in self.cfg.patterns)

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
        if not self.cfg.use_polling:
            kinds.insert(0, ("native", Observer))
        for kind, cls in kinds:
            obs = cls(timeout=self.cfg.poll_seconds) if kind == "polling" else cls()
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

    # --- readiness and routing ---------------------------------------------------------
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
            if now - st.since >= self.cfg.settle_seconds:
                ready.append(p)
        return sorted(ready, key=lambda q: (q.stat().st_mtime_ns, q.name))

    def _dispatch(self, p: Path) -> None:
        del self._pending[p]
        if self.ledger.known(p):
            return
        reason = check_complete(p)
        if reason is not None:
            self.ledger.record(p, "failed", reason)
            log.warning("%s: %s", p.name, reason)
            return
        try:
            # The image HDU's header merged with the primary's (fpack'd frames: extension 1).
            header = read_image_header(p)
        except InputDataError as exc:
            self.ledger.record(p, "failed", str(exc))
            log.warning("%s: %s", p.name, exc)
            return
        pipe = route_image(header, self.cfg.pipelines)
        if pipe is None:
            self.ledger.record(p, "skipped", "no pipeline rule matches the header")
            return
        key = self.ledger.claim(p, pipe.name)
        if key is None:
            return
        with self._busy_lock:
            self._busy += 1
        self._queues[pipe.name].put((p, key))

    # --- workers ------------------------------------------------------------------------
    def _worker(self, name: str) -> None:
        q = self._queues[name]
        cfg = self._by_name[name]
        while True:
            item = q.get()
            if item is None:
                return
            path, key = item
            try:
                self.processor(path, cfg)
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
        """Start the observer and one worker thread per pipeline instance."""
        resumed = self.ledger.release_interrupted()
        if resumed:
            log.info("resuming %d image(s) interrupted by the last stop", len(resumed))
        for name in self._queues:
            t = threading.Thread(target=self._worker, args=(name,), name=f"gp1-{name}", daemon=True)
            t.start()
            self._workers.append(t)
        self._start_observer()
        self.scan()

    def stop(self) -> None:
        """Stop the observer and let the workers finish the image they are on."""
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
        """Take in events and dispatch the files that are complete (one loop iteration)."""
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
                stop.wait(self.cfg.poll_seconds / 2)
        finally:
            self.stop()
