"""arq WorkerSettings: `leadboard worker`, or `arq workers.WorkerSettings`.

Schedule (UTC):
- reconcile_all_workspaces: every RECONCILE_INTERVAL_MINUTES (default 60), on the hour;
- retry_inbox: every minute;
- housekeeping: hourly, at minute 17;
- heartbeat: every 30 s.

Several workers may run side by side (sharing Redis and the database): each cron tick still runs
once. With unique=True arq enqueues a cron job under the id "<name>:<scheduled time in ms>"; every
worker computes the same id for the same tick and Redis refuses a job id that already exists, so
only the first worker's enqueue wins and the tick's job runs on exactly one worker.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.cron import CronJob, cron

from app.db import Database
from app.live.broker import create_broker
from app.settings import Settings, get_settings
from workers.jobs import (
    FUNCTIONS,
    heartbeat,
    housekeeping,
    reconcile_all_workspaces,
    retry_inbox,
)


def reconcile_cron_times(interval_minutes: int) -> dict[str, set[int]]:
    """arq cron fields for "every N minutes": N must divide an hour, or be whole hours dividing
    a day (cron fires at wall-clock times, so other intervals would drift at the hour)."""
    if interval_minutes == 60:
        return {"minute": {0}}
    if 0 < interval_minutes < 60 and 60 % interval_minutes == 0:
        return {"minute": set(range(0, 60, interval_minutes))}
    hours, rest = divmod(interval_minutes, 60)
    if interval_minutes >= 60 and rest == 0 and 24 % hours == 0:
        return {"hour": set(range(0, 24, hours)), "minute": {0}}
    raise ValueError(
        f"RECONCILE_INTERVAL_MINUTES={interval_minutes}: use a divisor of 60 (1, 2, 3, 4, 5, 6, "
        "10, 12, 15, 20, 30) or whole hours dividing 24 (60, 120, 180, 240, 360, 480, 720, 1440)"
    )


def worker_name() -> str:
    return f"arq@{socket.gethostname()}:{os.getpid()}"


async def startup(ctx: dict[str, Any]) -> None:
    """Create what the jobs share. Tests pass their own `settings` (and name) in ctx."""
    settings: Settings = ctx.get("settings") or get_settings()
    ctx["settings"] = settings
    ctx["db"] = Database(settings.database_url)
    # Publish-only: the worker never subscribes, so the broker's reader is not started; every
    # app process's subscription picks the events up from Redis.
    ctx["broker"] = create_broker(settings.redis_url)
    ctx.setdefault("worker_name", worker_name())
    await heartbeat(ctx)


async def shutdown(ctx: dict[str, Any]) -> None:
    broker = ctx.get("broker")
    if broker is not None:
        await broker.stop()
    db = ctx.get("db")
    if db is not None:
        await db.dispose()


def cron_jobs(settings: Settings) -> list[CronJob]:
    return [
        cron(
            reconcile_all_workspaces,
            **reconcile_cron_times(settings.reconcile_interval_minutes),  # type: ignore[arg-type]
            unique=True,
            timeout=600,
        ),
        cron(retry_inbox, unique=True, timeout=300),  # every minute
        cron(housekeeping, minute=17, unique=True, timeout=600),
        cron(heartbeat, second={0, 30}, unique=True, timeout=30),
    ]


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1:6379/0")


class WorkerSettings:
    """Read by `arq workers.WorkerSettings` and by `leadboard worker` (arq.run_worker)."""

    functions: ClassVar[list[Any]] = list(FUNCTIONS)
    cron_jobs: ClassVar[list[CronJob]] = cron_jobs(get_settings())
    redis_settings: ClassVar[RedisSettings] = redis_settings(get_settings())
    on_startup = startup
    on_shutdown = shutdown
    timezone = UTC  # cron times are UTC wherever the worker runs
    max_jobs = 4
    job_timeout = 600
    health_check_interval = 60
