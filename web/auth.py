"""Accounts of the site: users with roles, argon2 password hashes, API tokens, CSRF.

A browser signs in with a name and password and gets a signed session cookie
(itsdangerous, through Starlette's session middleware); a machine client sends
``Authorization: Bearer <token>`` with a token made by ``svomflow web token create``
(only its SHA-256 is stored: the token is 256 random bits, so a slow hash adds nothing).
Every state-changing request made with the session cookie carries the session's CSRF
token (form field ``csrf_token`` or header ``X-CSRF-Token``); token clients have no cookie
to abuse and need none.

Roles: ``svom_user`` sees the SVOM instruments' pages, ``colibri_user`` the COLIBRI ones
(as the GIC separates them), ``coordinator`` both, and edits the duty roster, ``admin``
everything. A user may hold several roles.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from sqlmodel import Session, col, select
from svomflow.errors import SvomflowError
from svomflow.web.db import get_session
from svomflow.web.models import ApiToken, Role, User

__all__ = [
    "ANY_ROLE",
    "COLIBRI_ROLES",
    "SVOM_ROLES",
    "ApiToken",
    "CurrentUser",
    "Role",
    "SignInRequired",
    "SignInThrottle",
    "User",
    "UserError",
    "add_user",
    "authenticate",
    "create_token",
    "csrf_protect",
    "csrf_token",
    "current_user",
    "ensure_first_admin",
    "optional_user",
    "remove_user",
    "require_roles",
    "revoke_token",
    "set_password",
    "set_roles",
    "sign_in",
    "sign_out",
    "tokens",
    "users",
]

MIN_PASSWORD_LENGTH = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_HASHER = PasswordHasher()
# verified against when the name is unknown, so both answers take the same time
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class UserError(SvomflowError):
    """A user-management request that cannot be done (unknown user, weak password, ...)."""


#: Roles that see the SVOM instruments' pages (admin passes every check anyway).
SVOM_ROLES = (Role.svom_user, Role.coordinator)
#: Roles that see the COLIBRI pages.
COLIBRI_ROLES = (Role.colibri_user, Role.coordinator)
#: Any signed-in user.
ANY_ROLE = tuple(Role)


@dataclass(frozen=True)
class CurrentUser:
    """The user a request acts as, and how it proved it."""

    id: int
    name: str
    roles: frozenset[Role]
    via: str  # "session" or "token"

    def has(self, *roles: Role | str) -> bool:
        """Return whether the user holds one of ``roles`` (admins hold them all)."""
        return Role.admin in self.roles or any(Role(r) in self.roles for r in roles)


class SignInRequired(Exception):
    """Raised by a dependency when the request has no user: HTML gets the sign-in page."""


def _stamp(password_hash: str) -> str:
    """Return a short fingerprint of the password hash: a password change ends older sessions."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(
            f"user name {name!r}: 1-64 letters, digits or '_.@-', starting with a letter or digit"
        )
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def _roles_text(roles: Iterable[Role | str]) -> str:
    try:
        parsed = sorted({Role(r) for r in roles})
    except ValueError as exc:
        raise UserError(f"{exc}; roles: {', '.join(Role)}") from None
    if not parsed:
        raise UserError(f"give at least one role ({', '.join(Role)})")
    return ",".join(parsed)


def add_user(session: Session, name: str, password: str, roles: Iterable[Role | str]) -> User:
    """Create a user with an argon2 hash of ``password``; refuse a taken name or weak password."""
    _check_name(name)
    _check_password(password)
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise UserError(f"user {name!r} already exists")
    user = User(name=name, password_hash=_HASHER.hash(password), roles=_roles_text(roles))
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def _get(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise UserError(f"no user {name!r}")
    return user


def set_password(session: Session, name: str, password: str) -> User:
    """Replace a user's password (their open sessions end)."""
    _check_password(password)
    user = _get(session, name)
    user.password_hash = _HASHER.hash(password)
    session.add(user)
    session.commit()
    return user


def set_roles(session: Session, name: str, roles: Iterable[Role | str]) -> User:
    """Replace a user's roles."""
    user = _get(session, name)
    user.roles = _roles_text(roles)
    session.add(user)
    session.commit()
    return user


def remove_user(session: Session, name: str) -> None:
    """Delete a user and their API tokens."""
    user = _get(session, name)
    for tok in session.exec(select(ApiToken).where(ApiToken.user_id == user.id)):
        session.delete(tok)
    session.delete(user)
    session.commit()


def users(session: Session) -> list[User]:
    """Return every user, by name."""
    return list(session.exec(select(User).order_by(User.name)))


class SignInThrottle:
    """Refuse sign-ins for a name after ``limit`` failures within ``window_s`` (per server).

    Slows password guessing down to a few tries per window; a success clears the count.
    """

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, name: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(name.lower(), []) if now - t < self.window_s]
        self._failures[name.lower()] = kept
        return kept

    def blocked(self, name: str) -> bool:
        """Return whether sign-ins for ``name`` are refused now."""
        with self._lock:
            return len(self._recent(name, time.monotonic())) >= self.limit

    def failed(self, name: str) -> None:
        """Count a failed sign-in for ``name``."""
        with self._lock:
            self._recent(name, time.monotonic()).append(time.monotonic())

    def succeeded(self, name: str) -> None:
        """Clear the failures of ``name``."""
        with self._lock:
            self._failures.pop(name.lower(), None)


