"""The background jobs: thin wrappers around the services, run by arq or the in-process schedule.

Each takes arq's `ctx` dict, which holds `db` (app.db.Database), `broker` (publishes change events
after commit), `settings` and `worker_name`; every job also records the worker's heartbeat.
"""

from __future__ import annotations

import logging
from typing import Any

from app.db import Database
from app.housekeeping import run_housekeeping
from app.ingest.retry import retry_failed_deliveries
from app.live.broker import Broker
from app.reconcile.health import record_heartbeat
from app.reconcile.services import reconcile_all
from app.settings import Settings
from app.singleton import process_label

log = logging.getLogger(__name__)
Ctx = dict[str, Any]


def _db(ctx: Ctx) -> Database:
    db: Database = ctx["db"]
    return db


def _broker(ctx: Ctx) -> Broker:
    broker: Broker = ctx["broker"]
    return broker


async def _beat(ctx: Ctx, job: str) -> None:
    # One row per worker name; its details say which process beat last (`pid 123 on host`).
    where = ctx.get("worker_process") or process_label()
    try:
        await record_heartbeat(
            _db(ctx), ctx.get("worker_name") or "worker", details=f"ran {job} in {where}"
        )
    except Exception:  # a missed heartbeat must not fail the job that did its work
        log.exception("could not record the worker heartbeat")


async def reconcile_all_workspaces(ctx: Ctx) -> dict[str, Any]:
    """Flag the stale leads of every workspace with a Kapso number; record one run each."""
    try:
        report = await reconcile_all(_db(ctx), _broker(ctx))
        return report.as_dict()
    finally:
        await _beat(ctx, "reconcile_all_workspaces")


async def retry_inbox(ctx: Ctx) -> dict[str, Any]:
    """Retry the webhook deliveries whose processing failed and whose next attempt is due."""
    try:
        report = await retry_failed_deliveries(_db(ctx), _broker(ctx))
        return report.as_dict()
    finally:
        await _beat(ctx, "retry_inbox")


async def housekeeping(ctx: Ctx) -> dict[str, Any]:
    """Bound the sync-failure log, the run history, the event log and the heartbeats."""
    settings: Settings = ctx["settings"]
    try:
        report = await run_housekeeping(_db(ctx), event_log_keep=settings.event_log_keep)
        return report.as_dict()
    finally:
        await _beat(ctx, "housekeeping")


async def heartbeat(ctx: Ctx) -> None:
    """Nothing but the heartbeat: shows the worker is alive between the other jobs."""
    await _beat(ctx, "heartbeat")


FUNCTIONS = (reconcile_all_workspaces, retry_inbox, housekeeping, heartbeat)
