"""Parse Kapso webhook bodies (payload version v2) into provider-independent records.

Kapso sends one event per delivery, named in the X-Webhook-Event header. A message event carries
the whole message (Meta's message object plus a "kapso" block with direction, status history,
rendered content and media helpers), so even a "delivered" that overtakes its "sent" can create the
message. With buffering on, whatsapp.message.received arrives as {"batch": true, "data": [...]}.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from app.ingest.meta import (
    MEDIA_TYPES,
    as_dict,
    as_list,
    as_text,
    error_text,
    json_type,
    optional_timestamp,
    readable_body,
    render_message,
    required_dict,
)
from app.ingest.records import (
    ConversationRecord,
    Direction,
    IdentityRecord,
    LeadRef,
    MalformedPayload,
    MessageRecord,
    ParsedDelivery,
    Record,
    UnsupportedEvent,
)
from app.phones import is_bsuid, normalize_wa_id

__all__ = ["SUPPORTED_EVENTS", "kapso_phone_number_ids", "parse_kapso"]

# The status a message event reports; the event name is the truth, not message.kapso.status.
_MESSAGE_EVENTS: dict[str, str] = {
    "whatsapp.message.received": "received",
    "whatsapp.message.sent": "sent",
    "whatsapp.message.delivered": "delivered",
    "whatsapp.message.read": "read",
    "whatsapp.message.failed": "failed",
}
ConversationEvent = Literal["created", "ended", "inactive"]
_CONVERSATION_EVENTS: dict[str, ConversationEvent] = {
    "whatsapp.conversation.created": "created",
    "whatsapp.conversation.ended": "ended",
    "whatsapp.conversation.inactive": "inactive",
}
_IDENTITY_EVENT = "whatsapp.contact.identity_changed"
SUPPORTED_EVENTS: frozenset[str] = frozenset(
    {*_MESSAGE_EVENTS, *_CONVERSATION_EVENTS, _IDENTITY_EVENT}
)

# Where a conversation event's own time lives, best first: the body has no "occurred_at".
_CONVERSATION_TIME_KEYS: dict[str, tuple[str, ...]] = {
    "created": ("created_at", "updated_at", "last_active_at"),
    "ended": ("updated_at", "last_active_at", "created_at"),
    "inactive": ("last_active_at", "updated_at", "created_at"),
}


def kapso_phone_number_ids(payload: Any) -> set[str]:
    """Every phone_number_id a Kapso body names, single or batched; tolerant of any JSON value.

    Runs before the signature check to find the workspace (and its secret), so it must never raise.
    """
    ids: set[str] = set()
    if not isinstance(payload, dict):
        return ids
    for item in [payload, *as_list(payload.get("data"))]:
        item = as_dict(item)
        candidates = (
            item.get("phone_number_id"),
            as_dict(item.get("conversation")).get("phone_number_id"),
            as_dict(as_dict(item.get("message")).get("kapso")).get("phone_number_id"),
        )
        ids.update(text for text in map(as_text, candidates) if text)
    return ids


def parse_kapso(event_type: str, payload: Any, *, batch_header: bool = False) -> ParsedDelivery:
    """Records for one Kapso delivery.

    event_type is the X-Webhook-Event header (empty: taken from the body's "type"/"event");
    batch_header is X-Webhook-Batch == "true". Raises UnsupportedEvent for events we do not act on
    and MalformedPayload for JSON that does not have the shape the event promises.
    """
    if not isinstance(payload, dict):
        raise MalformedPayload(
            f"Kapso webhook body must be a JSON object, got {json_type(payload)}"
        )
    delivery = ParsedDelivery(phone_number_ids=kapso_phone_number_ids(payload))
    if payload.get("test") is True:
        # The dashboard's "send test event" has a fake contact; it must not become a lead.
        delivery.is_test = True
        return delivery
    event = _event_name(event_type, payload)
    for where, item in _items(payload, batch_header):
        delivery.records.append(_item_record(event, item, where))
    return delivery


def _event_name(event_type: str | None, payload: Mapping[str, Any]) -> str:
    for candidate in (event_type, payload.get("type"), payload.get("event")):
        name = as_text(candidate)
        if name:
            break
    else:
        raise UnsupportedEvent("no event type in the X-Webhook-Event header or the body")
    if name not in SUPPORTED_EVENTS:
        raise UnsupportedEvent(f"event {name!r} is not handled")
    return name


def _items(payload: dict[str, Any], batch_header: bool) -> list[tuple[str, dict[str, Any]]]:
    """(where, item) for each event item: the data[] of a batch, or the body itself."""
    if not (batch_header or payload.get("batch") is True):
        return [("body", payload)]
    data = payload.get("data")
    if not isinstance(data, list):
        raise MalformedPayload(f"batched delivery needs a data array, got {json_type(data)}")
    return [(f"data[{i}]", required_dict(item, f"data[{i}]")) for i, item in enumerate(data)]


def _item_record(event: str, item: dict[str, Any], where: str) -> Record:
    if event in _MESSAGE_EVENTS:
        return _message_record(_MESSAGE_EVENTS[event], item, where)
    if event in _CONVERSATION_EVENTS:
        return _conversation_record(_CONVERSATION_EVENTS[event], item, where)
    return _identity_record(item, where)


# --- messages --------------------------------------------------------------------------------


def _message_record(status: str, item: dict[str, Any], where: str) -> MessageRecord:
    message = required_dict(item.get("message"), f"{where}.message")
    wamid = as_text(message.get("id"))
    if not wamid:
        raise MalformedPayload(f"{where}.message has no id")
    kapso = as_dict(message.get("kapso"))
    conversation = as_dict(item.get("conversation"))
    statuses = [s for s in as_list(kapso.get("statuses")) if isinstance(s, dict)]
    direction: Direction = "inbound" if status == "received" else "outbound"
    sent_at, status_at = _message_times(status, message, statuses, conversation, where)
    mtype = as_text(message.get("type")) or "unknown"
    has_media = kapso.get("has_media")
    return MessageRecord(
        wamid=wamid,
        direction=direction,
        lead=_message_lead(direction, message, kapso, conversation, statuses),
        phone_number_id=_first_text(
            item.get("phone_number_id"),
            conversation.get("phone_number_id"),
            kapso.get("phone_number_id"),
        ),
        message_type=mtype,
        body=_message_body(mtype, message, kapso),
        sent_at=sent_at,
        status=status,
        status_at=status_at,
        conversation_ref=as_text(conversation.get("id")),
        origin=as_text(kapso.get("origin")),
        has_media=has_media if isinstance(has_media, bool) else mtype in MEDIA_TYPES,
        media_url=_media_url(mtype, message, kapso),
        error=_failure(message, statuses) if status == "failed" else None,
    )


def _message_times(
    status: str,
    message: Mapping[str, Any],
    statuses: list[dict[str, Any]],
    conversation: Mapping[str, Any],
    where: str,
) -> tuple[datetime, datetime]:
    """(sent_at, status_at) for a message event.

    message.timestamp is not reliable for status events: in Kapso's examples it equals the time of
    the latest status, not the send time. The raw status history is, so it wins when present.
    """
    message_at = optional_timestamp(message.get("timestamp"))
    history: list[tuple[str | None, datetime]] = []
    for entry in statuses:
        at = optional_timestamp(entry.get("timestamp"))
        if at is not None:
            history.append((as_text(entry.get("status")), at))
    status_at: datetime | None = message_at
    if status != "received" and history:
        same = [at for name, at in history if name == status]
        status_at = same[-1] if same else history[-1][1]
    sent_times = [at for name, at in history if name == "sent"]
    sent_at = min(sent_times) if sent_times else message_at
    sent_at = sent_at or status_at
    if sent_at is None:
        # Last resort for a message with no time of its own: the conversation's last activity.
        sent_at = _first_time(conversation, ("last_active_at", "updated_at"))
    status_at = status_at or sent_at
    if sent_at is None or status_at is None:
        raise MalformedPayload(f"{where}.message has no timestamp")
    return sent_at, status_at


def _message_lead(
    direction: Direction,
    message: Mapping[str, Any],
    kapso: Mapping[str, Any],
    conversation: Mapping[str, Any],
    statuses: list[dict[str, Any]],
) -> LeadRef:
    """The customer side of the message: the sender when inbound, the recipient when outbound."""
    conversation_kapso = as_dict(conversation.get("kapso"))
    # Kapso warns that from/to/phone_number/wa_id may each be missing: try them in order.
    ends: list[Any]
    user_ids: list[Any] = [conversation.get("business_scoped_user_id")]
    usernames: list[Any] = [conversation.get("username"), conversation_kapso.get("username")]
    if direction == "inbound":
        ends = [message.get("from"), conversation.get("phone_number"), kapso.get("phone_number")]
        user_ids.append(message.get("from_user_id"))
        usernames.append(message.get("username"))
    else:
        ends = [message.get("to"), conversation.get("phone_number"), kapso.get("phone_number")]
        ends += [s.get("recipient_id") for s in statuses]
        user_ids.append(message.get("to_user_id"))
        user_ids += [s.get("recipient_user_id") for s in statuses]
    texts = [as_text(value) for value in ends]
    # A hidden phone shows up as a business-scoped user id in the phone's place.
    hidden = next((text for text in texts if is_bsuid(text)), None)
    return LeadRef(
        phone_e164=next((e164 for e164 in map(normalize_wa_id, texts) if e164), None),
        bsuid=_first_text(*user_ids) or hidden,
        username=_first_text(*usernames),
        profile_name=_first_text(
            conversation_kapso.get("contact_name"), conversation.get("contact_name")
        ),
    )


def _message_body(mtype: str, message: Mapping[str, Any], kapso: Mapping[str, Any]) -> str:
    """The readable body; Kapso's rendered content only where it beats the message object."""
    content = _clean_content(kapso.get("content"))
    if mtype == "template" and content:
        # Kapso renders the template text with its parameters filled in; the name says little.
        return content
    media_data = as_dict(kapso.get("media_data"))
    hints = {
        "caption": as_text(as_dict(kapso.get("message_type_data")).get("caption")),
        "filename": as_text(media_data.get("filename")),
        "transcript": _transcript(kapso),
    }
    rendered = render_message(message, **hints)
    if rendered:
        return rendered
    # Unknown types (or a known type with nothing in it): Kapso's text beats a placeholder.
    return content or readable_body(message, **hints)


def _clean_content(value: Any) -> str | None:
    """kapso.content when it is plain human text; media content embeds sizes and URLs."""
    text = as_text(value)
    if not text or "http://" in text or "https://" in text:
        return None
    return text


def _transcript(kapso: Mapping[str, Any]) -> str | None:
    transcript = kapso.get("transcript")
    if isinstance(transcript, dict):
        return as_text(transcript.get("text"))
    return as_text(transcript)


def _media_url(mtype: str, message: Mapping[str, Any], kapso: Mapping[str, Any]) -> str | None:
    media = as_dict(message.get(mtype)) if mtype in MEDIA_TYPES else {}
    return _first_text(
        kapso.get("media_url"),
        as_dict(kapso.get("media_data")).get("url"),
        media.get("url"),
        media.get("link"),
    )


def _failure(message: Mapping[str, Any], statuses: list[dict[str, Any]]) -> str | None:
    """The error of the latest status that has one, else the message's own errors."""
    for entry in reversed(statuses):
        text = error_text(entry.get("errors"))
        if text:
            return text
    return error_text(message.get("errors"))


# --- conversations and contacts --------------------------------------------------------------


def _conversation_record(
    event: ConversationEvent, item: dict[str, Any], where: str
) -> ConversationRecord:
    conversation = required_dict(item.get("conversation"), f"{where}.conversation")
    ref = as_text(conversation.get("id"))
    if not ref:
        raise MalformedPayload(f"{where}.conversation has no id")
    minutes = _minutes(as_dict(item.get("inactivity")).get("minutes"))
    at = _first_time(conversation, _CONVERSATION_TIME_KEYS[event])
    if event == "inactive":
        at = at or optional_timestamp(as_dict(item.get("since_message")).get("created_at"))
        if at is not None and minutes is not None:
            # The event fires once the quiet period has run out after the last activity.
            at += timedelta(minutes=minutes)
    if at is None:
        raise MalformedPayload(f"{where}.conversation has no timestamps")
    bsuid = as_text(conversation.get("business_scoped_user_id"))
    phone = as_text(conversation.get("phone_number"))
    conversation_kapso = as_dict(conversation.get("kapso"))
    lead = LeadRef(
        phone_e164=normalize_wa_id(phone),
        bsuid=bsuid or (phone if is_bsuid(phone) else None),
        username=_first_text(conversation.get("username"), conversation_kapso.get("username")),
        profile_name=_first_text(
            conversation_kapso.get("contact_name"), conversation.get("contact_name")
        ),
    )
    return ConversationRecord(
        event=event,
        conversation_ref=ref,
        lead=lead,
        phone_number_id=_first_text(
            item.get("phone_number_id"), conversation.get("phone_number_id")
        ),
        at=at,
        status=as_text(conversation.get("status")),
        inactivity_minutes=minutes,
    )


def _identity_record(item: dict[str, Any], where: str) -> IdentityRecord:
    contact = required_dict(item.get("contact"), f"{where}.contact")
    wa_id = as_text(contact.get("wa_id"))
    bsuid = as_text(contact.get("business_scoped_user_id")) or (wa_id if is_bsuid(wa_id) else None)
    phone = normalize_wa_id(wa_id)
    if not (phone or bsuid):
        raise MalformedPayload(f"{where}.contact has neither wa_id nor business_scoped_user_id")
    at = _first_time(contact, ("updated_at", "created_at"))
    if at is None:
        raise MalformedPayload(f"{where}.contact has no updated_at")
    lead = LeadRef(
        phone_e164=phone,
        bsuid=bsuid,
        username=as_text(contact.get("username")),
        profile_name=_first_text(contact.get("display_name"), contact.get("profile_name")),
    )
    return IdentityRecord(
        lead=lead,
        phone_number_id=as_text(item.get("phone_number_id")),
        at=at,
        previous_bsuid=as_text(as_dict(item.get("previous")).get("business_scoped_user_id")),
    )


# --- small readers ---------------------------------------------------------------------------


def _first_text(*values: Any) -> str | None:
    return next((text for text in map(as_text, values) if text), None)


def _first_time(obj: Mapping[str, Any], keys: tuple[str, ...]) -> datetime | None:
    for key in keys:
        at = optional_timestamp(obj.get(key))
        if at is not None:
            return at
    return None


def _minutes(value: Any) -> int | None:
    """inactivity.minutes as an int; Kapso documents 1-1440 but JSON may carry "60" or 60.0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
