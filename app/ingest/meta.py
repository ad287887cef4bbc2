"""Parse Meta's raw WhatsApp Cloud API webhook bodies into provider-independent records.

This module also holds the Cloud API shapes that Kapso reuses: a Kapso v2 message object is Meta's
message object plus a "kapso" block, so parse_timestamp, error_text and the readable-body rendering
serve both parsers.

Shape rules shared by both parsers: a part that carries records (entry, changes, messages,
statuses, a message's id) must have the right JSON type or the body is MalformedPayload; a part that
only decorates a record (contacts, captions, names) is read leniently and simply skipped when odd.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.ingest.records import (
    LeadRef,
    MalformedPayload,
    MessageRecord,
    ParsedDelivery,
    Record,
    StatusRecord,
)
from app.phones import is_bsuid, normalize_wa_id

__all__ = [
    "MEDIA_TYPES",
    "WABA_OBJECT",
    "as_dict",
    "as_list",
    "as_text",
    "error_text",
    "json_type",
    "meta_phone_number_ids",
    "optional_list",
    "optional_timestamp",
    "parse_meta",
    "parse_timestamp",
    "readable_body",
    "render_message",
    "required_dict",
]

WABA_OBJECT = "whatsapp_business_account"
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
# A numeric timestamp this large can only be milliseconds: 10**11 seconds is the year 5138.
_MILLISECONDS_FROM = 10**11


# --- lenient readers -------------------------------------------------------------------------


def as_dict(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one, so optional parts never crash."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """The value when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def as_text(value: Any) -> str | None:
    """A non-blank string, stripped. Ids that arrive as JSON numbers become strings."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def required_dict(value: Any, where: str) -> dict[str, Any]:
    """A record-bearing object: anything else means a broken body."""
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where} must be a JSON object, got {json_type(value)}")
    return value


def optional_list(value: Any, where: str) -> list[Any]:
    """A record-bearing array: absent means empty, any other type means a broken body."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{where} must be a JSON array, got {json_type(value)}")
    return value


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


# --- timestamps and errors -------------------------------------------------------------------


def parse_timestamp(value: Any) -> datetime:
    """A timezone-aware UTC datetime from unix seconds (number or digit string) or ISO 8601."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedPayload(f"timestamp must be unix seconds or ISO 8601, got {value!r}")
    if isinstance(value, int | float):
        return _from_epoch(value)
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return _from_epoch(seconds)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedPayload(
            f"timestamp {value!r} is neither unix seconds nor ISO 8601"
        ) from None
    if parsed.tzinfo is None:
        # WhatsApp and Kapso only speak UTC; a time without an offset is UTC, not server-local.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def optional_timestamp(value: Any) -> datetime | None:
    """parse_timestamp, but a missing or blank value is None instead of an error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_timestamp(value)


def _from_epoch(seconds: float) -> datetime:
    if abs(seconds) >= _MILLISECONDS_FROM:
        seconds = seconds / 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise MalformedPayload(f"timestamp {seconds!r} is out of range") from None


def error_text(errors: Any) -> str | None:
    """'131047 Re-engagement message: <details>' from the first of Meta's errors[] objects."""
    error = next((e for e in as_list(errors) if isinstance(e, dict)), None)
    if error is None:
        return None
    title = as_text(error.get("title"))
    message = as_text(error.get("message"))
    label = title or message
    details = as_text(as_dict(error.get("error_data")).get("details"))
    if details is None and message != label:
        details = message
    head = " ".join(part for part in (as_text(error.get("code")), label) if part)
    if head and details:
        return f"{head}: {details}"
    return head or details


# --- readable bodies -------------------------------------------------------------------------

_MEDIA_LABELS = {
    "image": "[Image]",
    "video": "[Video]",
    "document": "[Document]",
    "sticker": "[Sticker]",
}


def readable_body(
    message: Mapping[str, Any],
    *,
    caption: str | None = None,
    filename: str | None = None,
    transcript: str | None = None,
) -> str:
    """Text a salesperson can read for any Cloud API message object; never raises.

    The keyword hints fill in what a provider keeps outside the message object (Kapso's media
    filename, audio transcript). Types this code does not know read "[Unsupported message: x]".
    """
    rendered = render_message(message, caption=caption, filename=filename, transcript=transcript)
    if rendered is not None:
        return rendered
    return f"[Unsupported message: {_message_type(message)}]"


