"""Settings of the web site: database, products root, session secret, Prefect UI address."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from svomflow.paths import data_home

__all__ = ["DEFAULT_WEB_PORT", "WebSettings", "load_secret_key"]

DEFAULT_WEB_PORT = 4300


def load_secret_key(home: Path | None = None) -> str:
    """Return the key that signs session cookies: ``$SVOMFLOW_WEB_SECRET``, else the home's.

    The home's key is generated on first use into ``<home>/web/secret_key`` (mode 0600), so
    sessions survive a restart and several workers of one home agree; never a key in code.
    """
    env = os.environ.get("SVOMFLOW_WEB_SECRET")
    if env:
        return env
    folder = (home or data_home()) / "web"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    # O_EXCL: two servers starting together keep the first key written
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def _products_root() -> Path:
    from svomflow.operations.product_server import products_root

    return products_root()


def _prefect_ui_url() -> str:
    """Return the Prefect UI address the product pages link flow runs to."""
    ui = os.environ.get("PREFECT_UI_URL")
    if ui:
        return ui.rstrip("/")
    api = os.environ.get("PREFECT_API_URL")
    if not api:
        from svomflow.operations.prefect_server import DEFAULT_PORT, home_server_url

        api = home_server_url() or f"http://127.0.0.1:{DEFAULT_PORT}/api"
    return api.rstrip("/").removesuffix("/api")


@dataclass(frozen=True)
class WebSettings:
    """What one instance of the site serves and how.

    Attributes
    ----------
    database_url
        SQLAlchemy URL of the products database (None: ``products.database.database_url()``);
        users, tokens and events live in the same database.
    products_root
        The folder whose files the site serves (nothing outside it).
    secret_key
        Key signing the session cookies (:func:`load_secret_key`).
    prefect_ui_url
        Base address of the Prefect UI (links to flow runs).
    session_max_age_s
        Lifetime of a sign-in.
    events_poll_s
        How often the live-update stream polls the database for other processes' changes.
    secure_cookies
        Send the session cookie over HTTPS only (set behind a TLS proxy).
    """

    database_url: str | None = None
    products_root: Path = field(default_factory=_products_root)
    secret_key: str = field(default_factory=load_secret_key)
    prefect_ui_url: str = field(default_factory=_prefect_ui_url)
    session_max_age_s: int = 12 * 3600
    events_poll_s: float = 1.0
    secure_cookies: bool = False
