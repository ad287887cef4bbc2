"""The in-process schedule: without Redis the app itself runs the jobs the arq worker would."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select

from app.asgi import create_app
from app.db import Database, utcnow
from app.leads.models import Contact
from app.live.broker import Broker
from app.notes.models import Note
from app.reconcile.models import ReconciliationRun, WorkerHeartbeat
from app.reconcile.scheduler import IN_PROCESS_NAME, InProcessScheduler, ScheduledJob, default_jobs
from app.workspaces.models import Workspace
from tests.conftest import make_settings
from workers.jobs import heartbeat, housekeeping, reconcile_all_workspaces, retry_inbox

contacts = Contact.__table__  # type: ignore[attr-defined]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def heartbeats(db: Database) -> dict[str, Any]:
    async with db.session() as session:
        rows = await session.execute(select(WorkerHeartbeat.name, WorkerHeartbeat.last_seen_at))  # type: ignore[call-overload]
        return {name: seen for name, seen in rows}


async def add_quiet_lead(db: Database, workspace: Workspace) -> int:
    at = utcnow() - timedelta(hours=3)
    async with db.write() as session:
        result = await session.execute(
            insert(contacts)
            .values(
                workspace_id=workspace.id,
                phone_e164=f"+62812{uuid.uuid4().int % 10**8:08d}",
                status="new",
                message_count=1,
                last_activity_at=at,
                created_at=at,
                updated_at=at,
            )
            .returning(contacts.c.id)
        )
        return int(result.scalar_one())


async def test_the_schedule_runs_every_job_at_its_interval(
    db: Database, database_url: str, workspace: Workspace
) -> None:
    lead = await add_quiet_lead(db, workspace)
    scheduler = InProcessScheduler(
        db,
        Broker(),
        make_settings(database_url),
        jobs=[
            ScheduledJob("heartbeat", heartbeat, 0.05, run_at_start=True),
            ScheduledJob("retry_inbox", retry_inbox, 0.1, run_at_start=True),
            ScheduledJob("reconcile_all_workspaces", reconcile_all_workspaces, 0.2),
            ScheduledJob("housekeeping", housekeeping, 0.2),
        ],
    )
    await scheduler.start()
    try:

        async def every_job_ran_twice() -> bool:
            names = ("heartbeat", "retry_inbox", "reconcile_all_workspaces", "housekeeping")
            return all(scheduler.stats.get(n) and scheduler.stats[n].runs >= 2 for n in names)

        await eventually(every_job_ran_twice)
    finally:
        started = time.monotonic()
        await scheduler.stop()
        stopped_in = time.monotonic() - started

    assert stopped_in < 1.0 and not scheduler.running
    assert all(s.failures == 0 for s in scheduler.stats.values()), scheduler.stats
    first = scheduler.stats["reconcile_all_workspaces"].last_result
    assert first["workspaces"] == 1 and first["stale"] == 1
    async with db.session() as session:
        notes = (await session.execute(select(Note))).scalars().all()
        runs = (await session.execute(select(ReconciliationRun))).scalars().all()
    assert [n.contact_id for n in notes] == [lead]  # flagged once: the cooldown holds across runs
    assert len(runs) >= 2 and sum(r.flagged for r in runs) == 1
    assert IN_PROCESS_NAME in await heartbeats(db)
    assert scheduler.stats["housekeeping"].last_result["sync_failures_deleted"] == 0


async def test_a_failing_job_is_logged_and_runs_again(db: Database, database_url: str) -> None:
    calls: list[float] = []

    async def flaky(ctx: dict[str, Any]) -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        return "ok"

    scheduler = InProcessScheduler(
        db,
        Broker(),
        make_settings(database_url),
        jobs=[
            ScheduledJob("flaky", flaky, 0.05, run_at_start=True),
            ScheduledJob("heartbeat", heartbeat, 0.05, run_at_start=True),
        ],
    )
    await scheduler.start()
    try:
        await eventually(lambda: _ran(scheduler, "flaky", 3))
    finally:
        await scheduler.stop()
    stats = scheduler.stats["flaky"]
    assert stats.failures == 1 and stats.last_result == "ok" and stats.last_error is None
    assert scheduler.stats["heartbeat"].runs >= 1  # the other job was not held up


async def _ran(scheduler: InProcessScheduler, name: str, times: int) -> bool:
    stats = scheduler.stats.get(name)
    return stats is not None and stats.runs >= times


def test_the_default_schedule_follows_the_settings(database_url: str) -> None:
    jobs = {
        j.name: j for j in default_jobs(make_settings(database_url, reconcile_interval_minutes=15))
    }
    assert jobs["reconcile_all_workspaces"].interval == 15 * 60
    assert jobs["retry_inbox"].interval == 60 and jobs["retry_inbox"].run_at_start
    assert jobs["housekeeping"].interval == 3600
    assert jobs["heartbeat"].interval == 30 and jobs["heartbeat"].run_at_start
    assert jobs["reconcile_all_workspaces"].func is reconcile_all_workspaces  # the arq job itself


async def test_the_app_runs_the_schedule_only_without_redis(
    db: Database, database_url: str, redis_url: str, workspace: Workspace
) -> None:
    with_redis = create_app(make_settings(database_url, redis_url))
    async with AsyncTestClient(app=with_redis) as client:
        assert (await client.get("/healthz")).status_code == 200
        await asyncio.sleep(0.3)
    assert IN_PROCESS_NAME not in await heartbeats(db)  # the arq worker's job, not the app's

    alone = create_app(make_settings(database_url, None))
    async with AsyncTestClient(app=alone) as client:
        assert (await client.get("/healthz")).json()["broker"] == "Broker"

        async def beat_recorded() -> bool:
            return IN_PROCESS_NAME in await heartbeats(db)

        await eventually(beat_recorded)
        started = time.monotonic()
    assert time.monotonic() - started < 2.0  # shutdown does not wait for the schedule
