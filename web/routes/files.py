"""Product files over HTTP under ``/files``: the addresses the Prefect artifacts link to.

``product_link`` (flows/adapter.py) builds ``$SVOMFLOW_PRODUCTS_URL/<path under the products
root>`` and the flow commands set that variable to ``<site>/files``. Read-only (GET, HEAD),
for signed-in users who see the product's instrument; any path that resolves outside the
products root (``..``, encoded or not, an absolute path, a symbolic link) is refused (403).
``/_svomflow/root`` tells a starting command which products root this server serves.
"""

from __future__ import annotations

import hashlib
import mimetypes
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, PlainTextResponse
from sqlmodel import Session, select
from svomflow.operations.product_server import resolve_under
from svomflow.products.database import ProductRow
from svomflow.web.auth import CurrentUser, require_roles
from svomflow.web.db import SessionDep
from svomflow.web.visibility import can_see

__all__ = ["ROOT_ENDPOINT", "root_fingerprint", "router"]

router = APIRouter()
ROOT_ENDPOINT = "/_svomflow/root"


def root_fingerprint(root: str) -> str:
    """Return a fingerprint of a products root (the path itself is not disclosed)."""
    return hashlib.sha256(root.encode()).hexdigest()


@router.get(ROOT_ENDPOINT, include_in_schema=False)
def served_root(request: Request) -> PlainTextResponse:
    """Fingerprint of the products root served here (a starting command compares it)."""
    return PlainTextResponse(root_fingerprint(str(request.app.state.settings.products_root)))


def serve_product_file(
    request: Request, rel: str, user: CurrentUser, session: Session, attachment: bool = False
) -> FileResponse:
    """Return the file ``rel`` below the products root, if ``user`` may read it."""
    root = request.app.state.settings.products_root
    target = resolve_under(root, rel)
    if target is None:
        raise HTTPException(403, "outside the products root")
    if not target.is_file():
        raise HTTPException(404, "no such product file")
    row = session.exec(select(ProductRow).where(ProductRow.path == str(target))).first()
    # a file the database does not know is judged by its folder: <obs_id>/<instrument>/<file>
    parts = target.relative_to(root).parts
    instrument = row.instrument if row is not None else (parts[1] if len(parts) >= 3 else None)
    if instrument is not None and not can_see(user, instrument):
        raise HTTPException(403, "your role does not give access to this instrument")
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(
        target,
        media_type=kind,
        filename=target.name if attachment else None,
        content_disposition_type="attachment" if attachment else "inline",
    )


@router.api_route("/files/{rel:path}", methods=["GET", "HEAD"], include_in_schema=False)
def product_file(
    rel: str,
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
) -> FileResponse:
    """Send a product file, read-only (the product links of the Prefect artifacts)."""
    # the raw path, so that an encoded "%2e%2e" is judged as the client sent it
    raw = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
    return serve_product_file(request, raw.removeprefix("/files") or rel, user, session)
