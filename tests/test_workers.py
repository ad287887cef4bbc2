"""The arq jobs, enqueued with arq and run by a real Worker (burst mode) against the private Redis.

Also the inbox retry rules (backoff, bounded attempts, the error kept) with a controlled clock,
housekeeping, and the claim that a cron tick runs once however many workers there are.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker
from sqlalchemy import insert, select, text, update

from app.db import Database, utcnow
from app.ingest.models import WebhookInbox
from app.ingest.retry import MAX_ATTEMPTS, retry_delay, retry_failed_deliveries
from app.ingest.samples import SampleLead, inbound_message, sign
from app.ingest.services import IngestService, Outcome, WorkspaceDirectory
from app.leads.models import Contact, Message
from app.live.broker import Broker, RedisBroker
from app.live.outbox import ChangeEventRow
from app.notes.models import Note
from app.reconcile.models import ReconciliationRun, WorkerHeartbeat
from app.sync.models import SyncFailure
from app.workspaces.models import Workspace
from tests import helpers
from tests.conftest import KAPSO_SECRET, PHONE_NUMBER_ID, make_settings
from workers.jobs import FUNCTIONS
from workers.settings import (
    WorkerSettings,
    cron_jobs,
    reconcile_cron_times,
    shutdown,
    startup,
)

LEAD = SampleLead(phone="6281234567890", name="Budi Santoso", conversation_id="conv-1")
inbox = WebhookInbox.__table__  # type: ignore[attr-defined]
contacts = Contact.__table__  # type: ignore[attr-defined]


@pytest.fixture
async def arq_pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    yield pool
    await pool.aclose()


async def run_jobs(
    pool: ArqRedis, database_url: str, redis_url: str, *names: str, **settings: Any
) -> list[Any]:
    """Enqueue the jobs on a queue of their own, run a burst worker, return the jobs' results."""
    queue = f"test:{uuid.uuid4().hex}"
    jobs = [await pool.enqueue_job(name, _queue_name=queue) for name in names]
    worker = Worker(
        functions=list(FUNCTIONS),
        queue_name=queue,
        redis_settings=RedisSettings.from_dsn(redis_url),
        burst=True,
        poll_delay=0,
        handle_signals=False,
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={
            "settings": make_settings(database_url, redis_url, **settings),
            "worker_name": "test-worker",
        },
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    assert worker.jobs_failed == 0
    return [await job.result(timeout=5) for job in jobs if job is not None]


async def add_quiet_lead(db: Database, workspace: Workspace, hours: float) -> int:
    at = utcnow() - timedelta(hours=hours)
    async with db.write() as session:
        result = await session.execute(
            insert(contacts)
            .values(
                workspace_id=workspace.id,
                phone_e164=f"+62811{uuid.uuid4().int % 10**8:08d}",
                status="new",
                message_count=1,
                last_activity_at=at,
                created_at=at,
                updated_at=at,
            )
            .returning(contacts.c.id)
        )
        return int(result.scalar_one())


async def heartbeat_names(db: Database) -> set[str]:
    async with db.session() as session:
        return set((await session.execute(select(WorkerHeartbeat.name))).scalars())


# -- reconcile -----------------------------------------------------------------------------------
async def test_the_reconcile_job_flags_and_publishes_through_redis(
    db: Database, database_url: str, redis_url: str, arq_pool: ArqRedis, workspace: Workspace
) -> None:
    assert workspace.id is not None
    quiet = await add_quiet_lead(db, workspace, hours=5)
    await add_quiet_lead(db, workspace, hours=0.1)
    listener = RedisBroker(redis_url)  # an app process elsewhere, subscribed to Redis
    await listener.start()
    try:
        async with listener.subscribe(workspace.id) as sub:
            [result] = await run_jobs(arq_pool, database_url, redis_url, "reconcile_all_workspaces")
            change = await asyncio.wait_for(sub.get(), 5)
    finally:
        await listener.stop()
    assert (result["workspaces"], result["checked"], result["stale"], result["flagged"]) == (
        1,
        2,
        1,
        1,
    )
    assert not isinstance(change, str) and change.contact_id == quiet
    async with db.session() as session:
        [note] = (await session.execute(select(Note))).scalars().all()
        [run] = (await session.execute(select(ReconciliationRun))).scalars().all()
    assert note.contact_id == quiet and note.body == "no activity for 5 h"
    assert (run.checked, run.stale, run.flagged, run.error) == (2, 1, 1, None)
    assert "test-worker" in await heartbeat_names(db)


# -- inbox retry ---------------------------------------------------------------------------------
async def _block_new_leads(db: Database) -> None:
    async with db.write() as session:
        if db.is_sqlite:
            await session.execute(
                text(
                    "CREATE TRIGGER no_new_leads BEFORE INSERT ON contacts "
                    "BEGIN SELECT RAISE(ABORT, 'contacts are read-only'); END"
                )
            )
        else:
            await session.execute(
                text(
                    "CREATE FUNCTION no_new_leads() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'contacts are read-only'; END $$"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER no_new_leads BEFORE INSERT ON contacts "
                    "FOR EACH ROW EXECUTE FUNCTION no_new_leads()"
                )
            )


async def _unblock_new_leads(db: Database) -> None:
    async with db.write() as session:
        if db.is_sqlite:
            await session.execute(text("DROP TRIGGER no_new_leads"))
        else:
            await session.execute(text("DROP TRIGGER no_new_leads ON contacts"))
            await session.execute(text("DROP FUNCTION no_new_leads()"))


async def store_failed_delivery(db: Database, text_body: str = "Halo kak") -> WebhookInbox:
    """A real delivery through the ingest service while the database refuses new leads."""
    await _block_new_leads(db)
    try:
        d = sign(
            "whatsapp.message.received",
            inbound_message(LEAD, PHONE_NUMBER_ID, text_body),
            KAPSO_SECRET,
        )
        service = IngestService(db, Broker(), WorkspaceDirectory(db))
        result = await service.receive_kapso({k.lower(): v for k, v in d.headers.items()}, d.body)
        assert result.outcome is Outcome.QUEUED
    finally:
        await _unblock_new_leads(db)
    [row] = await helpers.inbox(db)
    assert row.processed_at is None and row.attempts == 1
    assert row.error is not None and "read-only" in row.error
    return row


async def backdate(db: Database, row: WebhookInbox, by: timedelta) -> None:
    """As if the delivery had arrived `by` earlier."""
    async with db.write() as session:
        await session.execute(
            update(inbox).where(inbox.c.id == row.id).values(received_at=row.received_at - by)
        )


async def test_a_failed_inbox_event_is_retried_to_success_by_the_job(
    db: Database, database_url: str, redis_url: str, arq_pool: ArqRedis, workspace: Workspace
) -> None:
    assert workspace.id is not None
    row = await store_failed_delivery(db)
    assert await helpers.count(db, Contact) == 0
    await backdate(db, row, timedelta(minutes=2))  # the first retry is due after a minute

    listener = RedisBroker(redis_url)
    await listener.start()
    try:
        async with listener.subscribe(workspace.id) as sub:
            [result] = await run_jobs(arq_pool, database_url, redis_url, "retry_inbox")
            change = await asyncio.wait_for(sub.get(), 5)
    finally:
        await listener.stop()

    assert result == {"due": 1, "succeeded": 1, "failed": 0, "gave_up": 0, "skipped": 0}
    [done] = await helpers.inbox(db)
    assert done.processed_at is not None and done.error is None and done.attempts == 2
    [contact] = await helpers.contacts(db)
    assert contact.phone_e164 == "+6281234567890" and contact.message_count == 1
    assert await helpers.count(db, Message) == 1
    events = await helpers.change_events(db)
    assert [(e.kind, e.contact_id) for e in events] == [("lead", contact.id)]
    assert not isinstance(change, str) and change.id == events[0].id
    assert "test-worker" in await heartbeat_names(db)


async def test_retries_back_off_keep_the_error_and_give_up(
    db: Database, workspace: Workspace
) -> None:
    assert [retry_delay(n) for n in range(5)] == [
        timedelta(0),
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=21),
        timedelta(minutes=85),
    ]
    row = await store_failed_delivery(db)
    received = row.received_at
    await _block_new_leads(db)  # still broken: every retry fails for real
    try:
        not_yet = await retry_failed_deliveries(db, now=received + timedelta(seconds=59))
        assert not_yet.due == 0
        seen: list[tuple[int, str | None]] = []
        for minutes in (1, 5, 21, 85):
            report = await retry_failed_deliveries(db, now=received + timedelta(minutes=minutes))
            assert report.due == 1 and report.succeeded == 0
            [current] = await helpers.inbox(db)
            seen.append((current.attempts, current.error))
            early = await retry_failed_deliveries(db, now=received + timedelta(minutes=minutes))
            assert early.due == 0  # the next attempt waits for its own delay
        assert report.gave_up == 1
        assert [a for a, _ in seen] == [2, 3, 4, 5]
        assert all(e is not None and "read-only" in e for _, e in seen)
        forever = await retry_failed_deliveries(db, now=received + timedelta(days=30))
        assert forever.due == 0  # given up: MAX_ATTEMPTS reached, left for a person on /sync
    finally:
        await _unblock_new_leads(db)
    [final] = await helpers.inbox(db)
    assert final.processed_at is None and final.attempts == MAX_ATTEMPTS
    assert await helpers.count(db, Contact) == 0