def authenticate(session: Session, name: str, password: str) -> User | None:
    """Return the active user whose password this is, else None (same work either way)."""
    user = session.exec(select(User).where(User.name == name)).first()
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _HASHER.check_needs_rehash(user.password_hash):  # parameters raised since
        user.password_hash = _HASHER.hash(password)
        session.add(user)
        session.commit()
    return user


def create_token(session: Session, user_name: str, name: str) -> tuple[ApiToken, str]:
    """Make an API token for a user; return it and its secret (shown once, never stored)."""
    user = _get(session, user_name)
    assert user.id is not None
    secret = "svf_" + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_token_hash(secret))
    session.add(token)
    session.commit()
    session.refresh(token)
    return token, secret


def tokens(session: Session, user_name: str | None = None) -> list[tuple[ApiToken, str]]:
    """Return API tokens with their user's name (of one user when given)."""
    stmt = select(ApiToken, User).where(ApiToken.user_id == User.id)
    if user_name:
        stmt = stmt.where(User.name == user_name)
    return [(t, u.name) for t, u in session.exec(stmt.order_by(col(ApiToken.id)))]


def revoke_token(session: Session, token_id: int) -> None:
    """Revoke an API token (kept, marked revoked, so its use is refused and seen)."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise UserError(f"no API token {token_id}")
    token.revoked = True
    session.add(token)
    session.commit()


def sign_in(request: Request, user: User) -> None:
    """Start a browser session for ``user`` (a fresh CSRF token with it)."""
    lang = request.session.get("lang")
    request.session.clear()
    request.session.update(
        uid=user.id, stamp=_stamp(user.password_hash), csrf=secrets.token_urlsafe(32)
    )
    if lang:
        request.session["lang"] = lang


def sign_out(request: Request) -> None:
    """End the browser session (the language choice stays)."""
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang


def csrf_token(request: Request) -> str:
    """Return the session's CSRF token, making one for a new session."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def _from_token(request: Request, session: Session) -> CurrentUser | None:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return None
    row = session.exec(
        select(ApiToken, User)
        .where(ApiToken.token_hash == _token_hash(secret.strip()))
        .where(ApiToken.user_id == User.id)
    ).first()
    if row is None:
        raise HTTPException(401, "invalid API token", headers={"WWW-Authenticate": "Bearer"})
    token, user = row
    if token.revoked or not user.active:
        raise HTTPException(401, "revoked API token", headers={"WWW-Authenticate": "Bearer"})
    assert user.id is not None
    return CurrentUser(user.id, user.name, user.role_set, "token")


def _identify(request: Request, session: Session) -> CurrentUser | None:
    by_token = _from_token(request, session)
    if by_token is not None:
        return by_token
    uid = request.session.get("uid")
    if uid is None:
        return None
    user = session.get(User, uid)
    if (
        user is None
        or not user.active
        or request.session.get("stamp") != _stamp(user.password_hash)
    ):
        sign_out(request)
        return None
    assert user.id is not None
    return CurrentUser(user.id, user.name, user.role_set, "session")


def optional_user(
    request: Request, session: Annotated[Session, Depends(get_session)]
) -> CurrentUser | None:
    """FastAPI dependency: the request's user (bearer token, else session cookie), or None.

    Also kept on ``request.state.user`` for the page layout.
    """
    user = _identify(request, session)
    request.state.user = user
    return user


async def _check_csrf(request: Request) -> None:
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        kind = request.headers.get("content-type", "")
        if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # cached: the endpoint reads the same form
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise HTTPException(403, "missing or wrong CSRF token (reload the page)")


async def csrf_protect(request: Request) -> None:
    """FastAPI dependency: refuse a cookie-authenticated state change without the CSRF token.

    Requests with a bearer token are exempt (a browser never adds one by itself).
    """
    if request.method in _UNSAFE_METHODS and not request.headers.get("authorization"):
        await _check_csrf(request)


def current_user(user: Annotated[CurrentUser | None, Depends(optional_user)]) -> CurrentUser:
    """FastAPI dependency: the signed-in user; anonymous requests must sign in."""
    if user is None:
        raise SignInRequired()
    return user


def require_roles(*roles: Role | str) -> Callable[..., Any]:
    """Return a dependency admitting users with one of ``roles`` (admins always).

    Anonymous requests get the sign-in page (HTML) or 401 (API), users without the role
    403; a state-changing request made with the session cookie must carry the CSRF token.
    """
    wanted = tuple(Role(r) for r in roles) or ANY_ROLE

    async def dependency(
        request: Request, user: Annotated[CurrentUser, Depends(current_user)]
    ) -> CurrentUser:
        if not user.has(*wanted):
            raise HTTPException(403, "your role does not give access to this page")
        if request.method in _UNSAFE_METHODS and user.via == "session":
            await _check_csrf(request)
        return user

    return dependency


def ensure_first_admin(session: Session, password_file: Path, name: str = "admin") -> bool:
    """Create the first admin with a generated password when the site has no user at all.

    The password is written to ``password_file`` (mode 0600) for the person who ran the
    demo to read; there is no default password. Returns whether the admin was created now.
    """
    if session.exec(select(User)).first() is not None:
        return False
    password = secrets.token_urlsafe(12)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    add_user(session, name, password, [Role.admin])
    return True
