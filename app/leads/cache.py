"""Short-lived per-workspace caches for the aggregates every board view shows.

Counting 100,000 leads costs tens of milliseconds; a team of ten looking at the same workspace
does not need it recounted for every click. Stats live for two seconds, facet menus (and the
workspace's people) for thirty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from app.accounts.models import User
from app.accounts.services import members_of
from app.db import Database, utcnow
from app.leads.board import facet_counts
from app.leads.queries import BoardStats, board_stats

T = TypeVar("T")
FACET_COLUMNS = ("status", "temperature", "phase", "business_type", "location")


def today_start(tz: str) -> datetime:
    local = utcnow().astimezone(ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


class BoardCache:
    def __init__(self, db: Database, *, stats_ttl: float = 2.0, facets_ttl: float = 30.0) -> None:
        self._db = db
        self._stats_ttl = stats_ttl
        self._facets_ttl = facets_ttl
        self._values: dict[tuple[str, int], tuple[float, Any]] = {}
        self._inflight: dict[tuple[str, int], asyncio.Task[Any]] = {}

    async def _get(
        self,
        key: tuple[str, int],
        ttl: float,
        load: Callable[[], Awaitable[T]],
        newer_than: float | None = None,
    ) -> T:
        hit = self._values.get(key)
        fresh_enough = newer_than is None or (hit is not None and hit[0] - ttl >= newer_than)
        if hit is not None and hit[0] > time.monotonic() and fresh_enough:
            return hit[1]
        task = self._inflight.get(key)
        if task is None:  # one query per key at a time, however many boards ask
            task = asyncio.ensure_future(load())
            self._inflight[key] = task
        started = time.monotonic()
        try:
            value = await asyncio.shield(task)
        finally:
            self._inflight.pop(key, None)
        # Expiry counts from when the count started: what it saw is at least that new.
        self._values[key] = (started + ttl, value)
        return value

    async def stats(
        self, workspace_id: int, tz: str, *, newer_than: float | None = None
    ) -> BoardStats:
        """The header; `newer_than` (a monotonic time) forces a count that started after it."""

        async def load() -> BoardStats:
            start = today_start(tz)
            return await self._db.read(lambda conn: board_stats(conn, workspace_id, start))

        return await self._get(("stats", workspace_id), self._stats_ttl, load, newer_than)

    async def facets(self, workspace_id: int) -> dict[str, list[tuple[str, int]]]:
        async def load() -> dict[str, list[tuple[str, int]]]:
            return await self._db.read(
                lambda conn: {c: facet_counts(conn, workspace_id, c) for c in FACET_COLUMNS}
            )

        return await self._get(("facets", workspace_id), self._facets_ttl, load)

    async def members(self, workspace_id: int) -> list[User]:
        """The workspace's people (owner menus); new ones come from the command line."""

        async def load() -> list[User]:
            async with self._db.session() as session:
                return await members_of(session, workspace_id)

        return await self._get(("members", workspace_id), self._facets_ttl, load)

    def forget(self, workspace_id: int) -> None:
        for kind in ("stats", "facets", "members"):
            self._values.pop((kind, workspace_id), None)
