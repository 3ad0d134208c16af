"""Sign-in and sign-out, the language switch, the user's own page and API tokens, user admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlmodel import Session
from svomflow.web.auth import (
    ApiToken,
    CurrentUser,
    Role,
    SignInThrottle,
    UserError,
    add_user,
    authenticate,
    create_token,
    csrf_protect,
    remove_user,
    require_roles,
    revoke_token,
    sign_in,
    sign_out,
    tokens,
    users,
)
from svomflow.web.db import RowId, SessionDep
from svomflow.web.templating import LANGUAGES, NavItem, render, safe_next

__all__ = ["NAV", "router"]

router = APIRouter()
NAV = (NavItem("/admin/users", "Users", (Role.admin,), order=90),)


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    """Show the sign-in form."""
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", include_in_schema=False, dependencies=[Depends(csrf_protect)])
def login(
    request: Request,
    name: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    session: SessionDep,
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the name and password; start a session (the password is never logged)."""
    throttle: SignInThrottle = request.app.state.sign_in_throttle
    if throttle.blocked(name):
        return render(
            request,
            "login.html",
            status_code=429,
            next=safe_next(next),
            error="Too many failed sign-ins: wait a few minutes.",
        )
    user = authenticate(session, name, password)
    if user is None:
        throttle.failed(name)
        return render(
            request,
            "login.html",
            status_code=401,
            next=safe_next(next),
            error="Wrong name or password.",
        )
    throttle.succeeded(name)
    sign_in(request, user)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, user: Annotated[CurrentUser, Depends(require_roles())]) -> Response:
    """End the session."""
    sign_out(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/lang", include_in_schema=False)
def set_language(
    request: Request, set: Annotated[str, Query(pattern="^[a-z]{2}$")], next: str = "/"
) -> Response:
    """Switch the site's language (English or French) and go back."""
    if set not in LANGUAGES:
        raise HTTPException(404, f"no language {set!r}")
    request.session["lang"] = set
    return RedirectResponse(safe_next(next), status_code=303)


class Me(BaseModel):
    """Who the request acts as."""

    name: str
    roles: list[str]
    via: str


@router.get("/api/me", response_model=Me, tags=["account"])
def me(user: Annotated[CurrentUser, Depends(require_roles())]) -> Me:
    """Return the user the request acts as (check an API token with it)."""
    return Me(name=user.name, roles=sorted(user.roles), via=user.via)


def _my_tokens(session: Session, user: CurrentUser) -> list[ApiToken]:
    return [t for t, _ in tokens(session, user.name) if not t.revoked]


@router.get("/account", response_class=HTMLResponse, include_in_schema=False)
def account(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
) -> HTMLResponse:
    """Show the user's page: roles and API tokens."""
    return render(request, "account.html", tokens=_my_tokens(session, user), new_secret=None)


@router.post("/account/tokens", response_class=HTMLResponse, include_in_schema=False)
def new_token(
    request: Request,
    name: Annotated[str, Form(min_length=1, max_length=80)],
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
) -> HTMLResponse:
    """Make an API token for the user; its secret is shown this once."""
    _, secret = create_token(session, user.name, name)
    return render(request, "account.html", tokens=_my_tokens(session, user), new_secret=secret)


@router.post("/account/tokens/{token_id}/revoke", include_in_schema=False)
def revoke(
    token_id: RowId,
    user: Annotated[CurrentUser, Depends(require_roles())],
    session: SessionDep,
) -> Response:
    """Revoke one of the user's own tokens (an admin: anyone's)."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != user.id and not user.has(Role.admin)):
        raise HTTPException(404, "no such token")
    revoke_token(session, token_id)
    return RedirectResponse("/account", status_code=303)


@router.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
def users_page(
    request: Request,
    user: Annotated[CurrentUser, Depends(require_roles(Role.admin))],
    session: SessionDep,
) -> HTMLResponse:
    """Admin: the users and their roles."""
    return render(request, "users.html", users=users(session), roles=list(Role), error=None)


@router.post("/admin/users", response_class=HTMLResponse, include_in_schema=False)
def users_add(
    request: Request,
    name: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    roles: Annotated[list[str], Form()],
    user: Annotated[CurrentUser, Depends(require_roles(Role.admin))],
    session: SessionDep,
) -> Response:
    """Admin: add a user."""
    try:
        add_user(session, name, password, roles)
    except UserError as exc:
        return render(
            request,
            "users.html",
            status_code=400,
            users=users(session),
            roles=list(Role),
            error=str(exc),
        )
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{name}/remove", include_in_schema=False)
def users_remove(
    name: str,
    user: Annotated[CurrentUser, Depends(require_roles(Role.admin))],
    session: SessionDep,
) -> Response:
    """Admin: remove a user (not oneself)."""
    if name == user.name:
        raise HTTPException(400, "you cannot remove yourself")
    try:
        remove_user(session, name)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    return RedirectResponse("/admin/users", status_code=303)
