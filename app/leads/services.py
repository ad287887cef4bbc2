"""Applying what webhooks say to leads, conversations and messages.

Rules that live here and nowhere else:
- a lead is found by (workspace, E.164 phone), else by (workspace, business-scoped user id);
- a message is unique per workspace on its wamid, so a redelivery under a new key changes nothing;
- a message's status never moves backwards (read > delivered > failed > sent);
- last_activity_at follows every message in or out, last_contact_at our outbound ones,
  last_inbound_at theirs (the WhatsApp 24-hour window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, update

from app.db import utcnow
from app.ingest.records import (
    STATUS_RANK,
    ConversationRecord,
    IdentityRecord,
    LeadRef,
    MessageRecord,
    Record,
    StatusRecord,
)
from app.leads import statements as st
from app.leads.models import Contact, Conversation, Message
from app.prepared import Prepared

contacts = Contact.__table__  # type: ignore[attr-defined]
conversations = Conversation.__table__  # type: ignore[attr-defined]
messages = Message.__table__  # type: ignore[attr-defined]

PREVIEW_CHARS = 280
CONVERSATION_TOUCH_EVERY = timedelta(minutes=1)
SEARCH_FIELDS = frozenset(
    {"name", "profile_name", "username", "phone_e164", "business_type", "location"}
)
# Outbound messages a person sent (the WhatsApp Business app), as opposed to the bot's API sends.
HUMAN_ORIGINS = frozenset({"business_app"})


def _not_future(at: datetime, now: datetime) -> datetime:
    return min(at, now)


def preview_of(body: str) -> str:
    text = " ".join(body.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


@dataclass(slots=True)
class ApplyResult:
    """Which leads a delivery touched (one change event each) and what it did."""

    contact_ids: list[int] = field(default_factory=list)
    new_messages: int = 0
    duplicate_messages: int = 0
    status_updates: int = 0

    def touch(self, contact_id: int) -> None:
        if contact_id not in self.contact_ids:
            self.contact_ids.append(contact_id)


def apply_records(conn: Connection, workspace_id: int, records: list[Record]) -> ApplyResult:
    result = ApplyResult()
    for record in records:
        if isinstance(record, MessageRecord):
            _apply_message(conn, workspace_id, record, result)
        elif isinstance(record, StatusRecord):
            _apply_status(conn, workspace_id, record, result)
        elif isinstance(record, ConversationRecord):
            _apply_conversation(conn, workspace_id, record, result)
        elif isinstance(record, IdentityRecord):
            _apply_identity(conn, workspace_id, record, result)
    return result


def _find_contact(conn: Connection, workspace_id: int, lead: LeadRef) -> Any:
    """The lead's row, locked for this transaction (PostgreSQL; SQLite serialises writers)."""
    if lead.phone_e164:
        row = st.CONTACT_BY_PHONE.first(conn, {"ws": workspace_id, "key": lead.phone_e164})
        if row is not None:
            return row
    if lead.bsuid:
        return st.CONTACT_BY_BSUID.first(conn, {"ws": workspace_id, "key": lead.bsuid})
    return None


def find_or_create_contact(conn: Connection, workspace_id: int, lead: LeadRef, at: datetime) -> Any:
    """The lead's row (id and activity columns); created when this is its first appearance."""
    row = _find_contact(conn, workspace_id, lead)
    if row is not None:
        return row
    now = utcnow()
    key = "phone_e164" if lead.phone_e164 else "bsuid"
    st.insert_contact(conn.dialect.name, key).run(
        conn,
        {
            "workspace_id": workspace_id,
            "phone_e164": lead.phone_e164,
            "bsuid": lead.bsuid,
            "username": lead.username,
            "profile_name": lead.profile_name,
            "search_text": search_text_for(
                profile_name=lead.profile_name, username=lead.username, phone_e164=lead.phone_e164
            ),
            "status": "new",
            "message_count": 0,
            "last_activity_at": _not_future(at, now),
            "created_at": now,
            "updated_at": now,
        },
    )
    # Read back by key: also right when a concurrent delivery inserted the same lead first.
    return _find_contact(conn, workspace_id, lead)


def _identity_updates(row: Any, lead: LeadRef) -> dict[str, Any]:
    """Fill what the contact lacks; a newer profile name replaces the old one."""
    values: dict[str, Any] = {}
    if lead.phone_e164 and not row.phone_e164:
        values["phone_e164"] = lead.phone_e164
    if lead.bsuid and lead.bsuid != row.bsuid:
        values["bsuid"] = lead.bsuid
    if lead.username and lead.username != row.username:
        values["username"] = lead.username
    if lead.profile_name and lead.profile_name != row.profile_name:
        values["profile_name"] = lead.profile_name
    return values


