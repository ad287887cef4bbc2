"""The change-event log, tailed: how a process hears other processes' changes without Redis.

Redis pub/sub is the fast path; the database is the truth. Every app process reads the log
(`change_events`, by its primary key) on a short poll while its Redis subscription is down
(`fast_seconds`) and on a slow one while it is up (`slow_seconds`: a safety net for an event Redis
dropped). What it reads goes to the hub, which drops what it already delivered, so a change reaches
each browser once whichever way it came.

The tail keeps its own position in the log, never a browser's: an outage in which this process
raised events of its own must not hide the lower-numbered events of another process. Ids can
commit out of order (PostgreSQL hands out sequence values before commit), so each read starts
`settle_seconds` behind the newest id read, and re-reads that short window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy import Connection

from app.db import Database
from app.live.outbox import Change, changes_since, newest_change_id
from app.live.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BATCH = 2_000


class LogTail:
    def __init__(
        self,
        db: Database,
        deliver: Callable[[Change], bool],
        *,
        fast_seconds: float = 0.5,
        slow_seconds: float = 2.0,
        settle_seconds: float = 3.0,
    ) -> None:
        self._db = db
        self._deliver = deliver
        self.fast_seconds = fast_seconds
        self.slow_seconds = slow_seconds
        self._settle = settle_seconds
        self.fast = False
        self._floor = 0  # every event at or below it has been read (allowing for late commits)
        self._reads: deque[tuple[float, int]] = deque()  # (when, newest id read) of recent reads
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.delivered = 0  # events this tail delivered that no other path had (for tests, logs)

    async def start(self) -> None:
        """Begin at the end of the log: browsers replay older events themselves on connect."""
        self._floor = await self._db.read(newest_change_id)
        self._task = asyncio.create_task(self._run(), name="change-log-tail")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def set_fast(self, fast: bool) -> None:
        self.fast = fast
        self._wake.set()

    async def _run(self) -> None:
        while True:
            interval = self.fast_seconds if self.fast else self.slow_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is briefly away: try again next tick
                log.warning("change-log tail failed: %s", exc)

    @staticmethod
    def _read_from(floor: int) -> Callable[[Connection], list[Change]]:
        return lambda conn: changes_since(conn, floor, BATCH)

    async def poll(self) -> int:
        """Read the log from the floor and deliver what is new; returns how many were new."""
        async with self._lock:
            new = 0
            while True:
                changes = await self._db.read(self._read_from(self._floor))
                for change in changes:
                    if self._deliver(change):
                        new += 1
                now = time.monotonic()
                if changes:
                    self._reads.append((now, changes[-1].id))
                if len(changes) < BATCH:
                    break
                self._floor = changes[-1].id  # a backlog: move on without re-reading it
            while self._reads and now - self._reads[0][0] >= self._settle:
                self._floor = max(self._floor, self._reads.popleft()[1])
            self.delivered += new
            return new
