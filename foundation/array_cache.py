"""Arrays derived from calibration, cached across processes in the home's cache folder.

Some steps derive arrays from their calibration that cost about a second of CPU and do not
change while their inputs do not (the GRM band responses on the localisation sky grid). A
fresh process would recompute them on its first run; :func:`cached_arrays` keeps them as
``.npz`` files in ``<kernel cache>/arrays`` (a folder inside the kernel cache of
:func:`svomflow.numba_policy.cache_dir`, so ``svomflow warm`` fills both, a home shares
them and they follow ``NUMBA_CACHE_DIR``).

Each file is named by :func:`digest` of everything the arrays depend on, which the caller
passes (calibration content, grid definition, bands, and :func:`source_digest` of the
computing code as its version): a changed calibration or code makes a new name and never
reads a stale file. Files are written atomically (a temporary file in the same folder,
fsynced, renamed over), so a reader sees a whole file or none; a file that cannot be read
back (truncated, corrupt, another key inside) is recomputed and rewritten, with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
import zipfile
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from svomflow.atomic import atomic_path

__all__ = ["cache_folder", "cached_arrays", "digest", "source_digest"]

# the digest stored inside each file, checked on reading (a file renamed or copied under
# another key's name is not trusted)
_KEY_FIELD = "__key__"


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
        h.update(Path(str(m.__file__)).read_bytes())
    return h.hexdigest()


def _read(path: Path, key: str) -> dict[str, NDArray[np.generic]]:
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


def cached_arrays(
    name: str,
    key: str,
    compute: Callable[[], Mapping[str, NDArray[np.generic]]],
    *,
    folder: Path | None = None,
) -> dict[str, NDArray[np.generic]]:
    """Return the arrays stored under ``name`` and ``key``, computing and storing them if absent.

    Parameters
    ----------
    name
        What the arrays are (the file name's prefix), e.g. ``grm-band-response``.
    key
        :func:`digest` of everything ``compute`` depends on, its code version included.
    compute
        Makes the arrays (name -> array) when no readable file has them.
    folder
        Where the files go (default :func:`cache_folder`). Without a folder the arrays are
        computed every time; a folder that cannot be written only costs the recomputation.

    Returns
    -------
    dict
        The arrays, identical to what ``compute`` returns (``.npz`` is exact).
    """
    folder = folder if folder is not None else cache_folder()
    if folder is None:
        return dict(compute())
    path = folder / f"{name}-{key}.npz"
    if path.is_file():
        try:
            return _read(path, key)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(
                f"unreadable cache file {path} ({exc}): recomputing it",
                RuntimeWarning,
                stacklevel=2,
            )
    arrays = dict(compute())
    try:
        _write(path, key, arrays)
    except OSError as exc:
        warnings.warn(f"could not write the cache file {path}: {exc}", RuntimeWarning, stacklevel=2)
    return arrays
