from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class SyncFailure(SQLModel, table=True):
    """A sync that failed without failing its caller, kept visible until someone resolves it."""

    __tablename__ = "sync_failures"
    __table_args__ = (
        Index("ix_sync_failures_workspace_id", "workspace_id", "id"),
        Index("ix_sync_failures_workspace_source", "workspace_id", "source", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    source: str = Field(max_length=40)  # sarah | kapso | reconciliation
    contact_phone: str | None = Field(default=None, max_length=40)
    error: str
    payload: str | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved: bool = Field(default=False)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
