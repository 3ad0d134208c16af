"""Housekeeping ingestion service: watch a directory, ingest files, check limits, notify.

The same mechanism and guarantees as the GP1 online mode
(:class:`svomflow.operations.file_watcher.DirectoryWatcher`): a ledger claims each version
of a file once, claims left by a killed watcher are processed again at restart, so no file is
lost or ingested twice (and the store skips samples it already holds, so a file
re-processed after a crash between storing and recording adds nothing).

For each settled ``*.fits``/``*.fits.gz``/``*.json`` file: FITS completeness is checked,
the file is read and stored (:func:`svomflow.flows.eic_monitoring.ingest_file`), the limits
of its instrument are checked (alarms recorded), and pending alarms are notified to whoever
is on duty (:func:`svomflow.products.notify.notify_pending`, the sender the flows use; also
every ``notify_every_s`` seconds, to retry failed sends). A file that
cannot be ingested (unreadable, truncated, an instrument without definitions) is recorded as
failed with the reason and moved to ``rejected/`` with a ``.reason.txt`` beside it; the
watcher goes on.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session
from svomflow.errors import InputDataError
from svomflow.flows.eic_monitoring import check_instrument, ingest_file, sync_definitions
from svomflow.operations.file_watcher import DirectoryWatcher, Ledger
from svomflow.operations.gp1_watch import check_complete
from svomflow.paths import data_home
from svomflow.products.database import make_engine
from svomflow.products.notify import NotifySettings, notify_pending
from svomflow.tasks.monitoring.definitions import InstrumentHousekeeping

__all__ = ["HkWatchConfig", "HkWatcher"]

log = logging.getLogger("svomflow.hk.watch")


class HkWatchConfig(BaseModel):
    """Settings of the housekeeping watcher."""

    model_config = ConfigDict(extra="forbid")

    input_dir: str
    ledger: str | None = Field(default=None, description="default: <home>/hk_ledger.sqlite")
    rejected_dir: str | None = Field(default=None, description="default: <input_dir>/rejected")
    database_url: str | None = None
    patterns: tuple[str, ...] = ("*.fits", "*.fits.gz", "*.fit", "*.json")
    settle_seconds: float = Field(default=2.0, ge=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    use_polling: bool = False
    check: bool = Field(default=True, description="check limits after each file")
    notify: bool = Field(default=True, description="send pending alarms to who is on duty")
    notify_every_s: float = Field(default=10.0, gt=0)


class HkWatcher(DirectoryWatcher):
    """Watch a directory and ingest housekeeping files as they arrive."""

    def __init__(
        self,
        config: HkWatchConfig,
        *,
        definitions: dict[str, InstrumentHousekeeping] | None = None,
        notify_settings: NotifySettings | None = None,
    ):
        self.cfg = config
        super().__init__(
            config.input_dir,
            Ledger(config.ledger or data_home() / "hk_ledger.sqlite"),
            patterns=config.patterns,
            queues=["ingest"],
            settle_seconds=config.settle_seconds,
            poll_seconds=config.poll_seconds,
            use_polling=config.use_polling,
            thread_prefix="hk",
        )
        self.rejected_dir = Path(config.rejected_dir or Path(config.input_dir) / "rejected")
        self.engine = make_engine(config.database_url)
        with Session(self.engine) as s:
            self.definitions = sync_definitions(s, definitions)
        self.notify_settings = notify_settings
        self._last_notify = 0.0
        self._notify_now = False
        self.raised: list[int] = []

    def _reject(self, path: Path, reason: str) -> None:
        """Move a file that cannot be ingested aside, with its reason beside it."""
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        target = self.rejected_dir / path.name
        try:
            shutil.move(str(path), target)
            target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
        except OSError as exc:
            log.warning("%s: could not move aside (%s)", path.name, exc)

    def dispatch(self, path: Path) -> tuple[str, str] | None:
        """Check a FITS file is complete, then claim the file for ingestion."""
        if not path.name.lower().endswith(".json"):
            reason = check_complete(path)
            if reason is not None:
                if self.ledger.record(path, "failed", f"{path}: {reason}"):
                    log.warning("%s: %s", path.name, reason)
                    self._reject(path, f"{path}: {reason}")
                return None
        key = self.ledger.claim(path, "ingest")
        return None if key is None else ("ingest", key)

    def process(self, name: str, path: Path) -> Any:
        """Ingest one file and check its instrument's limits (errors: file set aside)."""
        with Session(self.engine) as s:
            try:
                done = ingest_file(s, path, self.definitions)
            except InputDataError as exc:
                self._reject(path, str(exc))
                raise
            log.info(
                "%s: %d samples of %s stored (%d already there)",
                path.name,
                done.inserted,
                done.instrument,
                done.duplicates,
            )
            if self.cfg.check:
                summary = check_instrument(s, done.instrument)
                self.raised += summary.raised
        # notifications go out from the main loop only (one sender, no double e-mail)
        self._notify_now = True
        return done

    def step(self) -> None:
        """Dispatch settled files; send pending alarms every ``notify_every_s`` seconds."""
        super().step()
        now = time.monotonic()
        due = self._notify_now or now - self._last_notify >= self.cfg.notify_every_s
        if self.cfg.notify and due:
            self._last_notify = now
            self._notify_now = False
            try:
                with Session(self.engine) as s:
                    notify_pending(s, self.notify_settings)
            except Exception:  # a notification bug must not stop the ingestion
                log.exception("notification of pending alarms failed")

    def stop(self) -> None:
        """Stop watching; send what the last files raised."""
        super().stop()
        if self.cfg.notify and self._notify_now:
            self._notify_now = False
            with Session(self.engine) as s:
                notify_pending(s, self.notify_settings)
