from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class SarahState(SQLModel, table=True):
    """The bot's conversation state, stored as the bot sent it (the seed's sarahConversations)."""

    __tablename__ = "sarah_states"
    __table_args__ = (
        UniqueConstraint("workspace_id", "contact_phone", name="uq_sarah_workspace_phone"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    contact_phone: str = Field(max_length=20)
    state: str = Field(default="greeting", max_length=40)
    lead_score: int = Field(default=0)
    lead_temperature: str = Field(default="cold", max_length=20)
    extracted_data: dict = Field(default_factory=dict, sa_type=JSON)
    language: str = Field(default="id", max_length=10)
    message_count: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
