"""The Kapso and Meta webhook parsers against every recorded fixture, plus hand-made edge cases."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.ingest.kapso import kapso_phone_number_ids, parse_kapso
from app.ingest.meta import error_text, meta_phone_number_ids, parse_meta, parse_timestamp
from app.ingest.records import (
    ConversationRecord,
    IdentityRecord,
    LeadRef,
    MalformedPayload,
    MessageRecord,
    ParsedDelivery,
    Record,
    StatusRecord,
    UnsupportedEvent,
)

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
MANIFEST: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_bytes())
# Bodies a parser never sees: broken JSON is rejected while decoding, the handshake is a GET.
NOT_PARSED = {
    "edge_cases/kapso_truncated_body.invalid_json",
    "meta/meta_verification_handshake.txt",
}
ENTRIES = [e for e in MANIFEST["files"] if e["file"] not in NOT_PARSED]

# The Kapso events the board acts on (from the brief), kept apart from the parser's own list.
KAPSO_EVENTS = {
    "whatsapp.message.received",
    "whatsapp.message.sent",
    "whatsapp.message.delivered",
    "whatsapp.message.read",
    "whatsapp.message.failed",
    "whatsapp.conversation.created",
    "whatsapp.conversation.ended",
    "whatsapp.conversation.inactive",
    "whatsapp.contact.identity_changed",
}
PNID = "109876543210987"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def entry_for(name: str) -> dict[str, Any]:
    return next(e for e in MANIFEST["files"] if e["file"] == name)


def parse_entry(entry: dict[str, Any]) -> ParsedDelivery:
    body = load(entry["file"])
    if entry["kind"] == "meta":
        return parse_meta(body)
    headers = entry["headers"]
    return parse_kapso(
        headers.get("X-Webhook-Event", ""),
        body,
        batch_header=headers.get("X-Webhook-Batch", "").lower() == "true",
    )


def parse_file(name: str) -> ParsedDelivery:
    return parse_entry(entry_for(name))


def only(delivery: ParsedDelivery) -> Record:
    assert len(delivery.records) == 1, delivery.records
    return delivery.records[0]


def only_message(delivery: ParsedDelivery) -> MessageRecord:
    record = only(delivery)
    assert isinstance(record, MessageRecord)
    return record


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def iso(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def lead_of(record: Record) -> LeadRef:
    return record.lead


def find_in(obj: Any, key: str) -> list[dict[str, Any]]:
    """Every JSON object under obj[...] that is the value of `key`, at any depth."""
    found: list[dict[str, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key and isinstance(v, dict):
                found.append(v)
            found.extend(find_in(v, key))
    elif isinstance(obj, list):
        for v in obj:
            found.extend(find_in(v, key))
    return found


# --- every fixture against its manifest "expect" ----------------------------------------------


def test_manifest_leaves_out_only_bodies_a_parser_never_sees() -> None:
    listed = {e["file"] for e in MANIFEST["files"]}
    assert listed >= NOT_PARSED
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*") if p.is_file()}
    assert on_disk == listed, "every fixture file must be in the manifest (and vice versa)"
    assert len(ENTRIES) == len(listed) - 2


Check = Callable[[Any, ParsedDelivery, dict[str, Any]], None]


def _messages(delivery: ParsedDelivery) -> list[MessageRecord]:
    return [r for r in delivery.records if isinstance(r, MessageRecord)]


def _each(delivery: ParsedDelivery) -> list[Record]:
    assert delivery.records, "expected records"
    return delivery.records


def check_event(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert entry["headers"]["X-Webhook-Event"] == value
    family, _, action = value.removeprefix("whatsapp.").partition(".")
    for record in _each(delivery):
        if family == "message":
            assert isinstance(record, MessageRecord)
            assert record.status == action
        elif family == "conversation":
            assert isinstance(record, ConversationRecord)
            assert record.event == action
        else:
            assert isinstance(record, IdentityRecord)


def check_wamid(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    wamids = [r.wamid for r in _each(delivery) if isinstance(r, MessageRecord | StatusRecord)]
    assert value in wamids


def check_direction(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert [m.direction for m in _messages(delivery)] == [value] * len(delivery.records)


def check_lead_phone(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert {lead_of(r).phone_e164 for r in _each(delivery)} == {value}


def check_lead_name(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert {lead_of(r).profile_name for r in _each(delivery)} == {value}


def check_bsuid(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert {lead_of(r).bsuid for r in _each(delivery)} == {value}


def check_text(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert [m.body for m in _messages(delivery)] == [value]


def check_status(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    for record in _each(delivery):
        assert isinstance(record, MessageRecord | StatusRecord)
        assert record.status == value


def check_error_code(value: int, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    for record in _each(delivery):
        assert isinstance(record, MessageRecord | StatusRecord)
        assert record.error is not None
        assert record.error.startswith(f"{value} ")


def check_count(value: int, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert len(delivery.records) == value


def check_wamids(value: list[str], delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert [m.wamid for m in _messages(delivery)] == value


def check_batch(value: bool, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    body = load(entry["file"])
    assert body["batch"] is value is True
    assert entry["headers"]["X-Webhook-Batch"] == "true"
    assert [m.wamid for m in _messages(delivery)] == [i["message"]["id"] for i in body["data"]]
    # The body's own "batch": true is enough when a proxy drops the header.
    assert parse_kapso(entry["headers"]["X-Webhook-Event"], body).records == delivery.records


def check_type(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert [m.message_type for m in _messages(delivery)] == [value] * len(delivery.records)


def check_has_media(value: bool, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    message = only_message(delivery)
    assert message.has_media is value
    assert message.media_url and message.media_url.startswith("https://")
    assert "http" not in message.body, "media URLs belong in media_url, not in the body"


def check_media_id(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    message = only_message(delivery)
    assert message.has_media
    assert message.media_url is not None
    assert f"mid={value}" in message.media_url


def check_button_id(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    replies = [r for r in find_in(load(entry["file"]), "button_reply") if r.get("id") == value]
    assert len(replies) == 1
    assert only_message(delivery).body == replies[0]["title"]


def check_payload(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    buttons = [b for b in find_in(load(entry["file"]), "button") if b.get("payload") == value]
    assert len(buttons) == 1
    assert only_message(delivery).body == buttons[0]["text"]


def check_origin(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert only_message(delivery).origin == value


def check_conversation_id(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    record = only(delivery)
    assert isinstance(record, ConversationRecord)
    assert record.conversation_ref == value


def check_minutes(value: int, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    record = only(delivery)
    assert isinstance(record, ConversationRecord)
    assert record.inactivity_minutes == value


def check_phone_number_id(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert "phone_number_id" not in load(entry["file"]), "fixture must lack the top-level id"
    assert delivery.phone_number_ids == {value}
    assert {r.phone_number_id for r in _each(delivery)} == {value}


def check_messages(value: int, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert len(_messages(delivery)) == value


def check_statuses(value: int, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    assert len([r for r in delivery.records if isinstance(r, StatusRecord)]) == value


def check_new_lead(value: bool, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    # Whether the lead is new is the database's call; the parser must give it a usable identity.
    message = only_message(delivery)
    assert load(entry["file"])["is_new_conversation"] is value
    assert message.direction == "inbound"
    assert message.lead.is_known


def check_stable_wamid(value: Any, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    # Deduplication keys on the wamid: a re-delivery must parse to the very same records.
    wamids = [m.wamid for m in _messages(delivery)]
    assert wamids
    assert all(w.startswith("wamid.") for w in wamids)
    assert len(set(wamids)) == len(wamids)
    assert parse_entry(entry).records == delivery.records


def check_note(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    # Prose for humans: the entry's other expectations must carry the checks.
    assert value
    assert set(entry["expect"]) - {"note"}, "a note alone checks nothing"


def check_handled_as(value: str, delivery: ParsedDelivery, entry: dict[str, Any]) -> None:
    if value == "ignore_or_flag_test":
        assert delivery.is_test
        assert delivery.records == []
    elif value in ("200_noop", "200_ignore"):
        assert delivery.records == []
        assert delivery.ignored, "the reason for ignoring must be recorded"
    elif value == "unknown":
        message = only_message(delivery)
        assert message.message_type in ("poll_vote", "unsupported")
        assert message.body.startswith("[Unsupported message: ")
    elif value in ("duplicate_200", "401"):
        # Signature and idempotency are checked before parsing; the body itself is a good one.
        assert only_message(delivery).wamid.startswith("wamid.")
    else:
        pytest.fail(f"no check for handled_as={value!r}")


CHECKS: dict[str, Check] = {
    "event": check_event,
    "wamid": check_wamid,
    "direction": check_direction,
    "lead_phone_e164": check_lead_phone,
    "lead_name": check_lead_name,
    "bsuid": check_bsuid,
    "text": check_text,
    "status": check_status,
    "error_code": check_error_code,
    "count": check_count,
    "wamids": check_wamids,
    "batch": check_batch,
    "type": check_type,
    "has_media": check_has_media,
    "media_id": check_media_id,
    "button_id": check_button_id,
    "payload": check_payload,
    "origin": check_origin,
    "conversation_id": check_conversation_id,
    "minutes": check_minutes,
    "phone_number_id": check_phone_number_id,
    "messages": check_messages,
    "statuses": check_statuses,
    "new_lead": check_new_lead,
    "dedupe_by": check_stable_wamid,
    "must_not_double_count": check_stable_wamid,
    "note": check_note,
    "handled_as": check_handled_as,
}


def _expects_unsupported(entry: dict[str, Any]) -> bool:
    if entry["kind"] != "kapso":
        return False
    return entry["headers"]["X-Webhook-Event"] not in KAPSO_EVENTS


def _assert_utc(record: Record) -> None:
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            assert value.tzinfo is not None and value.utcoffset() == timedelta(0), f.name


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_fixture_meets_manifest_expectations(entry: dict[str, Any]) -> None:
    expect: dict[str, Any] = entry["expect"]
    unknown = set(expect) - set(CHECKS)
    assert not unknown, f"add a check for manifest keys {unknown}"
    if _expects_unsupported(entry):
        with pytest.raises(UnsupportedEvent):
            parse_entry(entry)
        return
    delivery = parse_entry(entry)
    for key, value in expect.items():
        CHECKS[key](value, delivery, entry)
    for record in delivery.records:
        _assert_utc(record)
    if delivery.records:
        assert delivery.phone_number_ids == {PNID}


def test_every_supported_fixture_yields_records_with_a_known_lead() -> None:
    for entry in ENTRIES:
        if _expects_unsupported(entry):
            continue
        delivery = parse_entry(entry)
        for record in delivery.records:
            assert lead_of(record).is_known, (entry["file"], record)


# --- Kapso: exact records ---------------------------------------------------------------------


def test_kapso_received_text_record() -> None:
    body = load("kapso/kapso_message_received_text.json")
    record = only(parse_file("kapso/kapso_message_received_text.json"))
    assert record == MessageRecord(
        wamid=body["message"]["id"],
        direction="inbound",
        lead=LeadRef(phone_e164="+6281234567890", profile_name="Budi Santoso"),
        phone_number_id=PNID,
        message_type="text",
        body=body["message"]["text"]["body"],
        sent_at=ts(1789441925),
        status="received",
        status_at=ts(1789441925),
        conversation_ref="c713b2f2-8618-55e9-a804-3abfa1a6ae24",
        origin="cloud_api",
        has_media=False,
        media_url=None,
        error=None,
    )


@pytest.mark.parametrize(
    ("name", "status", "status_at"),
    [
        ("kapso/kapso_message_sent_text.json", "sent", 1789442140),
        ("kapso/kapso_message_delivered.json", "delivered", 1789442143),
        ("kapso/kapso_message_read.json", "read", 1789442462),
    ],
)
def test_kapso_status_events_carry_the_message_and_status_history_times(
    name: str, status: str, status_at: int
) -> None:
    message = only_message(parse_file(name))
    assert message.direction == "outbound"
    assert message.status == status
    assert message.body.startswith("Selamat siang Pak Budi")
    # sent_at comes from the "sent" status, not message.timestamp (which is the latest status).
    assert message.sent_at == ts(1789442140)
    assert message.status_at == ts(status_at)
    assert message.lead.phone_e164 == "+6281234567890"
    assert message.error is None


def test_kapso_failed_error_text() -> None:
    message = only_message(parse_file("kapso/kapso_message_failed.json"))
    assert message.error == (
        "131047 Re-engagement message: Message failed to send because more than 24 hours "
        "have passed since the customer last replied to this number."
    )
    assert message.sent_at == ts(1789693200)
    assert message.status_at == ts(1789693202)
    assert message.lead.phone_e164 == "+6281337001122"


def test_kapso_image_body_keeps_the_url_out() -> None:
    message = only_message(parse_file("kapso/kapso_message_received_image.json"))
    assert message.body == (
        "[Image] Ini bukti transfer booking fee Rp 5.000.000 ya kak, atas nama Siti Rahmawati"
    )
    assert message.media_url == (
        "https://api.kapso.ai/media/24d2d779-94df-563b-ae10-ce2699cac1e0/bukti-transfer.jpg"
    )
    assert message.has_media


def test_kapso_template_uses_rendered_content() -> None:
    body = load("kapso/kapso_message_sent_template.json")
    message = only_message(parse_file("kapso/kapso_message_sent_template.json"))
    assert message.body == body["message"]["kapso"]["content"]
    assert message.lead.phone_e164 == "+6281337001122"
    assert message.lead.profile_name is None  # this conversation has no kapso block


def test_kapso_business_app_echo_without_statuses() -> None:
    message = only_message(parse_file("kapso/kapso_message_sent_business_app_echo.json"))
    assert message.origin == "business_app"
    assert message.status == "sent"
    assert message.sent_at == message.status_at == ts(1789455720)
    assert message.lead == LeadRef(phone_e164="+6285712345678", profile_name="Siti Rahmawati")


def test_kapso_conversation_records() -> None:
    created = only(parse_file("kapso/kapso_conversation_created.json"))
    assert created == ConversationRecord(
        event="created",
        conversation_ref="ddf88025-3f83-51af-b468-d4a686b2ed41",
        lead=LeadRef(phone_e164="+6287812345678", profile_name="Agus Wijaya"),
        phone_number_id=PNID,
        at=iso("2026-09-16T11:02:51"),
        status="active",
    )
    ended = only(parse_file("kapso/kapso_conversation_ended.json"))
    assert isinstance(ended, ConversationRecord)
    assert (ended.event, ended.status, ended.at) == ("ended", "ended", iso("2026-09-16T03:30:10"))
    inactive = only(parse_file("kapso/kapso_conversation_inactive.json"))
    assert isinstance(inactive, ConversationRecord)
    assert inactive.event == "inactive"
    assert inactive.inactivity_minutes == 60
    # It went quiet an hour after the last activity at 07:02.
    assert inactive.at == iso("2026-09-15T08:02:00")
    assert inactive.lead.phone_e164 == "+6285712345678"


def test_kapso_identity_changed_record() -> None:
    record = only(parse_file("kapso/kapso_contact_identity_changed.json"))
    assert record == IdentityRecord(
        lead=LeadRef(
            phone_e164="+6281234567890",
            bsuid="ID.10482273615590381744",
            username="@budisantoso",
            profile_name="Budi Santoso",
        ),
        phone_number_id=PNID,
        at=iso("2026-09-21T04:00:00"),
        previous_bsuid="ID.99173026451120983377",
    )


def test_kapso_duplicates_parse_to_the_original_records() -> None:
    original = parse_file("kapso/kapso_message_received_text.json").records
    for name in (
        "edge_cases/kapso_duplicate_wamid_first.json",
        "edge_cases/kapso_duplicate_wamid_second_new_key.json",
        "edge_cases/kapso_retry_same_idempotency_key.json",
    ):
        assert parse_file(name).records == original


def test_kapso_dashboard_test_event_is_flagged_whatever_the_event_header() -> None:
    body = load("edge_cases/kapso_dashboard_test_event.json")
    for event in ("whatsapp.message.received", "whatsapp.something.new", ""):
        delivery = parse_kapso(event, body)
        assert delivery.is_test
        assert delivery.records == []
        assert delivery.phone_number_ids == set()


def test_kapso_unknown_message_type_does_not_raise() -> None:
    message = only_message(parse_file("edge_cases/kapso_unknown_message_type.json"))
    assert message.message_type == "poll_vote"
    assert message.body == "[Unsupported message: poll_vote]"
    assert message.lead.phone_e164 == "+6281234567890"


# --- Kapso: event names, batches and malformed bodies ----------------------------------------


def test_kapso_event_falls_back_to_the_body_type() -> None:
    body = load("kapso/kapso_batch_message_received.json")
    delivery = parse_kapso("", body)
    assert len(delivery.records) == 3
    assert all(isinstance(r, MessageRecord) and r.status == "received" for r in delivery.records)
    single = load("kapso/kapso_conversation_created.json")
    single["event"] = "whatsapp.conversation.created"
    assert isinstance(only(parse_kapso("", single)), ConversationRecord)


@pytest.mark.parametrize(
    ("event", "body"),
    [
        ("", {"message": {"id": "wamid.X"}}),  # no name anywhere
        ("whatsapp.contact.marketing_preference_changed", {"contact": {}}),
        ("whatsapp.meta_business_agent.handover", {"handover": {}}),
        ("WHATSAPP.MESSAGE.RECEIVED", {"message": {"id": "wamid.X"}}),  # names are exact
    ],
)
def test_kapso_unsupported_events_raise(event: str, body: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedEvent):
        parse_kapso(event, body)


def test_kapso_batch_header_with_empty_data_is_no_records() -> None:
    delivery = parse_kapso(
        "whatsapp.message.received", {"batch": True, "data": []}, batch_header=True
    )
    assert delivery.records == []
    assert not delivery.is_test


RECEIVED = "whatsapp.message.received"


@pytest.mark.parametrize(
    ("event", "body", "batch_header", "fragment"),
    [
        (RECEIVED, [], False, "JSON object"),
        (RECEIVED, "hello", False, "JSON object"),
        (RECEIVED, 42, False, "JSON object"),
        (RECEIVED, None, False, "JSON object"),
        (RECEIVED, {}, False, "message"),
        (RECEIVED, {"message": "hi"}, False, "message"),
        (RECEIVED, {"message": {"type": "text", "timestamp": "1"}}, False, "no id"),
        (RECEIVED, {"message": {"id": "  ", "timestamp": "1"}}, False, "no id"),
        (RECEIVED, {"message": {"id": "wamid.X"}}, False, "no timestamp"),
        (RECEIVED, {"message": {"id": "wamid.X", "timestamp": "soon"}}, False, "timestamp"),
        (RECEIVED, {"batch": True, "data": {"message": {}}}, False, "data array"),
        (RECEIVED, {"batch": True}, False, "data array"),
        (RECEIVED, {"message": {"id": "wamid.X", "timestamp": "1"}}, True, "data array"),
        (RECEIVED, {"batch": True, "data": [7]}, False, r"data\[0\]"),
        ("whatsapp.conversation.created", {"conversation": {"created_at": "1"}}, False, "no id"),
        ("whatsapp.conversation.ended", {"conversation": []}, False, "conversation"),
        ("whatsapp.conversation.ended", {"conversation": {"id": "c1"}}, False, "timestamps"),
        ("whatsapp.contact.identity_changed", {"previous": {}}, False, "contact"),
        (
            "whatsapp.contact.identity_changed",
            {"contact": {"updated_at": "2026-01-01T00:00:00Z"}},
            False,
            "wa_id",
        ),
    ],
)
def test_kapso_malformed_bodies_raise(
    event: str, body: Any, batch_header: bool, fragment: str
) -> None:
    with pytest.raises(MalformedPayload, match=fragment):
        parse_kapso(event, body, batch_header=batch_header)


# --- Kapso: readable bodies, leads, times -----------------------------------------------------


def kapso_item(
    message: dict[str, Any], kapso: dict[str, Any] | None = None, **item: Any
) -> dict[str, Any]:
    """A minimal whatsapp.message.received body around a Meta-shaped message object."""
    full = {"id": "wamid.T1", "timestamp": "1789441925", "from": "6281234567890", **message}
    full["kapso"] = {"direction": "inbound", **(kapso or {})}
    return {"message": full, "phone_number_id": PNID, **item}


KAPSO_MEDIA_URL = "https://api.kapso.ai/media/abc/voice.ogg"


@pytest.mark.parametrize(
    ("message", "kapso", "body"),
    [
        (
            {"type": "audio", "audio": {"id": "m1"}},
            {
                "content": f"[Audio attached] (voice.ogg) URL: {KAPSO_MEDIA_URL}\nTranscript: Hi",
                "transcript": {"text": "Halo kak, mau tanya cicilan"},
                "media_url": KAPSO_MEDIA_URL,
            },
            "[Voice note] Halo kak, mau tanya cicilan",
        ),
        ({"type": "audio", "audio": {"id": "m1", "voice": True}}, {}, "[Voice note]"),
        ({"type": "audio", "audio": {"id": "m1"}}, {}, "[Audio]"),
        (
            {"type": "document", "document": {"id": "m2"}},
            {"media_data": {"filename": "brosur.pdf", "url": KAPSO_MEDIA_URL}},
            "[Document] brosur.pdf",
        ),
        (
            {"type": "document", "document": {"filename": "a.pdf", "caption": "Ini brosurnya"}},
            {},
            "[Document] a.pdf: Ini brosurnya",
        ),
        ({"type": "video", "video": {"caption": "Tur rumah"}}, {}, "[Video] Tur rumah"),
        ({"type": "image", "image": {"id": "m3"}}, {}, "[Image]"),
        (
            {"type": "image", "image": {"id": "m3"}},
            {"message_type_data": {"caption": "Denah"}},
            "[Image] Denah",
        ),
        ({"type": "sticker", "sticker": {"id": "m4"}}, {}, "[Sticker]"),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {"id": "t36", "title": "Tipe 36"},
                },
            },
            {},
            "Tipe 36",
        ),
        ({"type": "button", "button": {"payload": "YA", "text": "Ya, minat"}}, {}, "Ya, minat"),
        (
            {"type": "template", "template": {"name": "promo_akhir_tahun"}},
            {},
            "[Template] promo_akhir_tahun",
        ),
        (
            {"type": "location", "location": {"latitude": -6.2, "longitude": 106.8}},
            {},
            "[Location] -6.2, 106.8",
        ),
        (
            {"type": "reaction", "reaction": {"message_id": "wamid.A", "emoji": "👍"}},
            {},
            "Reacted 👍",
        ),
        (
            {"type": "reaction", "reaction": {"message_id": "wamid.A", "emoji": ""}},
            {},
            "Removed a reaction",
        ),
        (
            {"type": "contacts", "contacts": [{"name": {"formatted_name": "Rina Marketing"}}]},
            {},
            "[Contact] Rina Marketing",
        ),
        ({"type": "poll_vote", "poll_vote": {}}, {"content": "Sabtu pagi"}, "Sabtu pagi"),
        (
            {"type": "poll_vote", "poll_vote": {}},
            {"content": f"see {KAPSO_MEDIA_URL}"},
            "[Unsupported message: poll_vote]",
        ),
        ({}, {}, "[Unsupported message]"),  # no type at all
        ({"type": "text", "text": {}}, {"content": "Halo"}, "Halo"),
    ],
)
def test_kapso_readable_bodies(message: dict[str, Any], kapso: dict[str, Any], body: str) -> None:
    record = only_message(parse_kapso(RECEIVED, kapso_item(message, kapso)))
    assert record.body == body
    assert "http" not in record.body
    if kapso.get("media_url"):
        assert record.media_url == kapso["media_url"]


def test_kapso_unknown_type_keeps_its_name() -> None:
    record = only_message(parse_kapso(RECEIVED, kapso_item({"type": "hologram"})))
    assert record.message_type == "hologram"
    assert record.body == "[Unsupported message: hologram]"


def test_kapso_media_flags_without_kapso_block() -> None:
    body = kapso_item({"type": "image", "image": {"link": "https://cdn.example/denah.jpg"}})
    del body["message"]["kapso"]
    record = only_message(parse_kapso("whatsapp.message.sent", body))
    assert record.has_media
    assert record.media_url == "https://cdn.example/denah.jpg"
    assert record.origin is None


def test_kapso_inbound_lead_from_bsuid_sender_falls_back_to_conversation_phone() -> None:
    body = kapso_item(
        {"type": "text", "text": {"body": "Halo"}, "from": "ID.20518847736620197345"},
        conversation={"id": "c1", "phone_number": "+62 812-3456-7890", "username": "@dewi"},
    )
    lead = only_message(parse_kapso(RECEIVED, body)).lead
    assert lead == LeadRef(
        phone_e164="+6281234567890", bsuid="ID.20518847736620197345", username="@dewi"
    )


def test_kapso_inbound_lead_uses_explicit_bsuid_fields() -> None:
    body = kapso_item(
        {"type": "text", "text": {"body": "Halo"}, "from_user_id": "ID.111"},
        conversation={"id": "c1", "kapso": {"contact_name": "Dewi"}},
    )
    lead = only_message(parse_kapso(RECEIVED, body)).lead
    assert (lead.phone_e164, lead.bsuid, lead.profile_name) == ("+6281234567890", "ID.111", "Dewi")


def test_kapso_outbound_lead_fallbacks() -> None:
    base = {"type": "text", "text": {"body": "Siap kak"}}
    no_to = kapso_item(base, conversation={"id": "c1", "phone_number": "+6285712345678"})
    del no_to["message"]["from"]
    assert only_message(parse_kapso("whatsapp.message.sent", no_to)).lead.phone_e164 == (
        "+6285712345678"
    )
    only_kapso = kapso_item(base, {"phone_number": "+6287812345678"})
    del only_kapso["message"]["from"]
    record = only_message(parse_kapso("whatsapp.message.sent", only_kapso))
    assert record.lead.phone_e164 == "+6287812345678"
    # The business's own "from" must never be mistaken for the lead.
    from_only = kapso_item(base)
    assert only_message(parse_kapso("whatsapp.message.sent", from_only)).lead.phone_e164 is None


def test_kapso_phone_number_id_fallbacks_and_collection() -> None:
    body = kapso_item({"type": "text", "text": {"body": "x"}}, {"phone_number_id": "555"})
    del body["phone_number_id"]
    delivery = parse_kapso(RECEIVED, body)
    assert only_message(delivery).phone_number_id == "555"
    assert delivery.phone_number_ids == {"555"}
    batch = {
        "batch": True,
        "data": [
            kapso_item({"id": "wamid.A", "type": "text"}),
            kapso_item({"id": "wamid.B", "type": "text"}, phone_number_id="777"),
        ],
    }
    delivery = parse_kapso(RECEIVED, batch)
    assert [r.phone_number_id for r in delivery.records] == [PNID, "777"]
    assert delivery.phone_number_ids == {PNID, "777"}


def test_kapso_status_time_prefers_the_matching_status() -> None:
    statuses = [
        {"id": "wamid.T1", "status": "sent", "timestamp": "1789442140"},
        {"id": "wamid.T1", "status": "read", "timestamp": "1789442462"},
        {"id": "wamid.T1", "status": "delivered", "timestamp": "1789442143"},
    ]
    body = kapso_item({"type": "text", "text": {"body": "x"}}, {"statuses": statuses})
    record = only_message(parse_kapso("whatsapp.message.delivered", body))
    assert record.status_at == ts(1789442143)
    assert record.sent_at == ts(1789442140)


def test_kapso_status_before_sent_without_history_uses_message_timestamp() -> None:
    body = kapso_item({"type": "text", "text": {"body": "x"}})
    record = only_message(parse_kapso("whatsapp.message.read", body))
    assert (record.status, record.direction) == ("read", "outbound")
    assert record.sent_at == record.status_at == ts(1789441925)


def test_kapso_message_without_timestamp_uses_status_then_conversation_times() -> None:
    statuses = [{"status": "failed", "timestamp": "2026-09-18T01:00:02Z", "errors": [{"code": 1}]}]
    body = kapso_item({"type": "text"}, {"statuses": statuses})
    del body["message"]["timestamp"]
    record = only_message(parse_kapso("whatsapp.message.failed", body))
    assert record.sent_at == record.status_at == iso("2026-09-18T01:00:02")
    assert record.error == "1"
    body = kapso_item({"type": "text"}, conversation={"last_active_at": "2026-09-15T03:12:05Z"})
    del body["message"]["timestamp"]
    assert only_message(parse_kapso(RECEIVED, body)).sent_at == iso("2026-09-15T03:12:05")


def test_kapso_failed_without_errors_has_no_error_text() -> None:
    record = only_message(parse_kapso("whatsapp.message.failed", kapso_item({"type": "text"})))
    assert record.status == "failed"
    assert record.error is None


# --- Meta ---------------------------------------------------------------------------------------


def meta_change(value: dict[str, Any], pnid: str = PNID, field: str = "messages") -> dict[str, Any]:
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": pnid}, **value}
    return {"field": field, "value": value}


def meta_body(*entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": f"waba{i}", "changes": changes} for i, changes in enumerate(entries)],
    }


def text_message(wamid: str, sender: str | None, body: str = "Halo") -> dict[str, Any]:
    message = {"id": wamid, "timestamp": "1789606800", "type": "text", "text": {"body": body}}
    if sender is not None:
        message["from"] = sender
    return message


def test_meta_inbound_text_record() -> None:
    record = only(parse_file("meta/meta_inbound_text.json"))
    body = load("meta/meta_inbound_text.json")
    assert record == MessageRecord(
        wamid="wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABIYFDNBNUYwQzJCOUQ0MUU4N0E2QzEwAA==",
        direction="inbound",
        lead=LeadRef(phone_e164="+6281234567890", profile_name="Budi Santoso"),
        phone_number_id=PNID,
        message_type="text",
        body=body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
        sent_at=ts(1789441925),
        status="received",
        status_at=ts(1789441925),
    )


def test_meta_bsuid_contact_gives_username_and_name() -> None:
    lead = only_message(parse_file("meta/meta_inbound_text_bsuid.json")).lead
    assert lead == LeadRef(
        phone_e164="+6281398765432",
        bsuid="ID.20518847736620197345",
        username="@dewi.lestari",
        profile_name="Dewi Lestari 🌸",
    )


def test_meta_readable_bodies_from_fixtures() -> None:
    location = only_message(parse_file("meta/meta_inbound_location.json"))
    assert location.body == (
        "[Location] Summarecon Mall Bekasi, "
        "Jl. Boulevard Ahmad Yani, Marga Mulya, Bekasi Utara, Kota Bekasi"
    )
    image = only_message(parse_file("meta/meta_inbound_image.json"))
    assert image.body.startswith("[Image] Ini bukti transfer booking fee")
    button = only_message(parse_file("meta/meta_inbound_button_template_quick_reply.json"))
    assert (button.message_type, button.body) == ("button", "Masih minat")
    unsupported = only_message(parse_file("edge_cases/meta_unsupported_type.json"))
    assert (unsupported.message_type, unsupported.body) == (
        "unsupported",
        "[Unsupported message: edit]",
    )


def test_meta_statuses_are_status_records() -> None:
    delivery = parse_file("meta/meta_status_delivered_read_multi.json")
    statuses = [r for r in delivery.records if isinstance(r, StatusRecord)]
    assert len(statuses) == len(delivery.records)
    assert [(r.status, r.lead.phone_e164) for r in statuses] == [
        ("delivered", "+6281234567890"),
        ("read", "+6281234567890"),
        ("read", "+6285712345678"),
    ]
    failed = only(parse_file("meta/meta_status_failed.json"))
    assert isinstance(failed, StatusRecord)
    assert failed.error is not None
    assert failed.error.startswith("131047 Re-engagement message: Message failed to send")
    assert failed.status_at == ts(1789693202)


def test_meta_multi_change_matches_contacts_by_wa_id() -> None:
    delivery = parse_file("meta/meta_multi_change_batch.json")
    names = {m.lead.phone_e164: m.lead.profile_name for m in _messages(delivery)}
    assert names == {"+6285712345678": "Siti Rahmawati", "+6287812345678": "Agus Wijaya"}
    # Reversing contacts[] must not swap the names: order is not a promise.
    body = load("meta/meta_multi_change_batch.json")
    body["entry"][0]["changes"][0]["value"]["contacts"].reverse()
    reversed_names = {m.lead.phone_e164: m.lead.profile_name for m in _messages(parse_meta(body))}
    assert reversed_names == names


def test_meta_multi_entry_keeps_each_changes_phone_number_id() -> None:
    body = meta_body(
        [meta_change({"messages": [text_message("wamid.A", "6281234567890")]}, pnid="111")],
        [
            meta_change(
                {"statuses": [{"id": "wamid.B", "status": "read", "timestamp": "1"}]}, "222"
            ),
            meta_change({"event": "APPROVED"}, "333", field="message_template_status_update"),
        ],
    )
    delivery = parse_meta(body)
    assert [(type(r).__name__, r.phone_number_id) for r in delivery.records] == [
        ("MessageRecord", "111"),
        ("StatusRecord", "222"),
    ]
    assert delivery.phone_number_ids == {"111", "222", "333"}
    assert delivery.ignored == [
        "entry[1].changes[1]: field 'message_template_status_update' is not handled"
    ]


def test_meta_bsuid_only_sender() -> None:
    message = text_message("wamid.A", None)
    message["from_user_id"] = "ID.777"
    contacts = [
        {"profile": {"name": "Someone Else"}, "wa_id": "6281111111111"},
        {"profile": {"name": "Rina", "username": "@rina"}, "user_id": "ID.777"},
    ]
    record = only_message(
        parse_meta(meta_body([meta_change({"messages": [message], "contacts": contacts})]))
    )
    assert record.lead == LeadRef(bsuid="ID.777", username="@rina", profile_name="Rina")


def test_meta_status_with_hidden_phone_and_conversation() -> None:
    status = {
        "id": "wamid.S",
        "status": "DELIVERED",
        "timestamp": "1789442143",
        "recipient_user_id": "ID.42",
        "conversation": {"id": "conv-9"},
    }
    record = only(parse_meta(meta_body([meta_change({"statuses": [status]})])))
    assert isinstance(record, StatusRecord)
    assert (record.status, record.lead, record.conversation_ref) == (
        "delivered",
        LeadRef(bsuid="ID.42"),
        "conv-9",
    )


def test_meta_value_level_errors_are_noted() -> None:
    errors = [{"code": 131000, "title": "Something went wrong"}]
    delivery = parse_meta(meta_body([meta_change({"errors": errors})]))
    assert delivery.records == []
    assert delivery.ignored == ["entry[0].changes[0]: error 131000 Something went wrong"]


@pytest.mark.parametrize(
    "body",
    [
        {"object": "page", "entry": [{"id": "1", "messaging": []}]},
        {"entry": []},
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": []},
    ],
)
def test_meta_bodies_without_messages_are_ignored_with_a_reason(body: dict[str, Any]) -> None:
    delivery = parse_meta(body)
    assert delivery.records == []
    assert delivery.ignored


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "JSON object"),
        ("x", "JSON object"),
        (None, "JSON object"),
        ({"object": "whatsapp_business_account", "entry": {}}, "entry"),
        ({"object": "whatsapp_business_account", "entry": [[]]}, r"entry\[0\]"),
        ({"object": "whatsapp_business_account", "entry": [{"changes": "x"}]}, "changes"),
        (meta_body([{"field": "messages", "value": []}]), "value"),
        (meta_body([meta_change({"messages": {}})]), "messages"),
        (meta_body([meta_change({"messages": ["x"]})]), r"messages\[0\]"),
        (meta_body([meta_change({"messages": [{"type": "text", "timestamp": "1"}]})]), "no id"),
        (meta_body([meta_change({"messages": [{"id": "wamid.A", "type": "text"}]})]), "timestamp"),
        (meta_body([meta_change({"statuses": [{"id": "wamid.A", "timestamp": "1"}]})]), "status"),
    ],
)
def test_meta_malformed_bodies_raise(body: Any, fragment: str) -> None:
    with pytest.raises(MalformedPayload, match=fragment):
        parse_meta(body)


def test_meta_duplicate_parses_to_the_original_records() -> None:
    original = parse_file("meta/meta_inbound_text.json").records
    assert parse_file("edge_cases/meta_duplicate_retry_same_body.json").records == original


# --- phone_number_id lookups before the signature check ---------------------------------------

WEIRD_JSON: list[Any] = [
    None,
    True,
    0,
    1.5,
    "",
    "phone_number_id",
    [],
    [None, 1, {"phone_number_id": "x"}],
    {},
    {"entry": "x"},
    {"entry": [None, 1, "x", {"changes": "x"}, {"changes": [None, {"value": []}]}]},
    {"entry": [{"changes": [{"value": {"metadata": "x"}}, {"value": {"metadata": None}}]}]},
    {"entry": [{"changes": [{"value": {"metadata": {"phone_number_id": ["x"]}}}]}]},
    {"data": "x"},
    {"data": [None, 3, {"message": [], "conversation": "x"}, {"message": {"kapso": 5}}]},
    {"phone_number_id": None, "conversation": [], "message": {"kapso": {"phone_number_id": {}}}},
    {"phone_number_id": True},
]


@pytest.mark.parametrize("payload", WEIRD_JSON)
def test_phone_number_id_lookups_never_raise(payload: Any) -> None:
    assert kapso_phone_number_ids(payload) == set()
    assert meta_phone_number_ids(payload) == set()


def test_phone_number_id_lookups_find_every_place() -> None:
    kapso = {
        "phone_number_id": "1",
        "conversation": {"phone_number_id": "2"},
        "message": {"kapso": {"phone_number_id": 3}},
        "data": [{"phone_number_id": "4"}, {"conversation": {"phone_number_id": " 5 "}}],
    }
    assert kapso_phone_number_ids(kapso) == {"1", "2", "3", "4", "5"}
    meta = meta_body([meta_change({}, "10"), meta_change({}, "11")], [meta_change({}, "10")])
    assert meta_phone_number_ids(meta) == {"10", "11"}
    # Bodies that name no number: the service must find the workspace another way.
    assert kapso_phone_number_ids(load("edge_cases/kapso_dashboard_test_event.json")) == set()
    assert meta_phone_number_ids(load("edge_cases/meta_empty_entry.json")) == set()
    assert meta_phone_number_ids(load("edge_cases/meta_wrong_object.json")) == set()


# --- timestamps and error text -----------------------------------------------------------------

MOMENT = datetime(2026, 9, 15, 3, 12, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "1789441925",
        " 1789441925 ",
        1789441925,
        1789441925.0,
        "1789441925000",  # milliseconds
        "2026-09-15T03:12:05Z",
        "2026-09-15T03:12:05.000Z",
        "2026-09-15T03:12:05+00:00",
        "2026-09-15T10:12:05+07:00",
        "2026-09-15T03:12:05",  # no offset: UTC, never the server's zone
    ],
)
def test_parse_timestamp_gives_aware_utc(value: Any) -> None:
    parsed = parse_timestamp(value)
    assert parsed == MOMENT
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["", "soon", "2026-13-40T00:00:00Z", None, True, [], {}, "nan"])
def test_parse_timestamp_rejects_garbage(value: Any) -> None:
    with pytest.raises(MalformedPayload):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("errors", "text"),
    [
        (
            [{"code": 131047, "title": "Re-engagement message", "error_data": {"details": "24h"}}],
            "131047 Re-engagement message: 24h",
        ),
        (
            [{"code": 131026, "title": "Undeliverable", "message": "Undeliverable"}],
            "131026 Undeliverable",
        ),
        (
            [{"code": 130429, "title": "Rate limit", "message": "Too many"}],
            "130429 Rate limit: Too many",
        ),
        ([{"message": "Only a message"}], "Only a message"),
        ([], None),
        ("not a list", None),
        ([None, {"code": 1}], "1"),
    ],
)
def test_error_text(errors: Any, text: str | None) -> None:
    assert error_text(errors) == text


def test_records_are_not_shared_between_parses() -> None:
    body = load("kapso/kapso_message_received_text.json")
    untouched = copy.deepcopy(body)
    first = parse_kapso(RECEIVED, body)
    assert body == untouched, "parsing must not modify the payload"
    first.records.clear()
    assert len(parse_kapso(RECEIVED, body).records) == 1