def render_message(
    message: Mapping[str, Any],
    *,
    caption: str | None = None,
    filename: str | None = None,
    transcript: str | None = None,
) -> str | None:
    """Readable text for a known message type, or None when the type is not one we know."""
    mtype = _message_type(message)
    part = as_dict(message.get(mtype))
    if mtype == "text":
        return as_text(part.get("body")) or ""
    if mtype in _MEDIA_LABELS:
        return _media_body(mtype, part, caption, filename)
    if mtype == "audio":
        return _audio_body(part, transcript)
    if mtype == "interactive":
        return _interactive_body(part)
    if mtype == "button":
        return as_text(part.get("text")) or as_text(part.get("payload")) or "[Button]"
    if mtype == "template":
        name = as_text(part.get("name"))
        return f"[Template] {name}" if name else "[Template]"
    if mtype == "location":
        return _location_body(part)
    if mtype == "reaction":
        emoji = as_text(part.get("emoji"))
        # An empty emoji is WhatsApp's way of saying the reaction was taken back.
        return f"Reacted {emoji}" if emoji else "Removed a reaction"
    if mtype == "contacts":
        return _contacts_body(as_list(message.get("contacts")))
    if mtype == "order":
        items = as_list(part.get("product_items"))
        return f"[Order] {len(items)} item(s)" if items else "[Order]"
    if mtype == "system":
        return as_text(part.get("body")) or "[System message]"
    if mtype in ("unsupported", "unknown"):
        inner = as_text(part.get("type"))
        return f"[Unsupported message: {inner}]" if inner else "[Unsupported message]"
    return None


def _message_type(message: Mapping[str, Any]) -> str:
    return as_text(message.get("type")) or "unknown"


def _media_body(
    mtype: str, part: Mapping[str, Any], caption: str | None, filename: str | None
) -> str:
    label = _MEDIA_LABELS[mtype]
    caption = as_text(part.get("caption")) or caption
    if mtype == "document":
        name = as_text(part.get("filename")) or filename
        detail = f"{name}: {caption}" if name and caption else name or caption
    else:
        detail = caption
    return f"{label} {detail}" if detail else label


def _audio_body(part: Mapping[str, Any], transcript: str | None) -> str:
    # Voice notes are what sales leads actually send; a transcript only exists for those.
    label = "[Voice note]" if part.get("voice") is True or transcript else "[Audio]"
    return f"{label} {transcript}" if transcript else label


def _interactive_body(part: Mapping[str, Any]) -> str:
    for reply_key in ("button_reply", "list_reply"):
        title = as_text(as_dict(part.get(reply_key)).get("title"))
        if title:
            return title
    if "nfm_reply" in part:
        name = as_text(as_dict(part.get("nfm_reply")).get("name"))
        return f"[Form reply] {name}" if name else "[Form reply]"
    # Outbound interactive messages (sent through Kapso) carry the question, not a reply.
    return as_text(as_dict(part.get("body")).get("text")) or "[Interactive]"


def _location_body(part: Mapping[str, Any]) -> str:
    place = ", ".join(t for t in (as_text(part.get("name")), as_text(part.get("address"))) if t)
    if not place:
        lat, lng = part.get("latitude"), part.get("longitude")
        if isinstance(lat, int | float) and isinstance(lng, int | float):
            place = f"{lat}, {lng}"
    return f"[Location] {place}" if place else "[Location]"


def _contacts_body(cards: list[Any]) -> str:
    names = [as_text(as_dict(as_dict(c).get("name")).get("formatted_name")) for c in cards]
    shown = ", ".join(n for n in names if n)
    return f"[Contact] {shown}" if shown else "[Contact]"


# --- Meta webhook body -----------------------------------------------------------------------


def meta_phone_number_ids(payload: Any) -> set[str]:
    """Every value.metadata.phone_number_id in the body; tolerant of any JSON value.

    Runs before the signature check to find the workspace, so it must never raise.
    """
    ids: set[str] = set()
    if not isinstance(payload, dict):
        return ids
    for entry in as_list(payload.get("entry")):
        for change in as_list(as_dict(entry).get("changes")):
            metadata = as_dict(as_dict(as_dict(change).get("value")).get("metadata"))
            phone_number_id = as_text(metadata.get("phone_number_id"))
            if phone_number_id:
                ids.add(phone_number_id)
    return ids