def _conversation_id(
    conn: Connection, workspace_id: int, contact_id: int, ref: str | None, at: datetime
) -> int | None:
    if not ref:
        return None
    found = st.CONVERSATION_BY_REF.first(conn, {"ws": workspace_id, "ref": ref})
    if found is not None:
        # To the minute: a burst of messages does not rewrite the row every time.
        if at - found.last_active_at > CONVERSATION_TOUCH_EVERY:
            st.CONVERSATION_TOUCH.run(conn, {"_id": found.id, "at": at})
        return int(found.id)
    created = st.insert_conversation(conn.dialect.name).first(
        conn,
        {
            "workspace_id": workspace_id,
            "contact_id": contact_id,
            "external_id": ref,
            "status": "active",
            "started_at": at,
            "last_active_at": at,
        },
    )
    if created is not None:
        return int(created.id)
    # A concurrent delivery created it first.
    again = st.CONVERSATION_BY_REF.first(conn, {"ws": workspace_id, "ref": ref})
    return int(again.id)


def _apply_message(
    conn: Connection, workspace_id: int, record: MessageRecord, result: ApplyResult
) -> None:
    now = utcnow()
    sent_at = _not_future(record.sent_at, now)
    contact = find_or_create_contact(conn, workspace_id, record.lead, sent_at)
    if contact is None:
        return
    conversation_id = _conversation_id(
        conn, workspace_id, contact.id, record.conversation_ref, sent_at
    )
    inserted = st.insert_message(conn.dialect.name).first(
        conn,
        {
            "workspace_id": workspace_id,
            "contact_id": contact.id,
            "conversation_id": conversation_id,
            "wamid": record.wamid,
            "direction": record.direction,
            "message_type": record.message_type,
            "body": record.body,
            "status": record.status,
            "status_at": _not_future(record.status_at, now),
            "error": record.error,
            "origin": record.origin,
            "has_media": record.has_media,
            "media_url": record.media_url,
            "sent_at": sent_at,
            "created_at": now,
        },
    )
    contact_values = _identity_updates(contact, record.lead)
    if inserted is None:
        # Known wamid: a redelivery, or a later status of a message we already have.
        changed = _advance_message(conn, workspace_id, record, now)
        if changed:
            result.status_updates += 1
        else:
            result.duplicate_messages += 1
        if changed or contact_values:
            _update_contact(conn, contact.id, contact_values, now)
            result.touch(contact.id)
        return
    result.new_messages += 1
    contact_values.update(
        _activity_updates(contact, record.direction, record.body, sent_at, record.origin)
    )
    _update_contact(conn, contact.id, contact_values, now, new_message=True)
    result.touch(contact.id)


