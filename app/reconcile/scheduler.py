"""The in-process schedule: without REDIS_URL there is no arq worker, so the app runs the same
job functions itself (workers/jobs.py) on a small asyncio timer, and `make run` still reconciles.

Jobs and default intervals: heartbeat every 30 s (as worker "in-process", also at start), inbox
retry every minute (also at start), reconciliation every RECONCILE_INTERVAL_MINUTES, housekeeping
hourly. Each job runs in its own task; a job that fails is logged and runs again at its next turn.
`stop()` is prompt: waiting jobs stop at once, a job in the middle of its work may finish its
transaction (milliseconds) and is cancelled after a few seconds at most; nothing a job does is lost
by running it again later.

Several processes on one database (`leadboard serve --workers N`, or several servers) run the
schedule once: `start()` runs it under the database's "scheduler" lock (app/singleton.py: a
`flock` next to a SQLite file, a PostgreSQL advisory lock), so one process runs the jobs and the
others try again every few seconds, taking over when that process stops or dies. The heartbeat
keeps its one name ("in-process") and says in its details which process runs the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.db import Database
from app.live.broker import Broker
from app.settings import Settings
from app.singleton import RETRY_SECONDS, ProcessLock, Singleton, lock_for_database, process_label

log = logging.getLogger(__name__)

IN_PROCESS_NAME = "in-process"
STOP_GRACE_SECONDS = 5.0
Job = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    name: str
    func: Job
    interval: float  # seconds between runs
    run_at_start: bool = False


@dataclass(slots=True)
class JobStats:
    runs: int = 0
    failures: int = 0
    last_result: Any = None
    last_error: str | None = None


def default_jobs(settings: Settings) -> list[ScheduledJob]:
    from workers.jobs import heartbeat, housekeeping, reconcile_all_workspaces, retry_inbox

    return [
        ScheduledJob("heartbeat", heartbeat, 30.0, run_at_start=True),
        ScheduledJob("retry_inbox", retry_inbox, 60.0, run_at_start=True),
        ScheduledJob(
            "reconcile_all_workspaces",
            reconcile_all_workspaces,
            max(1, settings.reconcile_interval_minutes) * 60.0,
        ),
        ScheduledJob("housekeeping", housekeeping, 3600.0),
    ]


@dataclass
class InProcessScheduler:
    db: Database
    broker: Broker
    settings: Settings
    jobs: list[ScheduledJob] | None = None
    name: str = IN_PROCESS_NAME
    # Who runs the schedule among the processes on this database (default: the database's
    # "scheduler" lock), and how often the others try to take it over.
    lock: ProcessLock | None = None
    retry_seconds: float = RETRY_SECONDS
    stats: dict[str, JobStats] = field(default_factory=dict, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False, repr=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _singleton: Singleton | None = field(default=None, init=False, repr=False)
    _grace: float = field(default=STOP_GRACE_SECONDS, init=False, repr=False)

    @property
    def ctx(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "broker": self.broker,
            "settings": self.settings,
            "worker_name": self.name,
            "worker_process": process_label(),  # the heartbeat says which process runs it
        }

    @property
    def running(self) -> bool:
        """This process runs the jobs now."""
        return any(not t.done() for t in self._tasks)

    @property
    def state(self) -> str:
        """What this process does about the schedule: "runs" it (it holds the lock), stands by
        ("standby": another process runs it), or "stopped"."""
        if self._singleton is None:
            return "stopped"
        return "runs" if self._singleton.holding else "standby"

    async def start(self) -> None:
        """Run the jobs here if no other process on the database does (they start before this
        returns), else stand by and take over when that process goes."""
        if self._singleton is not None:
            return
        lock = self.lock or lock_for_database(self.db.url, "scheduler")
        self._singleton = Singleton(
            lock,
            self._start_jobs,
            self._stop_jobs,
            what="the in-process schedule",
            retry_seconds=self.retry_seconds,
        )
        await self._singleton.start()

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the jobs (see _stop_jobs), then let go of the lock for the next process."""
        singleton, self._singleton = self._singleton, None
        self._grace = grace
        if singleton is not None:
            await singleton.stop()

    async def _start_jobs(self) -> None:
        if self.running:
            return
        self._stopping = asyncio.Event()
        jobs = self.jobs if self.jobs is not None else default_jobs(self.settings)
        self._tasks = [
            asyncio.create_task(self._loop(job), name=f"schedule:{job.name}") for job in jobs
        ]
        log.info(
            "in-process schedule started (no REDIS_URL) in %s: %s",
            process_label(),
            ", ".join(f"{j.name} every {j.interval:g} s" for j in jobs),
        )

    async def _stop_jobs(self) -> None:
        """Stop promptly: idle jobs at once; a job in the middle of its work gets `grace` seconds
        to finish its transaction (they take milliseconds), then it is cancelled."""
        grace = self._grace
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        self._stopping.set()
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            _done, stuck = await asyncio.wait(pending, timeout=1.0)
            for task in stuck:  # never hold shutdown hostage
                log.warning("scheduled job %s did not stop in time", task.get_name())
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("scheduled job %s crashed", task.get_name(), exc_info=task.exception())

    async def run_once(self, job: ScheduledJob) -> None:
        stats = self.stats.setdefault(job.name, JobStats())
        try:
            stats.last_result = await job.func(self.ctx)
            stats.last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stats.failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("scheduled job %s failed", job.name)
        finally:
            stats.runs += 1

    async def _loop(self, job: ScheduledJob) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + (0 if job.run_at_start else job.interval)
        while not self._stopping.is_set():
            delay = next_at - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                if self._stopping.is_set():
                    return
            await self.run_once(job)
            # Fixed rate, but never a burst of catch-up runs after a long job or a paused loop.
            next_at = max(next_at + job.interval, loop.time())