async def test_a_delivery_completed_by_a_redelivery_is_not_retried(
    db: Database, workspace: Workspace
) -> None:
    row = await store_failed_delivery(db)
    # Kapso redelivers under the same idempotency key, and this time the database accepts it.
    d = sign(
        "whatsapp.message.received",
        inbound_message(LEAD, PHONE_NUMBER_ID, "Halo kak"),
        KAPSO_SECRET,
        key=row.delivery_key,
    )
    service = IngestService(db, Broker(), WorkspaceDirectory(db))
    result = await service.receive_kapso({k.lower(): v for k, v in d.headers.items()}, d.body)
    assert result.outcome is Outcome.PROCESSED

    report = await retry_failed_deliveries(db, now=row.received_at + timedelta(hours=1))

    assert report.due == 0 and report.succeeded == 0
    [done] = await helpers.inbox(db)
    assert done.processed_at is not None and done.error is None
    assert await helpers.count(db, Message) == 1
    assert len(await helpers.change_events(db)) == 1


# -- housekeeping --------------------------------------------------------------------------------
async def test_the_housekeeping_job_bounds_what_only_grows(
    db: Database, database_url: str, redis_url: str, arq_pool: ArqRedis, workspace: Workspace
) -> None:
    now = utcnow()
    async with db.write() as session:
        await session.execute(
            insert(SyncFailure.__table__),  # type: ignore[attr-defined]
            [
                {
                    "workspace_id": workspace.id,
                    "source": "sarah",
                    "error": f"e{i}",
                    "created_at": now,
                    "resolved": False,
                }
                for i in range(1005)
            ],
        )
        await session.execute(
            insert(ChangeEventRow.__table__),  # type: ignore[attr-defined]
            [
                {
                    "workspace_id": workspace.id,
                    "kind": "lead",
                    "contact_id": None,
                    "created_at": now,
                }
                for _ in range(10)
            ],
        )
        await session.execute(
            insert(WorkerHeartbeat.__table__),  # type: ignore[attr-defined]
            [
                {"name": "gone", "last_seen_at": now - timedelta(days=8)},
                {"name": "recent", "last_seen_at": now - timedelta(hours=1)},
            ],
        )

    [result] = await run_jobs(arq_pool, database_url, redis_url, "housekeeping", event_log_keep=3)

    assert result["sync_failures_deleted"] == 5
    assert result["events_deleted"] == 7 and result["heartbeats_deleted"] == 1
    async with db.session() as session:
        errors = (await session.execute(select(SyncFailure.error))).scalars().all()  # type: ignore[call-overload]
        event_ids = (await session.execute(select(ChangeEventRow.id))).scalars().all()  # type: ignore[call-overload]
    assert len(errors) == 1000 and "e0" not in errors and "e1004" in errors
    assert len(event_ids) == 3
    assert await heartbeat_names(db) == {"recent", "test-worker"}


