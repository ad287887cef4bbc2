"""POST /webhooks/kapso over HTTP against a real database and Redis."""

from __future__ import annotations

import json

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.db import Database
from app.ingest.signatures import kapso_signature
from app.leads.models import Message
from tests import helpers
from tests.conftest import KAPSO_SECRET, MANIFEST, WEBHOOKS, add_workspace, fixture_delivery

Client = AsyncTestClient[Litestar]

TEXT = "kapso_message_received_text.json"
TEXT_WAMID = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABIYFDNBNUYwQzJCOUQ0MUU4N0E2QzEwAA=="
OUT_WAMID = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjRCN0UyMUMwRjlBM0Q1RTZCMQA="


async def post(client: Client, name: str, **header_overrides: str) -> tuple[int, dict]:
    body, headers = fixture_delivery(name)
    headers.update(header_overrides)
    response = await client.post("/webhooks/kapso", content=body, headers=headers)
    return response.status_code, response.json()


KAPSO_FILES = [
    f["file"].split("/")[-1] for f in MANIFEST["files"] if f["file"].startswith("kapso/")
]


@pytest.mark.parametrize("name", KAPSO_FILES)
async def test_every_kapso_fixture_is_accepted(client: Client, db: Database, name: str) -> None:
    status, body = await post(client, name)
    assert status == 200, body
    expected = "ignored" if "marketing_preference" in name else "processed"
    assert body["status"] == expected


async def test_inbound_text_creates_lead_message_and_event(client: Client, db: Database) -> None:
    status, body = await post(client, TEXT)
    assert (status, body["status"], body["new_messages"], body["leads"]) == (200, "processed", 1, 1)
    [contact] = await helpers.contacts(db)
    assert contact.phone_e164 == "+6281234567890"
    assert contact.profile_name == "Budi Santoso"
    assert contact.message_count == 1
    assert contact.last_message_preview and contact.last_message_preview.startswith("Halo kak")
    assert contact.last_inbound_at is not None and contact.last_contact_at is None
    msg = await helpers.message(db, TEXT_WAMID)
    assert msg is not None and msg.direction == "inbound" and msg.status == "received"
    [inbox] = await helpers.inbox(db)
    assert inbox.processed_at is not None and inbox.error is None
    assert inbox.delivery_key == "65cc5c1f-d64d-55fb-9d2f-858edc5657c9"
    events = await helpers.change_events(db)
    assert [(e.kind, e.contact_id) for e in events] == [("lead", contact.id)]


async def test_retry_with_same_idempotency_key_is_a_counted_duplicate(
    client: Client, db: Database
) -> None:
    assert (await post(client, "kapso_duplicate_wamid_first.json"))[0] == 200
    status, body = await post(client, "kapso_retry_same_idempotency_key.json")
    assert (status, body["status"]) == (200, "duplicate")
    [row] = await helpers.inbox(db)
    assert row.duplicates == 1
    assert await helpers.count(db, Message) == 1
    assert len(await helpers.change_events(db)) == 1


async def test_same_wamid_under_new_key_is_not_counted_twice(client: Client, db: Database) -> None:
    await post(client, "kapso_duplicate_wamid_first.json")
    status, body = await post(client, "kapso_duplicate_wamid_second_new_key.json")
    assert status == 200 and body["new_messages"] == 0
    [contact] = await helpers.contacts(db)
    assert contact.message_count == 1
    assert await helpers.count(db, Message) == 1


async def test_statuses_never_go_backwards(client: Client, db: Database) -> None:
    await post(client, "kapso_message_read.json")
    await post(client, "kapso_message_delivered.json")
    await post(client, "kapso_message_sent_text.json")
    msg = await helpers.message(db, OUT_WAMID)
    assert msg is not None and msg.status == "read"
    assert msg.body  # the content came with the first (read) delivery
    [contact] = await helpers.contacts(db)
    assert contact.message_count == 1 and contact.last_contact_at is not None


async def test_status_moves_forward(client: Client, db: Database) -> None:
    for name in ("kapso_message_sent_text.json", "kapso_message_delivered.json"):
        await post(client, name)
        msg = await helpers.message(db, OUT_WAMID)
        assert msg is not None
    assert msg.status == "delivered"
    _, body = await post(client, "kapso_message_read.json")
    assert body["status_updates"] == 1
    msg = await helpers.message(db, OUT_WAMID)
    assert msg is not None and msg.status == "read"


async def test_failed_message_keeps_its_error(client: Client, db: Database) -> None:
    await post(client, "kapso_message_failed.json")
    [msg] = await helpers.messages(db)
    assert msg.status == "failed"
    assert msg.error and "131047" in msg.error


async def test_batch_delivery_applies_every_item(client: Client, db: Database) -> None:
    status, body = await post(client, "kapso_batch_message_received.json")
    assert status == 200 and body["new_messages"] == 3 and body["leads"] == 1
    [contact] = await helpers.contacts(db)
    assert contact.message_count == 3
    assert contact.last_message_preview and "diskon" in contact.last_message_preview
    assert len(await helpers.change_events(db)) == 1  # one event per lead, not per message


