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

The watching, settling, ledger and worker mechanism is
:class:`svomflow.operations.file_watcher.DirectoryWatcher` (shared with the housekeeping
ingester); this module adds the FITS completeness check, routing and the GP1 processors.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError, SvomflowError
from svomflow.operations.file_watcher import DirectoryWatcher, FileState, Ledger
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


class GP1Watcher(DirectoryWatcher):
    """Watch ``input_dir`` and feed complete images to the routed pipeline instances."""

    def __init__(self, config: GP1WatchConfig, processor: Processor | None = None):
        self.cfg = config
        out = Path(config.output_dir or config.pipelines[0].output_dir)
        super().__init__(
            config.input_dir,
            Ledger(config.ledger or out / "gp1_ledger.sqlite"),
            patterns=config.patterns,
            queues=[p.name for p in config.pipelines],
            settle_seconds=config.settle_seconds,
            poll_seconds=config.poll_seconds,
            use_polling=config.use_polling,
            thread_prefix="gp1",
        )
        self.processor = processor or flow_processor(config.caldb)
        self._by_name = {p.name: p for p in config.pipelines}

    def dispatch(self, path: Path) -> tuple[str, str] | None:
        """Check that an image is complete, route it and claim it for its pipeline."""
        reason = check_complete(path)
        if reason is not None:
            self.ledger.record(path, "failed", reason)
            log.warning("%s: %s", path.name, reason)
            return None
        try:
            # The image HDU's header merged with the primary's (fpack'd frames: extension 1).
            header = read_image_header(path)
        except InputDataError as exc:
            self.ledger.record(path, "failed", str(exc))
            log.warning("%s: %s", path.name, exc)
            return None
        pipe = route_image(header, self.cfg.pipelines)
        if pipe is None:
            self.ledger.record(path, "skipped", "no pipeline rule matches the header")
            return None
        key = self.ledger.claim(path, pipe.name)
        return None if key is None else (pipe.name, key)

    def process(self, name: str, path: Path) -> Any:
        """Run the processor on one image with its pipeline instance's configuration."""
        return self.processor(path, self._by_name[name])