def parse_meta(payload: Any) -> ParsedDelivery:
    """Records for every message and status in every entry and change of a Meta webhook body."""
    if not isinstance(payload, dict):
        raise MalformedPayload(f"Meta webhook body must be a JSON object, got {json_type(payload)}")
    delivery = ParsedDelivery(phone_number_ids=meta_phone_number_ids(payload))
    obj = payload.get("object")
    if obj != WABA_OBJECT:
        # Another product's webhook pointed at us: acknowledge it, never fail the sender.
        delivery.ignored.append(f"object {obj!r} is not {WABA_OBJECT!r}")
        return delivery
    entries = optional_list(payload.get("entry"), "entry")
    if not entries:
        delivery.ignored.append("no entries")
    for i, entry in enumerate(entries):
        entry = required_dict(entry, f"entry[{i}]")
        changes = optional_list(entry.get("changes"), f"entry[{i}].changes")
        for j, change in enumerate(changes):
            where = f"entry[{i}].changes[{j}]"
            change = required_dict(change, where)
            field = change.get("field")
            if field != "messages":
                delivery.ignored.append(f"{where}: field {field!r} is not handled")
                continue
            value = required_dict(change.get("value"), f"{where}.value")
            delivery.records.extend(_change_records(value, where, delivery.ignored))
    return delivery


def _change_records(value: Mapping[str, Any], where: str, ignored: list[str]) -> list[Record]:
    # The phone number is per change: one body can carry several numbers of the same WABA.
    phone_number_id = as_text(as_dict(value.get("metadata")).get("phone_number_id"))
    contacts = [c for c in as_list(value.get("contacts")) if isinstance(c, dict)]
    records: list[Record] = []
    messages = optional_list(value.get("messages"), f"{where}.value.messages")
    for k, message in enumerate(messages):
        at = f"{where}.value.messages[{k}]"
        records.append(_message_record(required_dict(message, at), at, contacts, phone_number_id))
    statuses = optional_list(value.get("statuses"), f"{where}.value.statuses")
    for k, status in enumerate(statuses):
        at = f"{where}.value.statuses[{k}]"
        records.append(_status_record(required_dict(status, at), at, phone_number_id))
    problem = error_text(value.get("errors"))
    if problem:
        # Account-level errors have no message to attach to; keep them visible in the log.
        ignored.append(f"{where}: error {problem}")
    return records


def _wamid(obj: Mapping[str, Any], where: str) -> str:
    wamid = as_text(obj.get("id"))
    if not wamid:
        raise MalformedPayload(f"{where} has no id")
    return wamid


def _find_contact(
    contacts: list[dict[str, Any]], wa_id: str | None, user_id: str | None
) -> dict[str, Any]:
    """The contacts[] entry for a sender, matched by id: Meta does not promise the same order."""
    for contact in contacts:
        if wa_id and as_text(contact.get("wa_id")) == wa_id:
            return contact
        if user_id and as_text(contact.get("user_id")) == user_id:
            return contact
    if not wa_id and not user_id and len(contacts) == 1:
        return contacts[0]
    return {}


def _message_record(
    message: dict[str, Any],
    where: str,
    contacts: list[dict[str, Any]],
    phone_number_id: str | None,
) -> MessageRecord:
    wamid = _wamid(message, where)
    sender = as_text(message.get("from"))
    sender_user_id = as_text(message.get("from_user_id"))
    contact = _find_contact(contacts, sender, sender_user_id)
    profile = as_dict(contact.get("profile"))
    lead = LeadRef(
        phone_e164=normalize_wa_id(sender) or normalize_wa_id(as_text(contact.get("wa_id"))),
        bsuid=sender_user_id
        or as_text(contact.get("user_id"))
        or (sender if is_bsuid(sender) else None),
        username=as_text(profile.get("username")),
        profile_name=as_text(profile.get("name")),
    )
    sent_at = parse_timestamp(message.get("timestamp"))
    mtype = _message_type(message)
    media = as_dict(message.get(mtype)) if mtype in MEDIA_TYPES else {}
    return MessageRecord(
        wamid=wamid,
        direction="inbound",
        lead=lead,
        phone_number_id=phone_number_id,
        message_type=mtype,
        body=readable_body(message),
        sent_at=sent_at,
        status="received",
        status_at=sent_at,
        has_media=mtype in MEDIA_TYPES,
        media_url=as_text(media.get("url")),
    )


def _status_record(status: dict[str, Any], where: str, phone_number_id: str | None) -> StatusRecord:
    wamid = _wamid(status, where)
    name = as_text(status.get("status"))
    if not name:
        raise MalformedPayload(f"{where} has no status")
    recipient = as_text(status.get("recipient_id"))
    lead = LeadRef(
        phone_e164=normalize_wa_id(recipient),
        bsuid=as_text(status.get("recipient_user_id"))
        or (recipient if is_bsuid(recipient) else None),
    )
    return StatusRecord(
        wamid=wamid,
        status=name.lower(),
        status_at=parse_timestamp(status.get("timestamp")),
        lead=lead,
        phone_number_id=phone_number_id,
        conversation_ref=as_text(as_dict(status.get("conversation")).get("id")),
        error=error_text(status.get("errors")),
    )
