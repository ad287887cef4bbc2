from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Note(SQLModel, table=True):
    """A note on a lead's timeline, by a person, by "sarah-bot" or by "reconciliation"."""

    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_contact_created", "contact_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    contact_id: int = Field(foreign_key="contacts.id")
    author_kind: str = Field(max_length=20)  # user | bot | system
    author_name: str = Field(max_length=120)  # a user's name, "sarah-bot", "reconciliation"
    user_id: int | None = Field(default=None, foreign_key="users.id")
    kind: str = Field(default="note", max_length=20)  # note | stale
    body: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
