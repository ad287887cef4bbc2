"""Statements of the write path, built once.

SQLAlchemy spends most of a small statement's time building it and computing its cache key; a
webhook runs about ten of them. Built once here with bound parameters and wrapped in `Prepared`,
each execution only binds values (on SQLite straight on the cursor, see app/prepared.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.leads.models import Contact, Conversation, Message
from app.prepared import Prepared

contacts = Contact.__table__  # type: ignore[attr-defined]
conversations = Conversation.__table__  # type: ignore[attr-defined]
messages = Message.__table__  # type: ignore[attr-defined]

CONTACT_COLUMNS = (
    contacts.c.id,
    contacts.c.phone_e164,
    contacts.c.bsuid,
    contacts.c.username,
    contacts.c.profile_name,
    contacts.c.last_activity_at,
    contacts.c.last_inbound_at,
    contacts.c.last_contact_at,
)
CONTACT_BY_PHONE = Prepared(
    select(*CONTACT_COLUMNS)
    .where(contacts.c.workspace_id == bindparam("ws"), contacts.c.phone_e164 == bindparam("key"))
    .with_for_update()
)
CONTACT_BY_BSUID = Prepared(
    select(*CONTACT_COLUMNS)
    .where(contacts.c.workspace_id == bindparam("ws"), contacts.c.bsuid == bindparam("key"))
    .with_for_update()
)
CONVERSATION_BY_REF = Prepared(
    select(conversations.c.id, conversations.c.last_active_at).where(
        conversations.c.workspace_id == bindparam("ws"),
        conversations.c.external_id == bindparam("ref"),
    )
)
CONVERSATION_TOUCH = Prepared(
    update(conversations)
    .where(conversations.c.id == bindparam("_id"))
    .values(last_active_at=bindparam("at"))
)
MESSAGE_BY_WAMID = Prepared(
    select(
        messages.c.id, messages.c.contact_id, messages.c.status, messages.c.body, messages.c.error
    ).where(messages.c.workspace_id == bindparam("ws"), messages.c.wamid == bindparam("wamid"))
)

_NEW_CONTACT = (
    "workspace_id",
    "phone_e164",
    "bsuid",
    "username",
    "profile_name",
    "search_text",
    "status",
    "message_count",
    "last_activity_at",
    "created_at",
    "updated_at",
)
_NEW_CONVERSATION = (
    "workspace_id",
    "contact_id",
    "external_id",
    "status",
    "started_at",
    "last_active_at",
)
_NEW_MESSAGE = (
    "workspace_id",
    "contact_id",
    "conversation_id",
    "wamid",
    "direction",
    "message_type",
    "body",
    "status",
    "status_at",
    "error",
    "origin",
    "has_media",
    "media_url",
    "sent_at",
    "created_at",
)


def _insert(dialect: str, table: Any) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@lru_cache(maxsize=8)
def insert_contact(dialect: str, key: str) -> Prepared:
    """INSERT a lead unless one with this phone (key="phone_e164") or bsuid exists."""
    return Prepared(
        _insert(dialect, contacts)
        .values({c: bindparam(c) for c in _NEW_CONTACT})
        .on_conflict_do_nothing(index_elements=["workspace_id", key])
    )


@lru_cache(maxsize=4)
def insert_conversation(dialect: str) -> Prepared:
    return Prepared(
        _insert(dialect, conversations)
        .values({c: bindparam(c) for c in _NEW_CONVERSATION})
        .on_conflict_do_nothing(index_elements=["workspace_id", "external_id"])
        .returning(conversations.c.id)
    )


@lru_cache(maxsize=4)
def insert_message(dialect: str) -> Prepared:
    return Prepared(
        _insert(dialect, messages)
        .values({c: bindparam(c) for c in _NEW_MESSAGE})
        .on_conflict_do_nothing(index_elements=["workspace_id", "wamid"])
        .returning(messages.c.id)
    )


@lru_cache(maxsize=256)
def update_contact(columns: frozenset[str], increment_messages: bool) -> Prepared:
    """UPDATE contacts SET <these columns> [, message_count = message_count + 1] WHERE id."""
    values: dict[str, Any] = {c: bindparam(c) for c in sorted(columns)}
    if increment_messages:
        values["message_count"] = contacts.c.message_count + 1
    return Prepared(update(contacts).where(contacts.c.id == bindparam("_id")).values(values))


@lru_cache(maxsize=64)
def update_message(columns: frozenset[str]) -> Prepared:
    return Prepared(
        update(messages)
        .where(messages.c.id == bindparam("_id"))
        .values({c: bindparam(c) for c in sorted(columns)})
    )
