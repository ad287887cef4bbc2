from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKeyConstraint, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Contact(SQLModel, table=True):
    """A lead: one person writing to one workspace, keyed by phone or business-scoped user id."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "phone_e164", name="uq_contacts_workspace_phone"),
        UniqueConstraint("workspace_id", "bsuid", name="uq_contacts_workspace_bsuid"),
        Index("ix_contacts_board", "workspace_id", "last_activity_at", "id"),
        # One index per filter and sort the board offers: every view of 100,000 leads is a
        # short index walk, never a scan.
        Index("ix_contacts_ws_score", "workspace_id", text("coalesce(score, -1)"), "id"),
        # Scores follow temperature: "cold by score" walking the score index would pass every
        # hotter lead first.
        Index(
            "ix_contacts_ws_temp_score",
            "workspace_id",
            "temperature",
            text("coalesce(score, -1)"),
            "id",
        ),
        Index("ix_contacts_ws_created", "workspace_id", "created_at", "id"),
        Index("ix_contacts_ws_status", "workspace_id", "status", "last_activity_at", "id"),
        Index(
            "ix_contacts_ws_temperature", "workspace_id", "temperature", "last_activity_at", "id"
        ),
        Index("ix_contacts_ws_phase", "workspace_id", "phase", "last_activity_at", "id"),
        Index("ix_contacts_ws_owner", "workspace_id", "owner_user_id", "last_activity_at", "id"),
        Index(
            "ix_contacts_ws_needs_reply", "workspace_id", "needs_reply", "last_activity_at", "id"
        ),
        Index("ix_contacts_ws_business", "workspace_id", "business_type", "last_activity_at"),
        Index("ix_contacts_ws_location", "workspace_id", "location", "last_activity_at"),
        Index("ix_contacts_ws_hot", "workspace_id", "hot_since"),
        # "Stale" (?stale=1): only flagged leads are in it, so a board with none flagged is an
        # empty index walk instead of a scan of every lead (311 ms at 100,000 on SQLite).
        Index(
            "ix_contacts_ws_stale",
            "workspace_id",
            "last_activity_at",
            "id",
            sqlite_where=text("stale_flagged_at IS NOT NULL"),
            postgresql_where=text("stale_flagged_at IS NOT NULL"),
        ),
        ForeignKeyConstraint(["owner_user_id"], ["users.id"], name="fk_contacts_owner_user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    phone_e164: str | None = Field(default=None, max_length=20)
    bsuid: str | None = Field(default=None, max_length=80)
    username: str | None = Field(default=None, max_length=80)
    name: str | None = Field(default=None, max_length=200)
    profile_name: str | None = Field(default=None, max_length=200)
    status: str = Field(default="new", max_length=20)
    temperature: str | None = Field(default=None, max_length=10)
    score: int | None = Field(default=None)
    phase: str | None = Field(default=None, max_length=40)  # Sarah's conversation state
    business_type: str | None = Field(default=None, max_length=200)
    location: str | None = Field(default=None, max_length=200)  # domisili
    business_duration: str | None = Field(default=None, max_length=200)
    team_size: str | None = Field(default=None, max_length=100)
    pain_points: list[str] | None = Field(default=None, sa_type=JSON)
    goals: str | None = Field(default=None)
    priority: str | None = Field(default=None, max_length=200)
    urgency_level: str | None = Field(default=None, max_length=40)
    language: str | None = Field(default=None, max_length=10)
    owner_user_id: int | None = Field(default=None)
    hot_since: datetime | None = Field(default=None, sa_type=UTCDateTime)  # until replied/claimed
    stale_flagged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Their last message is newer than our last reply (kept on write, so the filter is indexed).
    needs_reply: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    # Lower-case name, profile name, username, business, location and phone digits, for search.
    # Indexed outside this model (migration 0005): contacts_fts (FTS5 trigram) on SQLite, a
    # pg_trgm GIN index on PostgreSQL.
    search_text: str = Field(default="", sa_column_kwargs={"server_default": ""})
    status_source: str = Field(
        default="system", max_length=20, sa_column_kwargs={"server_default": "system"}
    )  # system | bot | human
    status_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status_changed_by: str | None = Field(default=None, max_length=120)
    last_message_preview: str | None = Field(default=None, max_length=300)
    last_message_direction: str | None = Field(default=None, max_length=10)
    message_count: int = Field(default=0)
    last_activity_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_inbound_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_contact_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # our last outbound
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Conversation(SQLModel, table=True):
    """The provider's conversation (Kapso opens one per 24 h session window)."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id", name="uq_conversations_workspace_external"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    external_id: str = Field(max_length=80)
    status: str = Field(default="active", max_length=20)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_active_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Message(SQLModel, table=True):
    """One WhatsApp message, unique per workspace on its wamid; status only moves forward."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("workspace_id", "wamid", name="uq_messages_workspace_wamid"),
        Index("ix_messages_contact_sent", "contact_id", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    contact_id: int = Field(foreign_key="contacts.id")
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id")
    wamid: str = Field(max_length=200)
    direction: str = Field(max_length=10)
    message_type: str = Field(default="text", max_length=40)
    body: str = Field(default="")
    status: str = Field(default="received", max_length=20)
    status_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    error: str | None = Field(default=None)
    origin: str | None = Field(default=None, max_length=40)
    has_media: bool = Field(default=False)
    media_url: str | None = Field(default=None)
    sent_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LeadChange(SQLModel, table=True):
    """One real change of a lead's status, score or temperature: the timeline's history."""

    __tablename__ = "lead_changes"
    __table_args__ = (Index("ix_lead_changes_contact_created", "contact_id", "created_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    contact_id: int = Field(foreign_key="contacts.id")
    field: str = Field(max_length=20)  # status | score | temperature
    old_value: str | None = Field(default=None, max_length=40)
    new_value: str | None = Field(default=None, max_length=40)
    source: str = Field(max_length=20)  # bot | human | system
    actor: str = Field(max_length=120)  # "sarah-bot", a user's name, ...
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
