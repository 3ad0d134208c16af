"""The instrument-centre site as a FastAPI application (``create_app``).

Every page family is a router module listed in :data:`ROUTERS` (each defines ``router``
and may list navigation entries in ``NAV``); the live-update stream is
:mod:`svomflow.web.events`. Static files (the site's CSS and JavaScript, Plotly.js from
the installed ``plotly`` package and Swagger UI's assets from ``fastapi-offline``: the site,
its API viewer included, works without internet) are under ``/static``.
"""

from __future__ import annotations

import importlib
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from svomflow.web.auth import SignInRequired, SignInThrottle
from svomflow.web.db import engine_for
from svomflow.web.settings import WebSettings
from svomflow.web.templating import NavItem

__all__ = ["ROUTERS", "create_app"]

#: Router modules of the site, in navigation order.
ROUTERS: tuple[str, ...] = (
    "svomflow.web.routes.account",
    "svomflow.web.routes.home",
    "svomflow.web.routes.files",
    "svomflow.web.routes.products",
    "svomflow.web.routes.status",
    "svomflow.web.routes.housekeeping",
    "svomflow.web.routes.alarms",
    "svomflow.web.routes.calibration",
    "svomflow.web.routes.planning",
    "svomflow.web.routes.strategies",
    "svomflow.web.routes.duty",
    "svomflow.web.routes.science",
)

HERE = Path(__file__).resolve().parent  # the real files (an editable install links them)
SECURITY_HEADERS = {
    # scripts and styles of the site only: an injected <script> does not run
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
#: Swagger UI's files served under ``/static/swagger-ui/`` (from the fastapi-offline package).
SWAGGER_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
# the API viewer: Swagger UI started by the site's own script (the CSP has no inline script)
API_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - REST API</title>
<link rel="stylesheet" href="/static/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script></body></html>
"""


class _SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to every response (pure ASGI: streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        wanted = SECURITY_HEADERS

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.decode().lower() for k, _ in headers}
                for k, v in wanted.items():
                    if k not in present:
                        headers.append((k.encode(), v.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not request.headers.get(
        "authorization"
    )


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _swagger_asset(name: str) -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static" / name


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """Return the site's application for ``settings`` (default: this home's).

    Parameters
    ----------
    settings
        Database, products root, session key, Prefect UI address.
    """
    settings = settings or WebSettings()
    app = FastAPI(
        title="svomflow instrument centre",
        description="Products, housekeeping, alarms, calibration history, duty roster, "
        "plannings and observing strategies of the SVOM ECLAIRs and COLIBRI instrument centre.",
        version=_version(),
        docs_url=None,  # served below from local files, not from Swagger UI's CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine_for(settings.database_url)
    app.state.sign_in_throttle = SignInThrottle()
    nav: list[NavItem] = []
    from svomflow.web import events

    app.include_router(events.router)
    for name in ROUTERS:
        module = importlib.import_module(name)
        app.include_router(module.router)
        nav.extend(getattr(module, "NAV", ()))
    app.state.nav = sorted(nav, key=lambda i: i.order)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        """Plotly.js from the installed plotly package (no CDN)."""
        return FileResponse(
            _plotly_js(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/static/swagger-ui/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> FileResponse:
        """Swagger UI's script and style sheet from the installed fastapi-offline (no CDN)."""
        if name not in SWAGGER_ASSETS:
            raise HTTPException(404, "not found")
        return FileResponse(
            _swagger_asset(name),
            media_type=SWAGGER_ASSETS[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        """Show the REST API in Swagger UI, read from the site's OpenAPI schema."""
        from html import escape

        return HTMLResponse(
            API_DOCS_HTML.format(title=escape(app.title), openapi=escape(app.openapi_url or ""))
        )

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, exc: SignInRequired) -> Response:
        if _wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            from urllib.parse import quote

            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        return JSONResponse(
            {"detail": "sign in or send an API token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _wants_html(request) and exc.status_code in (403, 404):
            from svomflow.web.templating import render

            return render(
                request,
                "error.html",
                status_code=exc.status_code,
                code=exc.status_code,
                detail=str(exc.detail),
            )
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="svomflow_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(_SecurityHeaders)
    return app


def _version() -> str:
    from svomflow import __version__

    return str(__version__)
