from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class User(SQLModel, table=True):
    """A person on a sales team: owns leads, writes notes, changes statuses."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    name: str = Field(max_length=120)
    password_hash: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Membership(SQLModel, table=True):
    """A user's place in a workspace: admin (settings, keys, users) or agent (board, notes)."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "workspace_id", name="uq_memberships_user_ws"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    workspace_id: int = Field(foreign_key="workspaces.id", index=True)
    role: str = Field(default="agent", max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
