"""GET/POST /sarah/state and the JSON API over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import Connection, select, text

from app.db import Database
from app.leads.models import Contact, LeadChange
from app.leads.services import _search_text_sql
from app.sarah.models import SarahState
from app.sync.models import SyncFailure
from app.sync.services import log_sync_failure
from app.workspaces.models import Workspace
from tests import helpers
from tests.conftest import add_workspace, fixture_delivery

Client = AsyncTestClient[Litestar]
KEY = "test-sarah-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PHONE = "+6281234567890"


@pytest.fixture
async def workspace(database_url: str) -> Workspace:
    return await add_workspace(database_url, sarah_key=KEY)


def state(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contact_phone": PHONE,
        "state": "qualifying",
        "lead_score": 45,
        "lead_temperature": "warm",
        "extracted_data": {"name": "Budi", "business_type": "katering", "domisili": "Bekasi"},
        "language": "id",
        "message_count": 3,
    }
    body.update(overrides)
    return body


async def post_state(client: Client, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/sarah/state", json=state(**overrides), headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


async def lead(db: Database) -> Contact:
    [contact] = await helpers.contacts(db)
    return contact


async def history(db: Database) -> list[tuple[str, str | None, str | None, str]]:
    async with db.session() as session:
        rows = (await session.execute(select(LeadChange).order_by(LeadChange.id))).scalars()
        return [(r.field, r.old_value, r.new_value, r.source) for r in rows]


# -- the contract ------
async def test_default_state_for_a_new_conversation(client: Client) -> None:
    response = await client.get(
        "/sarah/state", params={"contact_phone": "0812-3456-7890"}, headers=AUTH
    )
    assert response.status_code == 200
    assert response.json() == {
        "contact_phone": PHONE,
        "state": "greeting",
        "lead_score": 0,
        "lead_temperature": "cold",
        "extracted_data": {},
        "language": "id",
        "message_count": 0,
    }


async def test_post_then_get_round_trip(client: Client) -> None:
    assert await post_state(client) == {"success": True, "sync": True, "syncReason": None}
    got = (await client.get("/sarah/state", params={"contact_phone": PHONE}, headers=AUTH)).json()
    assert (got["state"], got["lead_score"], got["lead_temperature"], got["message_count"]) == (
        "qualifying",
        45,
        "warm",
        3,
    )
    assert got["extracted_data"]["business_type"] == "katering"


async def test_wrong_or_missing_key_is_401(client: Client) -> None:
    assert (await client.post("/sarah/state", json=state())).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.post("/sarah/state", json=state(), headers=bad)).status_code == 401
    assert (
        await client.get("/sarah/state", params={"contact_phone": PHONE}, headers=bad)
    ).status_code == 401
    assert (await client.get("/api/stats", headers=bad)).status_code == 401


async def test_invalid_body_is_400_naming_the_fields(client: Client, db: Database) -> None:
    response = await client.post(
        "/sarah/state",
        json={
            "contact_phone": "abc",
            "lead_score": "high",
            "extracted_data": [],
            "message_count": -1,
        },
        headers=AUTH,
    )
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert set(fields) == {"contact_phone", "lead_score", "extracted_data", "message_count"}
    assert await helpers.contacts(db) == []
    bad_json = await client.post("/sarah/state", content=b"{nope", headers=AUTH)
    assert bad_json.status_code == 400 and bad_json.json()["success"] is False


# -- the sync ------
async def test_bot_faster_than_webhook_creates_the_lead(client: Client, db: Database) -> None:
    await post_state(client)
    contact = await lead(db)
    assert (contact.phone_e164, contact.status, contact.score, contact.temperature) == (
        PHONE,
        "qualified",
        45,
        "warm",
    )
    assert (contact.name, contact.business_type, contact.location, contact.phase) == (
        "Budi",
        "katering",
        "Bekasi",
        "qualifying",
    )
    assert contact.status_changed_by == "sarah-bot"
    # The webhook arriving later lands on the same lead.
    body, headers = fixture_delivery("kapso_message_received_text.json")
    assert (await client.post("/webhooks/kapso", content=body, headers=headers)).status_code == 200
    contact = await lead(db)
    assert contact.message_count == 1 and contact.profile_name == "Budi Santoso"


async def test_merge_keeps_earlier_fields_and_existing_name(client: Client, db: Database) -> None:
    body, headers = fixture_delivery("kapso_message_received_text.json")
    await client.post("/webhooks/kapso", content=body, headers=headers)
    await post_state(client)
    await post_state(
        client,
        state="validate_pain_points",
        extracted_data={
            "name": "Someone Else",
            "business_type": "",
            "pain_points": ["kewalahan chat"],
        },
    )
    contact = await lead(db)
    assert contact.name == "Budi"  # set once by the bot, then never replaced
    assert contact.business_type == "katering" and contact.location == "Bekasi"
    assert contact.pain_points == ["kewalahan chat"]


async def test_each_real_change_is_recorded_once(client: Client, db: Database) -> None:
    await post_state(client, state="greeting", lead_score=10, lead_temperature="cold")
    for _ in range(3):
        await post_state(client, state="qualifying", lead_score=45, lead_temperature="warm")
    await post_state(client, state="scoring", lead_score=80, lead_temperature="hot")
    assert await history(db) == [
        ("score", None, "10", "bot"),
        ("temperature", None, "cold", "bot"),
        ("status", "new", "qualified", "bot"),
        ("score", "10", "45", "bot"),
        ("temperature", "cold", "warm", "bot"),
        ("score", "45", "80", "bot"),
        ("temperature", "warm", "hot", "bot"),
    ]


async def test_a_status_a_human_set_is_not_overwritten_until_handed_back(
    client: Client, db: Database
) -> None:
    await post_state(client, state="qualifying")
    contact = await lead(db)
    response = await client.post(
        f"/api/leads/{contact.id}/status",
        json={"status": "archived", "actor": "Rina"},
        headers=AUTH,
    )
    assert response.json() == {"changed": True}
    await post_state(client, state="handoff", lead_score=90, lead_temperature="hot")
    contact = await lead(db)
    assert (contact.status, contact.status_source, contact.score) == ("archived", "human", 90)
    await client.post(
        f"/api/leads/{contact.id}/status", json={"release_to_bot": True}, headers=AUTH
    )
    await post_state(client, state="completed")
    contact = await lead(db)
    assert (contact.status, contact.status_source) == ("converted", "bot")
    statuses = [h for h in await history(db) if h[0] == "status"]
    assert statuses == [
        ("status", "new", "qualified", "bot"),
        ("status", "qualified", "archived", "human"),
        ("status", "archived", "converted", "bot"),
    ]


async def test_unknown_state_keeps_the_status(client: Client, db: Database) -> None:
    await post_state(client, state="handoff")
    await post_state(client, state="something_new")
    contact = await lead(db)
    assert (contact.status, contact.phase) == ("contacted", "something_new")


async def test_score_clamped_and_bad_temperature_is_cold(client: Client, db: Database) -> None:
    await post_state(client, lead_score=250, lead_temperature="boiling")
    contact = await lead(db)
    assert (contact.score, contact.temperature) == (100, "cold")


# -- failures ------
async def test_a_failed_sync_keeps_the_state_and_is_logged(client: Client, db: Database) -> None:
    result = await post_state(client, extracted_data={"pain_points": 42})
    assert result["success"] is True and result["sync"] is False
    assert "pain_points" in result["syncReason"]
    async with db.session() as session:
        saved = (await session.execute(select(SarahState))).scalar_one()
        failure = (await session.execute(select(SyncFailure))).scalar_one()
    assert saved.extracted_data == {"pain_points": 42}
    assert (failure.source, failure.contact_phone, failure.resolved) == ("sarah", PHONE, False)
    assert await helpers.contacts(db) == []  # the savepoint rolled the lead back with the sync

    listed = (
        await client.get("/api/sync/failures", params={"source": "sarah"}, headers=AUTH)
    ).json()
    assert listed["count"] == 1 and listed["failures"][0]["id"] == failure.id
    resolved = await client.post(
        "/api/sync/failures/resolve", json={"ids": [failure.id]}, headers=AUTH
    )
    assert resolved.json() == {"resolved": 1}
    unresolved = await client.get("/api/sync/failures", params={"unresolved": "true"}, headers=AUTH)
    assert unresolved.json()["count"] == 0


async def test_a_database_error_in_the_sync_is_logged(
    client: Client, db: Database, database_url: str
) -> None:
    """A trigger makes every update of a lead fail: a real database error, not a mock."""
    await post_state(client)
    async with db.write() as session:
        if database_url.startswith("sqlite"):
            await session.execute(
                text(
                    "CREATE TRIGGER no_updates BEFORE UPDATE ON contacts "
                    "BEGIN SELECT RAISE(ABORT, 'contacts are read-only'); END"
                )
            )
        else:
            await session.execute(
                text(
                    "CREATE FUNCTION no_updates() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'contacts are read-only'; END $$"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER no_updates BEFORE UPDATE ON contacts "
                    "FOR EACH ROW EXECUTE FUNCTION no_updates()"
                )
            )
    result = await post_state(client, lead_score=99)
    assert result["sync"] is False and "read-only" in result["syncReason"]
    got = (await client.get("/sarah/state", params={"contact_phone": PHONE}, headers=AUTH)).json()
    assert got["lead_score"] == 99
    assert await helpers.count(db, SyncFailure) == 1


async def test_retention_keeps_the_newest_per_workspace(
    db: Database, workspace: Workspace, database_url: str
) -> None:
    other = await add_workspace(database_url, name="Other", phone_number_id="1", sarah_key="k2")

    def fill(conn: Connection) -> None:
        log_sync_failure(conn, other.id, source="sarah", error="keep me")  # type: ignore[arg-type]
        for i in range(12):
            log_sync_failure(conn, workspace.id, source="sarah", error=f"e{i}", keep=5)  # type: ignore[arg-type]

    await db.run_write(fill)
    async with db.session() as session:
        rows = (await session.execute(select(SyncFailure).order_by(SyncFailure.id))).scalars().all()
    mine = [r.error for r in rows if r.workspace_id == workspace.id]
    assert mine == ["e7", "e8", "e9", "e10", "e11"]
    assert [r.error for r in rows if r.workspace_id == other.id] == ["keep me"]


# -- queries the dashboard used ------
async def test_leads_and_stats_are_scoped_and_filtered(
    client: Client, db: Database, database_url: str
) -> None:
    await post_state(
        client, contact_phone="081111111111", lead_score=90, lead_temperature="hot", state="handoff"
    )
    await post_state(client, contact_phone="082222222222", lead_score=40, lead_temperature="warm")
    await post_state(
        client,
        contact_phone="083333333333",
        lead_score=20,
        lead_temperature="cold",
        state="greeting",
    )
    await add_workspace(database_url, name="Other", phone_number_id="1", sarah_key="other-key")
    other = {"Authorization": "Bearer other-key"}
    await client.post(
        "/sarah/state",
        json=state(contact_phone="084444444444", lead_score=100, lead_temperature="hot"),
        headers=other,
    )
    hot = (await client.get("/api/leads", params={"temperature": "hot"}, headers=AUTH)).json()
    assert [lead["phone_e164"] for lead in hot["leads"]] == ["+6281111111111"]
    everyone = (await client.get("/api/leads", headers=AUTH)).json()["leads"]
    assert [lead["score"] for lead in everyone] == [90, 40, 20]
    stats = (await client.get("/api/stats", headers=AUTH)).json()
    assert stats["total"] == 3 and stats["average_score"] == 50.0
    assert stats["by_temperature"] == {"hot": 1, "warm": 1, "lukewarm": 0, "cold": 1}
    assert stats["by_status"]["contacted"] == 1 and stats["by_status"]["qualified"] == 1
    bad = await client.get("/api/leads", params={"temperature": "boiling"}, headers=AUTH)
    assert bad.status_code == 400


async def test_status_of_another_workspaces_lead_is_404(
    client: Client, db: Database, database_url: str
) -> None:
    await add_workspace(database_url, name="Other", phone_number_id="1", sarah_key="other-key")
    await client.post("/sarah/state", json=state(), headers={"Authorization": "Bearer other-key"})
    theirs = (await helpers.contacts(db))[0]
    response = await client.post(
        f"/api/leads/{theirs.id}/status", json={"status": "archived"}, headers=AUTH
    )
    assert response.status_code == 404


# -- concurrency ------
async def test_concurrent_sarah_posts_and_webhooks_lose_nothing(
    client: Client, db: Database
) -> None:
    """50 bot updates interleaved with webhooks for one lead: a consistent end state, and one
    history row per real change."""
    scores = [min(100, 10 + i * 2) for i in range(50)]
    bodies = [
        state(
            lead_score=s,
            lead_temperature="hot" if s >= 80 else "warm",
            state="scoring" if s >= 60 else "qualifying",
            extracted_data={"business_type": "katering", "pain_points": [f"p{i}"]},
        )
        for i, s in enumerate(scores)
    ]
    webhooks = [
        fixture_delivery(n)
        for n in (
            "kapso_message_received_text.json",
            "kapso_batch_message_received.json",
            "kapso_duplicate_wamid_second_new_key.json",
        )
    ]

    async def sarah(body: dict[str, Any]) -> int:
        return (await client.post("/sarah/state", json=body, headers=AUTH)).status_code

    async def hook(delivery: tuple[bytes, dict[str, str]]) -> int:
        body, headers = delivery
        return (await client.post("/webhooks/kapso", content=body, headers=headers)).status_code

    tasks = [sarah(b) for b in bodies]
    for i, delivery in enumerate(webhooks):
        tasks.insert(i * 15, hook(delivery))
    codes = await asyncio.gather(*tasks)
    assert set(codes) == {200}
    contact = await lead(db)
    async with db.session() as session:
        saved = (await session.execute(select(SarahState))).scalar_one()
    # The lead agrees with the last state the bot saved, whichever request that was.
    assert contact.score == saved.lead_score and contact.temperature == saved.lead_temperature
    assert contact.business_type == "katering" and contact.profile_name == "Budi Santoso"
    assert contact.message_count == 4  # text + 3 batched; the duplicate wamid is not counted
    assert contact.pain_points == saved.extracted_data["pain_points"]
    rows = await history(db)
    scores_seen = [(old, new) for field, old, new, _ in rows if field == "score"]
    # A chain: each row starts where the previous ended; no change recorded twice.
    for (_, prev_new), (next_old, _) in itertools.pairwise(scores_seen):
        assert prev_new == next_old
    assert all(old != new for old, new in scores_seen)
    assert scores_seen[-1][1] == str(contact.score)
    statuses = [(old, new) for field, old, new, _ in rows if field == "status"]
    assert len(statuses) == len(set(statuses)) and all(o != n for o, n in statuses)


async def test_what_the_bot_learns_is_searchable_as_the_database_would_compute_it(
    client: Client, db: Database
) -> None:
    await post_state(
        client, extracted_data={"name": "Budi Santoso", "business_type": "Warung Kopi"}
    )
    await post_state(client, extracted_data={"domisili": "Bekasi"})  # and a later field
    contact = await lead(db)
    assert contact.name == "Budi Santoso" and contact.business_type == "Warung Kopi"
    # The text written with the update is the one the SQL expression builds from the row.
    async with db.session() as session:
        recomputed = (
            await session.execute(
                select(_search_text_sql()).where(Contact.id == contact.id)  # type: ignore[arg-type]
            )
        ).scalar_one()
    assert contact.search_text == recomputed
    for words in ("budi santoso", "warung kopi", "bekasi"):
        assert words in contact.search_text
