"""What a webhook delivery means, independent of the provider that sent it.

Parsers (kapso.py, meta.py) turn a provider's body into these records; services.py applies them to
the database. Nothing here knows about HTTP or SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Direction = Literal["inbound", "outbound"]
# Delivery states of a message, in the order they can only move forward. "failed" is recorded
# whenever it comes but never overwrites "read".
STATUS_RANK: dict[str, int] = {
    "pending": 0,
    "received": 1,
    "sent": 1,
    "failed": 2,
    "delivered": 3,
    "read": 4,
}


@dataclass(frozen=True, slots=True)
class LeadRef:
    """Who the lead is: an E.164 phone, or the business-scoped user id when the phone is hidden."""

    phone_e164: str | None = None
    bsuid: str | None = None
    username: str | None = None
    profile_name: str | None = None

    @property
    def is_known(self) -> bool:
        return bool(self.phone_e164 or self.bsuid)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message in or out, with the status it has in this delivery."""

    wamid: str
    direction: Direction
    lead: LeadRef
    phone_number_id: str | None
    message_type: str  # text, image, interactive, template, ... or "unknown"
    body: str  # readable text: captions, button titles, "[Image] ...", "[Location] ..."
    sent_at: datetime
    status: str  # received | sent | delivered | read | failed
    status_at: datetime
    conversation_ref: str | None = None  # the provider's conversation id
    origin: str | None = None  # cloud_api, business_app, ...
    has_media: bool = False
    media_url: str | None = None
    error: str | None = None  # "131047 Re-engagement message: ..." when failed


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """A delivery status for a message we may or may not have seen yet."""

    wamid: str
    status: str  # sent | delivered | read | failed
    status_at: datetime
    lead: LeadRef  # the recipient
    phone_number_id: str | None
    conversation_ref: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A conversation opened, ended or gone quiet."""

    event: Literal["created", "ended", "inactive"]
    conversation_ref: str
    lead: LeadRef
    phone_number_id: str | None
    at: datetime
    status: str | None = None  # the provider's conversation status ("active", "ended", ...)
    inactivity_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """A contact's business-scoped user id (or profile) changed."""

    lead: LeadRef  # the new identity: phone, bsuid, profile name
    phone_number_id: str | None
    at: datetime
    previous_bsuid: str | None = None


Record = MessageRecord | StatusRecord | ConversationRecord | IdentityRecord


@dataclass(slots=True)
class ParsedDelivery:
    """Everything one webhook body says. Unknown parts are counted, not fatal."""

    records: list[Record] = field(default_factory=list)
    phone_number_ids: set[str] = field(default_factory=set)
    ignored: list[str] = field(default_factory=list)  # why parts of the body were skipped
    is_test: bool = False  # Kapso's dashboard "send test event"

    def lock_order(self, workspace_id: int) -> str:
        """The lead whose row applying this delivery locks first (see Database.run_write)."""
        for record in self.records:
            lead = record.lead
            if lead.phone_e164 or lead.bsuid:
                return f"{workspace_id}:{lead.phone_e164 or lead.bsuid}"
        return ""


class UnsupportedEvent(Exception):
    """The event type is not one we act on; the delivery is acknowledged and ignored."""


class MalformedPayload(Exception):
    """The body is JSON but not the shape the event type promises."""
