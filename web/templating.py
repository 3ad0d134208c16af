"""Server-rendered pages: Jinja2 templates, the base layout's context, English and French.

Every visible string goes through ``_()`` (templates) or :func:`translate` (Python): the
English text is the key, ``web/locale/fr.json`` gives the French (a missing entry shows the
English, and a test lists the missing ones). The base layout shows the navigation (only the
pages the user's roles open), who is on call now, the language switch and the CSRF token
that every form posts back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from svomflow.web.auth import CurrentUser, Role, csrf_token

__all__ = [
    "LANGUAGES",
    "NavItem",
    "catalogue",
    "language",
    "render",
    "safe_next",
    "translate",
]

HERE = Path(__file__).parent
LANGUAGES = ("en", "fr")


@dataclass(frozen=True)
class NavItem:
    """An entry of the navigation bar: shown to users holding one of ``roles``.

    A router module lists its entries in a module-level ``NAV`` tuple; the app collects them.
    """

    path: str
    label: str
    roles: tuple[Role, ...]
    order: int = 50


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """Return the message catalogue of ``lang`` (English: empty, the keys are English)."""
    if lang == "en":
        return {}
    path = HERE / "locale" / f"{lang}.json"
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def translate(text: str, lang: str) -> str:
    """Return ``text`` in ``lang`` (English when the catalogue lacks it)."""
    return catalogue(lang).get(text, text) if lang != "en" else text


def language(request: Request) -> str:
    """Return the request's language: the session's choice, else the browser's, else English."""
    chosen = request.session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    accept = request.headers.get("accept-language", "")
    first = accept.split(",", 1)[0].strip().lower()[:2]
    return first if first in LANGUAGES else "en"


def safe_next(target: str | None, default: str = "/") -> str:
    """Return ``target`` if it is a path on this site, else ``default`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = _format_utc
    env.filters["basename"] = lambda p: str(p).replace("\\", "/").rsplit("/", 1)[-1]
    return env


def _format_utc(value: datetime | None, seconds: bool = True) -> str:
    """Format a time as ``YYYY-MM-DD HH:MM[:SS] UTC`` (naive times are taken as UTC)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _nav(request: Request, user: CurrentUser | None) -> list[NavItem]:
    items: Sequence[NavItem] = getattr(request.app.state, "nav", ())
    if user is None:
        return []
    return [i for i in items if user.has(*i.roles)]


def _on_call(request: Request, user: CurrentUser | None) -> list[Any]:
    """Who is on call now for the instruments the user sees (primary first)."""
    if user is None:
        return []
    from sqlmodel import Session
    from svomflow.products.duty import on_call
    from svomflow.web.visibility import visible_hk_instruments

    now = datetime.now(UTC)
    shifts: list[Any] = []
    with Session(request.app.state.engine) as session:
        for instrument in visible_hk_instruments(user):
            shifts.extend(on_call(session, instrument, now))
    return shifts


def render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render ``template`` in the base layout for this request's user and language.

    Parameters
    ----------
    request
        The request (its user, set by the auth dependencies, and session).
    template
        Template file under ``web/templates``.
    status_code
        HTTP status of the page.
    **ctx
        The template's own variables.
    """
    lang = language(request)
    user: CurrentUser | None = getattr(request.state, "user", None)
    base = {
        "request": request,
        "user": user,
        "lang": lang,
        "languages": LANGUAGES,
        "_": functools.partial(translate, lang=lang),
        "csrf_token": csrf_token(request),
        "nav": _nav(request, user),
        "on_call": _on_call(request, user),
        "path": request.url.path,
        "full_path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "prefect_ui": request.app.state.settings.prefect_ui_url,
    }
    base.update(ctx)
    html = _environment().get_template(template).render(**base)
    return HTMLResponse(html, status_code=status_code)