async def test_batch_flag_in_body_without_header(client: Client, db: Database) -> None:
    body, headers = fixture_delivery("kapso_batch_message_received.json")
    headers.pop("X-Webhook-Batch")
    response = await client.post("/webhooks/kapso", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["new_messages"] == 3


async def test_alias_path_and_missing_top_level_phone_number_id(
    client: Client, db: Database
) -> None:
    body, headers = fixture_delivery("kapso_missing_top_level_phone_number_id.json")
    response = await client.post("/webhook/kapso", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "processed"


async def test_formatted_conversation_phone_is_normalised(client: Client, db: Database) -> None:
    status, _ = await post(client, "kapso_missing_from_formatted_conversation_phone.json")
    assert status == 200
    [contact] = await helpers.contacts(db)
    assert contact.phone_e164 == "+6281234567890"


async def test_identity_change_updates_the_lead(client: Client, db: Database) -> None:
    await post(client, TEXT)
    await post(client, "kapso_contact_identity_changed.json")
    [contact] = await helpers.contacts(db)
    assert contact.bsuid == "ID.10482273615590381744"
    assert contact.username == "@budisantoso"


async def test_conversation_lifecycle(client: Client, db: Database) -> None:
    await post(client, "kapso_conversation_created.json")
    await post(client, "kapso_conversation_ended.json")
    convs = await helpers.conversations(db)
    assert convs and any(c.status == "ended" and c.ended_at is not None for c in convs)


async def test_dashboard_test_event_is_acknowledged_and_not_stored(
    client: Client, db: Database
) -> None:
    status, body = await post(client, "kapso_dashboard_test_event.json")
    assert (status, body["status"]) == (200, "test")
    assert await helpers.inbox(db) == [] and await helpers.contacts(db) == []


async def test_unknown_event_is_200_and_ignored(client: Client, db: Database) -> None:
    status, body = await post(client, "kapso_unknown_event.json")
    assert (status, body["status"]) == (200, "ignored")
    assert await helpers.contacts(db) == []
    [row] = await helpers.inbox(db)
    assert row.processed_at is not None and row.error and "ignored" in row.error


async def test_unknown_message_type_is_stored_readably(client: Client, db: Database) -> None:
    status, _ = await post(client, "kapso_unknown_message_type.json")
    assert status == 200
    [msg] = await helpers.messages(db)
    assert msg.body  # something a person can read, never an empty row


# -- refusals ------------------------------------------------------------------------------------
async def test_bad_signature_is_401_and_stores_nothing(client: Client, db: Database) -> None:
    status, body = await post(client, "kapso_bad_signature.json")
    assert status == 401 and "signature" in body["error"].lower()
    assert await helpers.inbox(db) == [] and await helpers.contacts(db) == []


async def test_missing_signature_is_401(client: Client, db: Database) -> None:
    body, headers = fixture_delivery(TEXT)
    headers.pop("X-Webhook-Signature")
    response = await client.post("/webhooks/kapso", content=body, headers=headers)
    assert response.status_code == 401


async def test_signature_over_reserialised_json_is_401(client: Client, db: Database) -> None:
    body, headers = fixture_delivery(TEXT)
    reserialised = json.dumps(json.loads(body)).encode()
    response = await client.post("/webhooks/kapso", content=reserialised, headers=headers)
    assert response.status_code == 401


async def test_signed_with_another_workspaces_secret_is_401(
    client: Client, db: Database, database_url: str
) -> None:
    await add_workspace(
        database_url, name="Other", phone_number_id="555000111", webhook_secret="other"
    )
    body, headers = fixture_delivery(TEXT)
    headers["X-Webhook-Signature"] = kapso_signature("other", body)
    response = await client.post("/webhooks/kapso", content=body, headers=headers)
    assert response.status_code == 401
    assert await helpers.contacts(db) == []


async def test_truncated_json_is_400(client: Client, db: Database) -> None:
    entry = next(f for f in MANIFEST["files"] if f["file"].endswith(".invalid_json"))
    body = (WEBHOOKS / entry["file"]).read_bytes()
    response = await client.post("/webhooks/kapso", content=body, headers=entry["headers"])
    assert response.status_code == 400
    assert "json" in response.json()["error"].lower()
    assert await helpers.inbox(db) == []


async def test_unknown_phone_number_id_is_404(client: Client, db: Database) -> None:
    body, headers = fixture_delivery(TEXT)
    body = body.replace(b"109876543210987", b"999999999999999")
    headers["X-Webhook-Signature"] = kapso_signature(KAPSO_SECRET, body)
    response = await client.post("/webhooks/kapso", content=body, headers=headers)
    assert response.status_code == 404
    assert "999999999999999" in response.json()["error"]


async def test_oversize_body_is_413(client: Client, db: Database) -> None:
    body = b'{"pad": "' + b"x" * 1_100_000 + b'"}'
    response = await client.post(
        "/webhooks/kapso", content=body, headers={"X-Webhook-Event": "whatsapp.message.received"}
    )
    assert response.status_code == 413
    assert await helpers.inbox(db) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[]",
        b"42",
        b'"text"',
        b'{"message": 5}',
        b'{"phone_number_id": ["x"]}',
        b'{"data": "nope", "batch": true, "phone_number_id": "109876543210987"}',
    ],
)
async def test_odd_bodies_never_500(client: Client, db: Database, body: bytes) -> None:
    headers = {
        "X-Webhook-Event": "whatsapp.message.received",
        "X-Webhook-Signature": kapso_signature(KAPSO_SECRET, body),
    }
    response = await client.post("/webhooks/kapso", content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert "Traceback" not in response.text
