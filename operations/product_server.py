"""Which files the site may serve: the products root and the paths that stay below it.

Summary artifacts link each product to ``$SVOMFLOW_PRODUCTS_URL/<path under the root>``
(``file://`` links do not open from a web page). Since the instrument-centre site
(``svomflow web``, :mod:`svomflow.web`) serves those same URLs under ``/files``, there is one
server; this module keeps the two rules it shares with the flows, importable without Prefect
(the site starts in well under a second): where the products root is, and whether a request
path stays below it (``..``, an absolute path, a NUL byte or a symbolic link leaving the root
are refused).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from svomflow.paths import data_home

__all__ = ["products_root", "resolve_under"]


def products_root() -> Path:
    """Return the products root (``$SVOMFLOW_PRODUCTS``, else ``<home>/products``), resolved.

    The same rule as :func:`svomflow.flows.adapter.default_output_root` (a test holds them
    equal), without importing the flows.
    """
    env = os.environ.get("SVOMFLOW_PRODUCTS")
    root = Path(env) if env else data_home() / "products"
    return root.expanduser().resolve()


def resolve_under(root: Path, url_path: str) -> Path | None:
    """Return the file an URL path names below ``root``, or None when it would leave it.

    Parameters
    ----------
    root
        The served folder (resolved).
    url_path
        The request path (percent-encoded, query ignored).
    """
    # not urlsplit: it would read "//host/x" as a network location
    raw = urllib.parse.unquote(url_path.split("?", 1)[0].split("#", 1)[0])
    if "\x00" in raw:
        return None
    target = (root / raw.lstrip("/")).resolve()
    if target != root and root not in target.parents:
        return None
    return target
