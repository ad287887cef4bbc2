"""Housekeeping: keep the tables that only grow bounded, with indexed deletes.

- sync failures: the newest KEEP_PER_WORKSPACE per workspace (the cut-off id is found through the
  (workspace_id, id) index with OFFSET, as log_sync_failure does; the table is never counted);
- reconciliation runs: the newest RUNS_KEEP_PER_WORKSPACE per workspace, the same way;
- the change-event log: the newest Settings.event_log_keep events (app.live.outbox.trim_change_log);
- worker heartbeats not seen for HEARTBEAT_RETENTION (workers that are gone for good);
- expired sign-in sessions (app.sessions.purge_expired_sessions, in batches through the
  expires_at index).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database, keep_newest, utcnow
from app.live.outbox import trim_change_log
from app.reconcile.models import ReconciliationRun, WorkerHeartbeat
from app.sessions import purge_expired_sessions
from app.sync.models import SyncFailure
from app.sync.services import KEEP_PER_WORKSPACE
from app.workspaces.models import Workspace

log = logging.getLogger(__name__)

failures = SyncFailure.__table__  # type: ignore[attr-defined]
runs = ReconciliationRun.__table__  # type: ignore[attr-defined]
heartbeats = WorkerHeartbeat.__table__  # type: ignore[attr-defined]
workspaces = Workspace.__table__  # type: ignore[attr-defined]

RUNS_KEEP_PER_WORKSPACE = 1000  # six weeks of hourly runs
HEARTBEAT_RETENTION = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class HousekeepingReport:
    sync_failures_deleted: int = 0
    runs_deleted: int = 0
    events_deleted: int = 0
    heartbeats_deleted: int = 0
    sessions_deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def _keep_newest(session: AsyncSession, table: Any, workspace_id: int, keep: int) -> int:
    return await session.run_sync(
        lambda sync: keep_newest(sync.connection(), table, workspace_id, keep)
    )


async def run_housekeeping(
    db: Database,
    *,
    now: datetime | None = None,
    event_log_keep: int = 100_000,
    sync_failures_keep: int = KEEP_PER_WORKSPACE,
    runs_keep: int = RUNS_KEEP_PER_WORKSPACE,
    heartbeat_retention: timedelta = HEARTBEAT_RETENTION,
) -> HousekeepingReport:
    now = now or utcnow()
    async with db.session() as session:
        ids = [int(i) for i in (await session.execute(select(workspaces.c.id))).scalars()]
    sync_deleted = runs_deleted = 0
    for workspace_id in ids:  # one short transaction per workspace
        async with db.write() as session:
            sync_deleted += await _keep_newest(session, failures, workspace_id, sync_failures_keep)
            runs_deleted += await _keep_newest(session, runs, workspace_id, runs_keep)
    async with db.write() as session:
        events_deleted = await trim_change_log(session, event_log_keep)
        result = await session.execute(
            delete(heartbeats).where(heartbeats.c.last_seen_at < now - heartbeat_retention)
        )
        heartbeats_deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
    sessions_deleted = await purge_expired_sessions(db, now=now)
    report = HousekeepingReport(
        sync_failures_deleted=sync_deleted,
        runs_deleted=runs_deleted,
        events_deleted=events_deleted,
        heartbeats_deleted=heartbeats_deleted,
        sessions_deleted=sessions_deleted,
    )
    if any(report.as_dict().values()):
        log.info("housekeeping: %s", report.as_dict())
    return report
