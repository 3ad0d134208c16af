"""Atomic file writes: a product is either complete on disk or absent, never half written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "TMP_PREFIX",
    "AtomicBatch",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_with",
    "fsync_dir",
    "sha256_file",
]

TMP_PREFIX = ".tmp-"


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename into it) to disk."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _temp_beside(target: Path) -> Path:
    """Return a free temporary name in ``target``'s directory (created, then removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers such as astropy refuse to overwrite; give them a free name
    return tmp


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success fsync it and rename it over target.

    The temporary file lives in the target's directory so the final ``os.replace`` is atomic
    on POSIX file systems. If the block raises (or the process is killed), the target keeps
    its previous content and the temporary file is removed (or left with a ``.tmp-`` prefix
    that no reader picks up).
    """
    target = Path(target)
    tmp = _temp_beside(target)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class AtomicBatch:
    """Write several files atomically, with one directory fsync per directory.

    Each file is written to a temporary file beside its target and fsynced
    (:meth:`write`); :meth:`commit` renames them all over their targets and fsyncs each
    directory once. Until then no target changes; :meth:`discard` (or leaving the ``with``
    block by an exception) removes the temporary files.
    """

    def __init__(self) -> None:
        self._moves: list[tuple[Path, Path]] = []

    def __enter__(self) -> AtomicBatch:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.discard()

    def write(self, target: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
        """Call ``writer(tmp)``, fsync the file and return its temporary path."""
        target = Path(target)
        tmp = _temp_beside(target)
        self._moves.append((tmp, target))
        writer(tmp)
        _fsync_file(tmp)
        return tmp

    def commit(self) -> None:
        """Rename every temporary file over its target, then fsync each directory once."""
        for tmp, target in self._moves:
            os.replace(tmp, target)
        for folder in sorted({target.parent for _, target in self._moves}):
            fsync_dir(folder)
        self._moves.clear()

    def discard(self) -> None:
        """Remove the temporary files not renamed yet."""
        for tmp, _ in self._moves:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._moves.clear()


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_with(target: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
