"""The one place that decides how numba kernels are compiled (ARCHITECTURE.md §8).

Every kernel uses :func:`kernel` (or :func:`parallel_kernel`) instead of ``numba.njit`` so
that caching, ``nogil`` and ``fastmath`` follow one policy:

* ``cache=True`` unless ``SVOMFLOW_NUMBA_CACHE=0``; the cache goes to a writable directory
  (``NUMBA_CACHE_DIR`` if set, else ``$SVOMFLOW_HOME/numba_cache``), because site-packages
  is often read-only on shared installations.
* ``nogil=True`` so that Prefect's thread runner can run kernels side by side.
* ``fastmath=False``: a kernel may only opt in with a test that proves its result unchanged.

Setting ``NUMBA_DISABLE_JIT=1`` runs every kernel as plain Python (used once in CI for
coverage of the kernel bodies).

A fresh process loads compiled kernels from the cache instead of compiling them (about 5 s
of CPU for the VHF flow): ``svomflow warm`` fills the cache of the current home, and
``make install`` runs it for the repository's home.

A kernel is compiled (or loaded from the cache) on its first call, for the argument types of
that call. A kernel that is always called with the same types may declare them
(``@kernel(signatures=[...])``): it is then loaded when its module is imported, and so is
numba's code-generation context, which the first kernel of a process sets up (about 0.25 s
of CPU). A process that imports its pipeline before work arrives (a served deployment, a
listener) pays that at start instead of on its first run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

__all__ = ["cache_dir", "cache_enabled", "kernel", "parallel_kernel"]

F = TypeVar("F", bound=Callable[..., Any])


def cache_enabled() -> bool:
    """Return whether compiled kernels are cached on disk (``SVOMFLOW_NUMBA_CACHE``)."""
    return os.environ.get("SVOMFLOW_NUMBA_CACHE", "1").strip().lower() not in {"0", "false", "no"}


def cache_dir() -> Path | None:
    """Return the directory of the kernel cache, fixing it for this process on first call.

    ``NUMBA_CACHE_DIR`` if set, else ``$SVOMFLOW_HOME/numba_cache`` (created); None when it
    cannot be created (numba then caches next to the sources or not at all). Later changes
    of ``SVOMFLOW_HOME`` in the process do not move the cache.
    """
    _ensure_cache_dir()
    value = os.environ.get("NUMBA_CACHE_DIR")
    return Path(value) if value else None


def _ensure_cache_dir() -> None:
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    from svomflow.paths import home_with_reason

    home = home_with_reason()[0]
    cache_dir = home / "numba_cache"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # numba falls back to __pycache__ or disables caching with a warning
    os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)
    # numba reads NUMBA_CACHE_DIR when its config module is first imported.
    import numba.core.config as numba_config

    setattr(numba_config, "CACHE_DIR", str(cache_dir))  # noqa: B010 - not in numba's stubs


def kernel(
    func: F | None = None,
    *,
    signatures: Sequence[str | tuple[Any, ...]] | None = None,
    **options: Any,
) -> Any:
    """Compile ``func`` in nopython mode with the project's policy (cache, nogil, no fastmath).

    Usable bare (``@kernel``) or with numba options (``@kernel(parallel=True)``).

    Parameters
    ----------
    func
        The kernel (when used bare).
    signatures
        The argument types of every call, e.g. ``["(int64[::1], float64[::1], float64)"]``,
        for a kernel always called with the same types: it is compiled, or loaded from the
        cache, when it is defined, and a call with other types raises ``TypeError``
        (arrays must match in dtype and layout; scalars are converted). Without it the
        kernel is compiled for the types of each new call, on that call.
    **options
        Other ``numba.njit`` options; they override the policy's.
    """
    import numba

    _ensure_cache_dir()
    opts: dict[str, Any] = {"cache": cache_enabled(), "nogil": True, "fastmath": False}
    opts.update(options)

    def wrap(f: F) -> F:
        # the dispatcher is called like ``f``: typed as ``f`` for the kernels' callers
        if signatures is not None:
            return cast(F, numba.njit(list(signatures), **opts)(f))
        return numba.njit(**opts)(f)  # type: ignore[no-any-return]

    return wrap(func) if func is not None else wrap


def parallel_kernel(func: F | None = None, **options: Any) -> Any:
    """Like :func:`kernel` with ``parallel=True`` (use ``numba.prange`` in the body)."""
    options.setdefault("parallel", True)
    return kernel(func, **options)
