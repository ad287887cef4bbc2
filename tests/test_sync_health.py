"""Data-feed health: the rules with a controlled clock, the figures from the database, the JSON
(GET /api/sync/health), the /sync page with its Resolve form, and the board's feed indicator."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select

from app.db import Database, utcnow
from app.i18n import language
from app.ingest.models import WebhookInbox
from app.leads.models import Contact
from app.reconcile.health import (
    RATE_SAMPLE,
    Issue,
    assess_feed,
    feed_health,
    record_heartbeat,
    silence_limits,
)
from app.reconcile.services import reconcile_workspace
from app.sync.models import SyncFailure
from app.sync.services import log_sync_failure
from app.workspaces.models import Workspace
from tests.conftest import add_workspace, fixture_delivery

Client = AsyncTestClient[Litestar]
KEY = "test-sync-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
H = timedelta(hours=1)


@pytest.fixture
async def workspace(database_url: str) -> Workspace:
    return await add_workspace(database_url, sarah_key=KEY)


def judge(**overrides: Any) -> tuple[Issue, ...]:
    """The judgement for a healthy feed, with some figures changed."""
    figures: dict[str, Any] = dict(
        now=NOW,
        last_webhook_at=NOW - 5 * MIN,
        events_last_day=48,
        inbox_backlog=0,
        inbox_failed_last_day=0,
        sync_failures_unresolved=0,
        last_run_error=None,
        worker_last_seen_at=NOW - 20 * timedelta(seconds=1),
    )
    figures.update(overrides)
    return assess_feed(**figures)


def assess(**overrides: Any) -> list[tuple[str, str]]:
    return [(i.state, i.message) for i in judge(**overrides)]


# -- the rules -----------------------------------------------------------------------------------
def test_the_feed_speaks_the_readers_language() -> None:
    """Messages and durations in Indonesian for an Indonesian board; English for APIs and logs."""
    issues = judge(
        last_webhook_at=NOW - 7 * H,
        inbox_backlog=2,
        sync_failures_unresolved=1,
        worker_last_seen_at=NOW - 25 * MIN,
    )
    english = [i.message for i in issues]
    assert english[:2] == [
        "background worker stopped 25 min ago",
        "nothing received for 7 h (usually every 30 min)",
    ]
    with language("id"):
        assert [i.text for i in issues] == [
            "worker latar berhenti 25 mnt yang lalu",
            "tidak ada data masuk selama 7 jam (biasanya tiap 30 mnt)",
            "2 event webhook gagal, dicoba lagi",
            "1 kegagalan sinkronisasi belum selesai",
        ]
        assert [i.message for i in issues] == english  # the API's words do not change


def test_a_healthy_feed_has_no_issues() -> None:
    assert assess() == []


def test_silence_is_judged_against_the_usual_rhythm() -> None:
    # 48 deliveries a day: one every 30 min; amber after 2 h, red after 6 h.
    assert silence_limits(48) == (2 * H, 6 * H)
    assert assess(last_webhook_at=NOW - 1 * H) == []
    assert assess(last_webhook_at=NOW - 3 * H) == [
        ("amber", "nothing received for 3 h (usually every 30 min)")
    ]
    assert assess(last_webhook_at=NOW - 7 * H) == [
        ("red", "nothing received for 7 h (usually every 30 min)")
    ]
    # A busy number is never amber before 30 min, nor red before 3 h.
    assert silence_limits(10_000) == (30 * MIN, 3 * H)
    assert assess(last_webhook_at=NOW - 20 * MIN, events_last_day=10_000) == []
    # A quiet one: two a day. Amber after 12 h at most, red after 48 h at most.
    assert silence_limits(2) == (12 * H, 48 * H)
    assert assess(last_webhook_at=NOW - 13 * H, events_last_day=2)[0][0] == "amber"
    # Nothing in the last day at all.
    assert assess(last_webhook_at=NOW - 30 * H, events_last_day=0) == [
        ("amber", "nothing received for 30 h")
    ]
    assert assess(last_webhook_at=NOW - 50 * H, events_last_day=0) == [
        ("red", "nothing received for 2 d")
    ]
    assert assess(last_webhook_at=None, events_last_day=0) == [("amber", "no webhook received yet")]


def test_a_stopped_worker_turns_the_feed_red() -> None:
    assert assess(worker_last_seen_at=NOW - 90 * timedelta(seconds=1)) == []
    assert assess(worker_last_seen_at=NOW - 5 * MIN) == [
        ("amber", "background worker silent for 5 min")
    ]
    assert assess(worker_last_seen_at=NOW - 25 * MIN) == [
        ("red", "background worker stopped 25 min ago")
    ]
    assert assess(worker_last_seen_at=None)[0] == (
        "red",
        "no background worker has run: start `leadboard worker`",
    )


def test_failures_are_amber_and_the_worst_comes_first() -> None:
    issues = assess(
        inbox_backlog=2,
        inbox_failed_last_day=1,
        last_run_error="OperationalError: database is locked",
        sync_failures_unresolved=3,
        worker_last_seen_at=NOW - 30 * MIN,
    )
    assert issues == [
        ("red", "background worker stopped 30 min ago"),
        ("amber", "1 webhook event could not be processed (given up)"),
        ("amber", "2 webhook events failed, retrying"),
        ("amber", "the last reconciliation failed"),
        ("amber", "3 unresolved sync failures"),
    ]


# -- the figures ---------------------------------------------------------------------------------
async def add_inbox(
    db: Database,
    workspace: Workspace,
    received_at: datetime,
    *,
    processed: bool = True,
    attempts: int = 1,
    duplicates: int = 0,
) -> None:
    async with db.write() as session:
        await session.execute(
            insert(WebhookInbox.__table__).values(  # type: ignore[attr-defined]
                workspace_id=workspace.id,
                provider="kapso",
                delivery_key=uuid.uuid4().hex,
                event_type="whatsapp.message.received",
                body="{}",
                received_at=received_at,
                processed_at=received_at if processed else None,
                attempts=attempts,
                error=None if processed else "OperationalError: database is locked",
                duplicates=duplicates,
            )
        )


async def test_feed_health_counts_from_the_database(
    db: Database, database_url: str, workspace: Workspace
) -> None:
    other = await add_workspace(database_url, name="Other", phone_number_id="1", sarah_key="o")
    for minutes in (5, 20, 50):
        await add_inbox(db, workspace, NOW - minutes * MIN)
    for hours in (3, 10, 23):
        await add_inbox(db, workspace, NOW - hours * H, duplicates=2)
    await add_inbox(db, workspace, NOW - 30 * H)  # older than a day
    await add_inbox(db, workspace, NOW - 40 * MIN, processed=False, attempts=2)
    await add_inbox(db, workspace, NOW - 6 * H, processed=False, attempts=5)
    await add_inbox(db, other, NOW - 1 * MIN)  # another workspace's traffic is not ours
    await record_heartbeat(db, "worker-a", now=NOW - 40 * timedelta(seconds=1))
    await record_heartbeat(db, "worker-b", now=NOW - 3 * H)

    feed = await db.read(lambda conn: feed_health(conn, workspace, now=NOW))

    assert feed.last_webhook_at == NOW - 5 * MIN
    assert (feed.events_last_hour, feed.events_last_day) == (4, 8)
    indicator = await db.read(lambda conn: feed_health(conn, workspace, now=NOW, exact=False))
    assert indicator.events_last_day == 8  # fewer than RATE_SAMPLE: counted exactly
    assert (feed.inbox_backlog, feed.inbox_failed, feed.inbox_failed_last_day) == (1, 1, 1)
    assert feed.oldest_unprocessed_at == NOW - 6 * H
    assert feed.worker.name == "worker-a"  # the freshest heartbeat speaks for the workers
    assert feed.state == "amber"
    assert feed.reason == "1 webhook event could not be processed (given up)"
    assert [i.message for i in feed.issues][1:] == ["1 webhook event failed, retrying"]


async def test_the_indicator_estimates_a_busy_day_and_judges_it_as_the_exact_count_does(
    db: Database, workspace: Workspace
) -> None:
    # One delivery every 10 s for the last 2 h 30 min (900), and one a day ago: the exact
    # count is 901; the indicator reads the newest RATE_SAMPLE and estimates the day's rate.
    rows = [
        {
            "workspace_id": workspace.id,
            "provider": "kapso",
            "delivery_key": f"busy-{i}",
            "event_type": "whatsapp.message.received",
            "body": "{}",
            "received_at": NOW - timedelta(seconds=10 * i + 45 * 60),
            "processed_at": NOW,
            "attempts": 1,
            "duplicates": 0,
        }
        for i in range(900)
    ]
    async with db.write() as session:
        await session.execute(insert(WebhookInbox.__table__), rows)  # type: ignore[attr-defined]
    await add_inbox(db, workspace, NOW - 23 * H)

    exact = await db.read(lambda conn: feed_health(conn, workspace, now=NOW))
    estimated = await db.read(lambda conn: feed_health(conn, workspace, now=NOW, exact=False))

    assert exact.events_last_day == 901
    # The newest 500 span 45 min + 499 * 10 s: a rate of about 11,000 a day, above the count.
    assert RATE_SAMPLE < estimated.events_last_day < 20_000
    # Judged alike: 45 min of silence where deliveries usually come every few seconds.
    # (The usual gap in the text differs: a day's average against the recent rate.)
    assert [(i.state, i.msgid) for i in exact.issues] == [
        (i.state, i.msgid) for i in estimated.issues
    ]
    assert any(i.message.startswith("nothing received") for i in estimated.issues)


# -- over HTTP -----------------------------------------------------------------------------------
async def post_webhook(client: Client) -> dict[str, Any]:
    body, headers = fixture_delivery("kapso_message_received_text.json")
    response = await client.post("/webhooks/kapso", content=body, headers=headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def test_health_json(client: Client, db: Database, workspace: Workspace) -> None:
    assert workspace.id is not None
    assert (await post_webhook(client))["status"] == "processed"
    assert (await post_webhook(client))["status"] == "duplicate"
    await db.run_write(
        lambda conn: log_sync_failure(
            conn, workspace.id, source="sarah", error="boom", contact_phone="+62811"
        )
    )
    async with db.write() as session:  # a lead quiet for three hours
        await session.execute(
            insert(Contact.__table__).values(  # type: ignore[attr-defined]
                workspace_id=workspace.id,
                phone_e164="+6281299999999",
                status="new",
                message_count=1,
                last_activity_at=utcnow() - 3 * H,
                created_at=utcnow() - 3 * H,
                updated_at=utcnow() - 3 * H,
            )
        )
    run = await reconcile_workspace(db, workspace)
    assert run.flagged >= 1 and run.error is None
    await record_heartbeat(db, "test-worker")

    response = await client.get("/api/sync/health", headers=AUTH)

    assert response.status_code == 200
    body = response.json()
    assert body["workspace"] == {"id": workspace.id, "slug": "test-team"}
    assert body["feed"]["state"] == "amber"
    assert body["feed"]["reason"] == "1 unresolved sync failure"
    webhooks = body["webhooks"]
    assert webhooks["events_last_hour"] == 1 and webhooks["events_last_day"] == 1
    assert webhooks["duplicates_dropped_last_day"] == 1
    assert webhooks["last_received_at"] is not None
    assert body["inbox"]["backlog"] == 0 and body["inbox"]["failed"] == 0
    assert body["sync_failures"]["unresolved"] == 1
    assert [f["error"] for f in body["sync_failures"]["recent"]] == ["boom"]
    recon = body["reconciliation"]
    assert recon["interval_minutes"] == 60
    assert recon["summary"]["total_flagged"] == run.flagged and recon["summary"]["runs"] == 1
    assert recon["summary"]["avg_stale"] == run.stale and recon["summary"]["last_run"] is not None
    assert [(r["checked"], r["stale"], r["flagged"]) for r in recon["runs"]] == [
        (run.checked, run.stale, run.flagged)
    ]
    assert run.checked == 2  # the webhook's lead and the quiet one
    assert body["worker"]["name"] == "test-worker"


async def test_health_json_needs_a_key(client: Client) -> None:
    assert (await client.get("/api/sync/health")).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.get("/api/sync/health", headers=bad)).status_code == 401


async def test_health_json_is_scoped_to_the_keys_workspace(
    client: Client, db: Database, database_url: str, workspace: Workspace
) -> None:
    other = await add_workspace(database_url, name="Other", phone_number_id="1", sarah_key="o")
    assert other.id is not None
    await db.run_write(
        lambda conn: log_sync_failure(conn, other.id, source="sarah", error="not yours")
    )
    body = (await client.get("/api/sync/health", headers=AUTH)).json()
    assert body["sync_failures"] == {"unresolved": 0, "recent": []}
    theirs = (await client.get("/api/sync/health", headers={"Authorization": "Bearer o"})).json()
    assert theirs["sync_failures"]["unresolved"] == 1


async def test_the_sync_page_needs_a_signed_in_member(client: Client) -> None:
    response = await client.get("/sync", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"].startswith("/login")


async def test_the_sync_page_shows_the_feed_and_resolves_without_javascript(
    client: Client, agent: str, db: Database, workspace: Workspace
) -> None:
    assert workspace.id is not None
    await post_webhook(client)
    failure_id = await db.run_write(
        lambda conn: log_sync_failure(
            conn, workspace.id, source="sarah", error="Sarah <b>could not</b> sync"
        )
    )
    await record_heartbeat(db, "test-worker")

    page = await client.get("/sync")

    assert page.status_code == 200
    html = page.text
    assert "Data feed" in html and 'id="feed-status"' in html
    assert 'data-state="amber"' in html and "1 unresolved sync failure" in html
    assert "Sarah &lt;b&gt;could not&lt;/b&gt; sync" in html  # escaped
    action = f"/sync/failures/{failure_id}/resolve?ws=test-team"
    assert f'action="{action}"' in html
    token = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert token is not None

    refused = await client.post(action, data={}, follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token: not resolved
    resolved = await client.post(
        action, data={"_csrf_token": token.group(1)}, follow_redirects=False
    )

    assert resolved.status_code == 303
    assert resolved.headers["location"] == "/sync?ws=test-team"
    async with db.session() as session:
        failure = await session.get(SyncFailure, failure_id)
        assert failure is not None and failure.resolved and failure.resolved_at is not None
    after = (await client.get("/sync")).text
    assert "could not" not in after and "No unresolved sync failures" in after
    assert 'data-state="ok"' in after


async def test_the_feed_indicator_links_to_sync_and_polls_itself(
    client: Client, agent: str, db: Database
) -> None:
    response = await client.get("/sync/feed")
    assert response.status_code == 200
    html = response.text
    assert 'id="feed-status"' in html and 'data-state="red"' in html  # no worker ever ran
    assert "no background worker has run" in html
    assert 'href="/sync?ws=test-team"' in html and 'hx-get="/sync/feed?ws=test-team"' in html
    await post_webhook(client)
    await record_heartbeat(db, "test-worker")
    healthy = (await client.get("/sync/feed")).text
    assert 'data-state="ok"' in healthy and "last webhook just now" in healthy
    indonesian = await client.get("/sync/feed", headers={"Accept-Language": "id-ID,id;q=0.9"})
    assert "Aliran data lancar" in indonesian.text


async def test_resolving_another_workspaces_failure_changes_nothing(
    client: Client, agent: str, db: Database, database_url: str
) -> None:
    other = await add_workspace(database_url, name="Other", phone_number_id="1", sarah_key="o")
    assert other.id is not None
    theirs = await db.run_write(
        lambda conn: log_sync_failure(conn, other.id, source="sarah", error="theirs")
    )
    html = (await client.get("/sync")).text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html
    )
    assert token is not None
    response = await client.post(
        f"/sync/failures/{theirs}/resolve",
        data={"_csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    async with db.session() as session:
        rows = (await session.execute(select(SyncFailure))).scalars().all()
    assert [(r.id, r.resolved) for r in rows] == [(theirs, False)]
