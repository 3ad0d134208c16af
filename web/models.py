"""Tables of the site in the products database: users, API tokens, published events."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

__all__ = ["TABLES", "ApiToken", "Role", "User", "WebEvent"]


class Role(StrEnum):
    """What a user may see and do on the site."""

    svom_user = "svom_user"
    colibri_user = "colibri_user"
    coordinator = "coordinator"
    admin = "admin"


def _now() -> datetime:
    return datetime.now(UTC)


class User(SQLModel, table=True):
    """An account of the site."""

    __tablename__ = "web_users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    password_hash: str
    roles: str = Field(description="comma-separated Role values")
    active: bool = True
    created: datetime = Field(default_factory=_now)

    @property
    def role_set(self) -> frozenset[Role]:
        """The user's roles."""
        return frozenset(Role(r) for r in self.roles.split(",") if r)


class ApiToken(SQLModel, table=True):
    """A bearer token of a machine client, acting as its user (only its hash is kept)."""

    __tablename__ = "web_api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="web_users.id", index=True)
    name: str
    token_hash: str = Field(index=True, unique=True)
    created: datetime = Field(default_factory=_now)
    revoked: bool = False


class WebEvent(SQLModel, table=True):
    """An event published by any process for the open pages (kept a day)."""

    __tablename__ = "web_events"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created: datetime = Field(default_factory=_now, index=True)


#: The site's tables, created with the products database's (``web.db.engine_for``).
TABLES = (User, ApiToken, WebEvent)
