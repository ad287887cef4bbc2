from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class WebhookInbox(SQLModel, table=True):
    """Every accepted delivery, raw, before processing: nothing a provider sent us is lost."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("provider", "delivery_key", name="uq_inbox_provider_key"),
        Index("ix_inbox_unprocessed", "processed_at", "id"),
        Index("ix_inbox_workspace_received", "workspace_id", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    provider: str = Field(max_length=10)  # kapso | meta
    delivery_key: str = Field(max_length=120)  # X-Idempotency-Key, or the body's sha256 (Meta)
    event_type: str = Field(max_length=80)
    body: str
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = Field(default=0)
    error: str | None = Field(default=None)
    duplicates: int = Field(default=0)  # redeliveries of the same key, acknowledged and dropped