async def test_housekeeping_keeps_the_newest_runs_per_workspace(
    db: Database, database_url: str, workspace: Workspace
) -> None:
    from app.housekeeping import run_housekeeping
    from tests.conftest import add_workspace

    other = await add_workspace(database_url, name="Other", phone_number_id="2")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.write() as session:
        for ws, n in ((workspace, 5), (other, 2)):
            for i in range(n):
                await session.execute(
                    insert(ReconciliationRun.__table__).values(  # type: ignore[attr-defined]
                        workspace_id=ws.id,
                        started_at=start + timedelta(hours=i),
                        checked=i,
                        stale=0,
                        flagged=0,
                        duration_ms=1,
                    )
                )
    report = await run_housekeeping(db, runs_keep=3)
    assert report.runs_deleted == 2
    async with db.session() as session:
        kept = (
            await session.execute(
                select(ReconciliationRun.workspace_id, ReconciliationRun.checked).order_by(  # type: ignore[call-overload]
                    ReconciliationRun.id  # type: ignore[arg-type]
                )
            )
        ).all()
    assert [tuple(k) for k in kept if k[0] == workspace.id] == [
        (workspace.id, 2),
        (workspace.id, 3),
        (workspace.id, 4),
    ]
    assert len([k for k in kept if k[0] == other.id]) == 2


