"""Where svomflow keeps its data, and safe construction of output paths from header values."""

from __future__ import annotations

import os
import re
from pathlib import Path

from svomflow.errors import PathEscapeError

__all__ = ["data_home", "home_with_reason", "safe_component", "safe_join"]

# A path component built from a header value: letters, digits and a few separators.
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")


def home_with_reason(cwd: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Return the svomflow home and the rule that chose it, without creating anything.

    The one rule every entry point follows (CLI, Makefile, notebooks, deployments):

    1. ``$SVOMFLOW_HOME`` when set;
    2. else the nearest ``.svomflow`` folder in the current directory or one of its parents
       (``make demo`` makes one at the project root);
    3. else ``~/.svomflow``.

    Parameters
    ----------
    cwd
        Where the upward search starts (default: the current directory).

    Returns
    -------
    tuple of (Path, str)
        The home and a short reason (``"$SVOMFLOW_HOME"``, ``"nearest .svomflow"``,
        ``"default ~/.svomflow"``).
    """
    env = os.environ.get("SVOMFLOW_HOME")
    if env:
        return Path(env).expanduser().resolve(), "$SVOMFLOW_HOME"
    start = Path(cwd) if cwd is not None else Path.cwd()
    user_default = (Path.home() / ".svomflow").resolve()
    for folder in (start.resolve(), *start.resolve().parents):
        candidate = folder / ".svomflow"
        if candidate.is_dir() and candidate.resolve() != user_default:
            return candidate.resolve(), "nearest .svomflow"
    return user_default, "default ~/.svomflow"


def data_home() -> Path:
    """Return the svomflow home (see :func:`home_with_reason`), creating it if needed."""
    root = home_with_reason()[0]
    root.mkdir(parents=True, exist_ok=True)
    return root


def safe_component(value: object, *, what: str = "path component") -> str:
    """Return ``value`` as a single, harmless path component, or raise PathEscapeError.

    Header values (trigger ids, filter names, instrument names) end up in output paths.
    Anything that could change directory (``..``, separators, absolute paths), NUL or other
    control characters, or an empty value is rejected rather than cleaned, so that two
    different header values can never silently map to the same directory.
    """
    text = str(value).strip()
    if not text:
        raise PathEscapeError(f"{what} is empty")
    if "\x00" in text:
        raise PathEscapeError(f"{what} {text!r} contains a NUL byte")
    if "/" in text or "\\" in text or text in {".", ".."} or ".." in text:
        raise PathEscapeError(f"{what} {text!r} would leave the output directory")
    if not _COMPONENT.match(text):
        raise PathEscapeError(
            f"{what} {text!r} has characters not allowed in a path component "
            "(allowed: letters, digits, '_', '.', '+', '-')"
        )
    return text


def safe_join(root: str | os.PathLike[str], *components: object) -> Path:
    """Join header-derived ``components`` under ``root`` and check the result stays inside.

    Parameters
    ----------
    root
        The output root; it does not need to exist.
    *components
        Values (often FITS header values) that become one directory level each.

    Returns
    -------
    Path
        ``root/c1/c2/...``, resolved.

    Raises
    ------
    PathEscapeError
        If a component is empty, contains a separator, ``..`` or NUL, or the resolved path
        is not below the resolved root (e.g. through a symbolic link).
    """
    base = Path(root).resolve()
    parts = [safe_component(c) for c in components]
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise PathEscapeError(f"{target} is outside the output root {base}")
    return target
