from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Workspace(SQLModel, table=True):
    """One sales team: its WhatsApp number, its secrets and everything its leads own."""

    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("sarah_key_hash", name="uq_workspaces_sarah_key_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    slug: str = Field(max_length=120, unique=True)
    kapso_phone_number_id: str | None = Field(default=None, max_length=64, unique=True)
    webhook_secret: str = Field(max_length=200)
    meta_app_secret: str | None = Field(default=None, max_length=200)
    meta_verify_token: str | None = Field(default=None, max_length=200)
    sarah_key_hash: str | None = Field(default=None, max_length=64)  # sha256 hex of the bot's key
    stale_threshold_minutes: int = Field(default=60, sa_column_kwargs={"server_default": "60"})
    reconcile_flag_limit: int = Field(default=50, sa_column_kwargs={"server_default": "50"})
    timezone: str = Field(default="Asia/Jakarta", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    """A workspace's token for the JSON API; only its hash is kept, the token is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_api_tokens_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id", index=True)
    name: str = Field(max_length=120)
    token_hash: str = Field(max_length=64)
    prefix: str = Field(max_length=16)  # shown in lists so people can tell tokens apart
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
