from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class ReconciliationRun(SQLModel, table=True):
    """One reconciliation of one workspace: what it checked, found and flagged, or its error."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (Index("ix_reconciliation_runs_workspace", "workspace_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checked: int = Field(default=0)
    stale: int = Field(default=0)
    flagged: int = Field(default=0)
    duration_ms: int = Field(default=0)
    error: str | None = Field(default=None)


class WorkerHeartbeat(SQLModel, table=True):
    """The last sign of life of each background worker (or the in-process scheduler)."""

    __tablename__ = "worker_heartbeats"

    name: str = Field(primary_key=True, max_length=120)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    details: str | None = Field(default=None)
