"""Arrays derived from calibration, cached across processes in the home's cache folder.

Some steps derive arrays from their calibration that cost about a second of CPU and do not
change while their inputs do not (the GRM band responses on the localisation sky grid). A
fresh process would recompute them on its first run; :func:`cached_arrays` keeps them as
``.npz`` files in ``<kernel cache>/arrays`` (a folder inside the kernel cache of
:func:`svomflow.numba_policy.cache_dir`, so ``svomflow warm`` fills both, a home shares
them and they follow ``NUMBA_CACHE_DIR``).

Each file is named ``<name>-<version>-<key>.npz``: the version is that of the computing
code (the caller passes :func:`source_digest` of its modules) and of this module's file
format, the key is :func:`digest` of everything else the arrays depend on (calibration
content, grid definition, bands). A changed calibration or code makes a new name and never
reads a stale file. Files are written atomically (:func:`svomflow.atomic.atomic_path`), so
a reader sees a whole file or none; a file that cannot be read back (truncated, corrupt,
another key inside) is recomputed and rewritten, with a warning.

Old files do not pile up: once a new file is written, the files of the same name made by
another version of the code or format are deleted, and of those of the current version only
the :data:`KEEP` most recently used are kept (a hit marks its file used). Deleting is safe
while another process reads: an open file stays readable, and a file deleted before it is
opened is a miss, recomputed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from svomflow.atomic import TMP_PREFIX, atomic_path

__all__ = [
    "FORMAT",
    "KEEP",
    "cache_folder",
    "cached_arrays",
    "digest",
    "digested_sources",
    "source_digest",
]

#: Version of the file layout (names and the key stored inside): part of every file's
#: version, so files of an older layout are deleted, never read.
FORMAT = 2
#: Files kept per name and version: the calibrations and settings most recently used.
KEEP = 4
# the digest stored inside each file, checked on reading (a file renamed or copied under
# another key's name is not trusted)
_KEY_FIELD = "__key__"
_KEY = re.compile(r"[0-9a-f]{64}")
# a temporary file this old was left by a killed writer (a write takes well under a second)
_ORPHAN_AGE_S = 3600.0
# source files digested by source_digest in this process (svomflow warm lists them)
_DIGESTED: set[Path] = set()


def cache_folder() -> Path | None:
    """Return ``<kernel cache>/arrays``, or None when the home has no kernel cache folder.

    The folder is that of the kernel cache (fixed for the process on first use, see
    :func:`svomflow.numba_policy.cache_dir`); it is created when first written.
    """
    from svomflow.numba_policy import cache_dir

    kernels = cache_dir()
    return None if kernels is None else kernels / "arrays"


def _feed(h: hashlib._Hash, value: object) -> None:
    """Add one value to the digest in a form that is exact and unambiguous."""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        h.update(f"array:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    elif isinstance(value, float | np.floating):
        h.update(f"float:{float(value).hex()};".encode())  # exact: repr rounding is not used
    elif value is None or isinstance(value, bool | int | str | np.integer | np.bool_):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, tuple | list):
        h.update(f"seq{len(value)}(".encode())
        for v in value:
            _feed(h, v)
        h.update(b")")
    elif isinstance(value, Mapping):
        h.update(f"map{len(value)}(".encode())
        for k in sorted(value, key=str):
            _feed(h, str(k))
            _feed(h, value[k])
        h.update(b")")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"{type(value).__qualname__}(".encode())
        for f in dataclasses.fields(value):
            _feed(h, f.name)
            _feed(h, getattr(value, f.name))
        h.update(b")")
    else:
        # an object's repr may hold its address or round its numbers: refuse it
        raise TypeError(f"cannot digest a {type(value).__name__}")


def digest(*parts: object) -> str:
    """Return the SHA-256 (hex) of values: arrays, numbers, strings, sequences, maps, dataclasses.

    Floats enter exactly (their hexadecimal form) and arrays with their dtype and shape, so
    any changed number changes the digest.
    """
    h = hashlib.sha256()
    for p in parts:
        _feed(h, p)
    return h.hexdigest()


@cache
def source_digest(*modules: ModuleType) -> str:
    """Return the SHA-256 of the source files of ``modules``: the version of a computation."""
    h = hashlib.sha256()
    for m in modules:
        path = Path(str(m.__file__))
        h.update(path.read_bytes())
        _DIGESTED.add(path.resolve())
    return h.hexdigest()


def digested_sources() -> list[Path]:
    """Return the source files :func:`source_digest` has read in this process, and this module's.

    What the files cached by this process depend on besides their inputs: ``svomflow warm``
    lists them so that ``make warm`` warms again when one changes.
    """
    return sorted(_DIGESTED | {Path(__file__).resolve()})


def _read(path: Path, key: str) -> dict[str, NDArray[np.generic]]:
    """Return the arrays of ``path``; FileNotFoundError when there is no such file."""
    # the file is opened here: np.load leaves its own handle open when the file is corrupt
    with path.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    if str(out.pop(_KEY_FIELD, "")) != key:
        raise ValueError("the file holds another key")
    return out


def _write(path: Path, key: str, arrays: Mapping[str, NDArray[np.generic]]) -> None:
    """Write the arrays to ``path`` atomically (:func:`svomflow.atomic.atomic_path`)."""
    named: dict[str, Any] = {_KEY_FIELD: np.array(key), **arrays}
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **named)


def _prune(folder: Path, name: str, version: str, current: Path, keep: int) -> None:
    """Delete the files of ``name`` made by another version and all but the ``keep`` last used.

    Temporary files of ``name`` older than an hour (left by a killed writer) go too. Every
    step tolerates another process deleting the same files; a folder that cannot be
    written keeps them.
    """
    entry = re.compile(rf"{re.escape(name)}-(?:([0-9a-f]{{16}})-)?[0-9a-f]{{64}}\.npz")
    orphan = f"{TMP_PREFIX}{name}-"
    now = time.time()
    stale: list[Path] = []
    current_version: list[tuple[float, Path]] = []
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            match = entry.fullmatch(path.name)
            if match is None:
                if path.name.startswith(orphan) and now - path.stat().st_mtime > _ORPHAN_AGE_S:
                    stale.append(path)
            elif match.group(1) != version:  # another version (None: the unversioned layout)
                stale.append(path)
            elif path != current:
                current_version.append((path.stat().st_mtime, path))
    current_version.sort(reverse=True)
    stale.extend(path for _, path in current_version[max(keep - 1, 0) :])
    for path in stale:
        with contextlib.suppress(OSError):
            path.unlink()


def cached_arrays(
    name: str,
    key: str,
    compute: Callable[[], Mapping[str, NDArray[np.generic]]],
    *,
    version: str,
    folder: Path | None = None,
    keep: int = KEEP,
) -> dict[str, NDArray[np.generic]]:
    """Return the arrays stored under ``name`` and ``key``, computing and storing them if absent.

    Parameters
    ----------
    name
        What the arrays are (the file name's prefix), e.g. ``grm-band-response``.
    key
        :func:`digest` of everything ``compute`` depends on but its code.
    compute
        Makes the arrays (name -> array) when no readable file has them.
    version
        The version of ``compute``'s code, e.g. :func:`digest` of :func:`source_digest` of
        its modules and of the NumPy version. Writing a file deletes the files of ``name``
        made by other versions.
    folder
        Where the files go (default :func:`cache_folder`). Without a folder the arrays are
        computed every time; a folder that cannot be written only costs the recomputation.
    keep
        Files of ``name`` and ``version`` kept when a file is written (the most recently
        used), the new one included.

    Returns
    -------
    dict
        The arrays, identical to what ``compute`` returns (``.npz`` is exact).
    """
    if not _KEY.fullmatch(key):
        raise ValueError(f"the key must be a digest(...) (64 hex digits), got {key!r}")
    folder = folder if folder is not None else cache_folder()
    if folder is None:
        return dict(compute())
    tag = digest(FORMAT, version)[:16]
    path = folder / f"{name}-{tag}-{key}.npz"
    try:
        arrays = _read(path, key)
    except FileNotFoundError:
        pass  # not written yet, or deleted by another process's pruning
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        warnings.warn(
            f"unreadable cache file {path} ({exc}): recomputing it",
            RuntimeWarning,
            stacklevel=2,
        )
    else:
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: pruning keeps the most recently used files
        return arrays
    arrays = dict(compute())
    try:
        _write(path, key, arrays)
    except OSError as exc:
        warnings.warn(f"could not write the cache file {path}: {exc}", RuntimeWarning, stacklevel=2)
    else:
        _prune(folder, name, tag, path, keep)
    return arrays