# -- the schedule --------------------------------------------------------------------------------
def test_the_reconcile_interval_maps_to_cron_times() -> None:
    assert reconcile_cron_times(60) == {"minute": {0}}
    assert reconcile_cron_times(15) == {"minute": {0, 15, 30, 45}}
    assert reconcile_cron_times(180) == {"hour": {0, 3, 6, 9, 12, 15, 18, 21}, "minute": {0}}
    for bad in (0, -5, 45, 90, 300):
        with pytest.raises(ValueError, match="RECONCILE_INTERVAL_MINUTES"):
            reconcile_cron_times(bad)


def test_worker_settings_name_every_job_and_cron() -> None:
    names = {f.__name__ for f in WorkerSettings.functions}
    assert names == {"reconcile_all_workspaces", "retry_inbox", "housekeeping", "heartbeat"}
    crons = {c.name: c for c in WorkerSettings.cron_jobs}
    assert set(crons) == {
        "cron:reconcile_all_workspaces",
        "cron:retry_inbox",
        "cron:housekeeping",
        "cron:heartbeat",
    }
    assert all(c.unique for c in crons.values())
    assert crons["cron:heartbeat"].second == {0, 30}
    assert WorkerSettings.on_startup is startup and WorkerSettings.on_shutdown is shutdown


async def test_a_cron_tick_is_enqueued_once_however_many_workers(
    database_url: str, redis_url: str, arq_pool: ArqRedis
) -> None:
    settings = make_settings(database_url, redis_url, reconcile_interval_minutes=15)
    queue = f"test:{uuid.uuid4().hex}"
    workers = [
        Worker(
            functions=list(FUNCTIONS),
            cron_jobs=cron_jobs(settings),  # each worker its own CronJob objects, as in production
            queue_name=queue,
            redis_pool=arq_pool,
            burst=True,
            handle_signals=False,
            timezone=UTC,
        )
        for _ in range(3)
    ]
    # A day of its own, so no job id from another run of this test is still in Redis.
    started = datetime(2026, 3, 2, 9, 7, 12, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 20_000)
    for i, worker in enumerate(workers):  # each started at a slightly different moment
        for job in worker.cron_jobs:
            job.calculate_next(started + timedelta(seconds=i * 20))
    tick = next(j for j in workers[0].cron_jobs if j.name == "cron:reconcile_all_workspaces")
    assert tick.next_run is not None and (tick.next_run.hour, tick.next_run.minute) == (9, 15)
    for worker in workers:
        await worker.run_cron(tick.next_run - timedelta(milliseconds=200), 0.5)
    queued = [m.decode() for m in await arq_pool.zrange(queue, 0, -1)]
    reconcile_ids = [q for q in queued if q.startswith("cron:reconcile_all_workspaces:")]
    assert len(reconcile_ids) == 1  # three workers, one job for the 09:15 tick
    assert await arq_pool.zcard(queue) == len(set(queued))
    await arq_pool.delete(queue, *(f"arq:job:{q}" for q in queued))
