"""POST/GET /webhooks/whatsapp: Meta's raw Cloud API format."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.db import Database
from app.leads.models import Message
from tests import helpers
from tests.conftest import MANIFEST, fixture_delivery

Client = AsyncTestClient[Litestar]

META_FILES = [
    f["file"].split("/")[-1]
    for f in MANIFEST["files"]
    if f["file"].startswith("meta/") and f["file"].endswith(".json")
]


async def post(client: Client, name: str) -> tuple[int, dict]:
    body, headers = fixture_delivery(name)
    response = await client.post("/webhooks/whatsapp", content=body, headers=headers)
    return response.status_code, response.json()


@pytest.mark.parametrize("name", META_FILES)
async def test_every_meta_fixture_is_accepted(client: Client, name: str) -> None:
    status, body = await post(client, name)
    assert status == 200, body
    assert body["status"] == "processed"


async def test_inbound_text_with_profile_name(client: Client, db: Database) -> None:
    await post(client, "meta_inbound_text.json")
    [contact] = await helpers.contacts(db)
    assert (contact.phone_e164, contact.profile_name) == ("+6281234567890", "Budi Santoso")


async def test_hidden_phone_lead_is_keyed_by_bsuid(client: Client, db: Database) -> None:
    await post(client, "meta_inbound_text_bsuid.json")
    [contact] = await helpers.contacts(db)
    assert contact.bsuid == "ID.20518847736620197345"


async def test_multi_change_body_applies_messages_and_statuses(
    client: Client, db: Database
) -> None:
    status, body = await post(client, "meta_multi_change_batch.json")
    assert status == 200 and body["new_messages"] == 2 and body["status_updates"] == 1
    phones = sorted(c.phone_e164 or "" for c in await helpers.contacts(db))
    assert phones == ["+6281234567890", "+6285712345678", "+6287812345678"]


async def test_same_body_retried_is_a_duplicate(client: Client, db: Database) -> None:
    await post(client, "meta_inbound_text.json")
    status, body = await post(client, "meta_duplicate_retry_same_body.json")
    assert (status, body["status"]) == (200, "duplicate")
    assert await helpers.count(db, Message) == 1


async def test_status_for_unknown_message_is_kept(client: Client, db: Database) -> None:
    await post(client, "meta_status_failed.json")
    [msg] = await helpers.messages(db)
    assert msg.status == "failed" and msg.error and "131047" in msg.error


async def test_statuses_arriving_out_of_order(client: Client, db: Database) -> None:
    await post(client, "meta_status_delivered_read_multi.json")
    await post(client, "meta_status_sent.json")
    msg = await helpers.message(
        db, "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjRCN0UyMUMwRjlBM0Q1RTZCMQA="
    )
    assert msg is not None and msg.status == "read"


@pytest.mark.parametrize(
    "name", ["meta_empty_entry.json", "meta_wrong_object.json", "meta_non_messages_field.json"]
)
async def test_nothing_to_apply_is_200_ignored(client: Client, db: Database, name: str) -> None:
    status, body = await post(client, name)
    assert (status, body["status"]) == (200, "ignored")
    assert await helpers.contacts(db) == []


async def test_bad_meta_signature_is_401(client: Client, db: Database) -> None:
    body, headers = fixture_delivery("meta_inbound_text.json")
    headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    response = await client.post("/webhooks/whatsapp", content=body, headers=headers)
    assert response.status_code == 401
    assert await helpers.contacts(db) == []


async def test_handshake_echoes_challenge_for_the_right_token(client: Client) -> None:
    ok = await client.get(
        "/webhooks/whatsapp",
        params={
            "hub.mode": "subscribe",
            "hub.challenge": "1158201444",
            "hub.verify_token": "rahasia-verify-token-dashboard",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = await client.get(
        "/webhooks/whatsapp",
        params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "guess"},
    )
    assert wrong.status_code == 403