def _activity_updates(
    contact: Any, direction: str, body: str, at: datetime, origin: str | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if at >= contact.last_activity_at:
        values["last_activity_at"] = at
        if body:
            values["last_message_preview"] = preview_of(body)
            values["last_message_direction"] = direction
    if direction == "inbound":
        if contact.last_inbound_at is None or at > contact.last_inbound_at:
            values["last_inbound_at"] = at
        if contact.last_contact_at is None or at > contact.last_contact_at:
            values["needs_reply"] = True
    else:
        if contact.last_contact_at is None or at > contact.last_contact_at:
            values["last_contact_at"] = at
        if contact.last_inbound_at is None or at >= contact.last_inbound_at:
            values["needs_reply"] = False
        if origin in HUMAN_ORIGINS:
            values["hot_since"] = None  # a person answered the hot lead
    return values


def _update_contact(
    conn: Connection,
    contact_id: int,
    values: dict[str, Any],
    now: datetime,
    *,
    new_message: bool = False,
) -> None:
    values["updated_at"] = now
    statement = st.update_contact(frozenset(values), new_message)
    statement.run(conn, {**values, "_id": contact_id})
    if SEARCH_FIELDS.intersection(values):
        refresh_search_text(conn, contact_id)


def _search_text_sql() -> Any:
    c = contacts.c
    parts = [
        func.coalesce(c.name, ""),
        func.coalesce(c.profile_name, ""),
        func.coalesce(c.username, ""),
        func.coalesce(c.business_type, ""),
        func.coalesce(c.location, ""),
        func.replace(func.coalesce(c.phone_e164, ""), "+", ""),
    ]
    expr: Any = parts[0]
    for part in parts[1:]:
        expr = expr.concat(" ").concat(part)
    return func.lower(expr)


def search_text_for(
    *,
    name: str | None = None,
    profile_name: str | None = None,
    username: str | None = None,
    business_type: str | None = None,
    location: str | None = None,
    phone_e164: str | None = None,
) -> str:
    """The same text _search_text_sql() builds, for rows written from Python."""
    parts = [
        name,
        profile_name,
        username,
        business_type,
        location,
        (phone_e164 or "").replace("+", ""),
    ]
    return " ".join(p or "" for p in parts).lower()


def refresh_search_text(conn: Connection, contact_id: int) -> None:
    """Recompute after a searchable field changed (a second UPDATE sees the new values)."""
    _REFRESH_SEARCH_TEXT.run(conn, {"_id": contact_id})


def _advance_message(
    conn: Connection, workspace_id: int, record: MessageRecord | StatusRecord, now: datetime
) -> bool:
    """Move a known message's status forward; fill a body we did not have. True if it changed."""
    current = st.MESSAGE_BY_WAMID.first(conn, {"ws": workspace_id, "wamid": record.wamid})
    if current is None:
        return False
    values: dict[str, Any] = {}
    if STATUS_RANK.get(record.status, 0) > STATUS_RANK.get(current.status, 0):
        values["status"] = record.status
        values["status_at"] = _not_future(record.status_at, now)
    if record.error and record.error != current.error:
        values["error"] = record.error  # a failure is kept even when a later status outranks it
    if isinstance(record, MessageRecord) and record.body and not current.body:
        values["body"] = record.body
        values["message_type"] = record.message_type
    if not values:
        return False
    st.update_message(frozenset(values)).run(conn, {**values, "_id": current.id})
    return True


def _apply_status(
    conn: Connection, workspace_id: int, record: StatusRecord, result: ApplyResult
) -> None:
    now = utcnow()
    found = st.MESSAGE_BY_WAMID.first(conn, {"ws": workspace_id, "wamid": record.wamid})
    contact_id = found.contact_id if found is not None else None
    if contact_id is not None:
        if _advance_message(conn, workspace_id, record, now):
            result.status_updates += 1
            result.touch(contact_id)
        else:
            result.duplicate_messages += 1
        return
    # A status for a message sent outside our view (or before its own webhook): keep a placeholder
    # so the status is not lost; the message body fills in if it arrives later.
    placeholder = MessageRecord(
        wamid=record.wamid,
        direction="outbound",
        lead=record.lead,
        phone_number_id=record.phone_number_id,
        message_type="unknown",
        body="",
        sent_at=record.status_at,
        status=record.status,
        status_at=record.status_at,
        conversation_ref=record.conversation_ref,
        error=record.error,
    )
    _apply_message(conn, workspace_id, placeholder, result)
    result.status_updates += 1
    result.new_messages -= 1


def _apply_conversation(
    conn: Connection, workspace_id: int, record: ConversationRecord, result: ApplyResult
) -> None:
    now = utcnow()
    at = _not_future(record.at, now)
    contact = find_or_create_contact(conn, workspace_id, record.lead, at)
    if contact is None:
        return
    conversation_id = _conversation_id(conn, workspace_id, contact.id, record.conversation_ref, at)
    values: dict[str, Any] = {}
    if record.event == "ended":
        values = {"status": "ended", "ended_at": at}
    elif record.event == "inactive":
        values = {"status": "inactive"}
    elif record.status:
        values = {"status": record.status}
    if values and conversation_id is not None:
        conn.execute(
            update(conversations).where(conversations.c.id == conversation_id).values(**values)
        )
    identity = _identity_updates(contact, record.lead)
    if identity:
        _update_contact(conn, contact.id, identity, now)
    result.touch(contact.id)


def _apply_identity(
    conn: Connection, workspace_id: int, record: IdentityRecord, result: ApplyResult
) -> None:
    lookup = LeadRef(
        phone_e164=record.lead.phone_e164, bsuid=record.previous_bsuid or record.lead.bsuid
    )
    contact = _find_contact(conn, workspace_id, lookup)
    if contact is None:
        contact = find_or_create_contact(conn, workspace_id, record.lead, record.at)
        if contact is None:
            return
    values = _identity_updates(contact, record.lead)
    if values:
        _update_contact(conn, contact.id, values, utcnow())
        result.touch(contact.id)


_REFRESH_SEARCH_TEXT = Prepared(
    update(contacts).where(contacts.c.id == bindparam("_id")).values(search_text=_search_text_sql())
)
