"""Rendering change events into what the browser swaps: the lead's row and the stats header.

Each process renders an event once per language and time zone, however many browsers it serves,
and encodes it to SSE bytes once (`LiveEvent.wire`): every browser of that variant is written the
same bytes. Concurrent callers share the same in-flight render.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from jinja2 import Environment
from sse_starlette import ServerSentEvent

from app.db import Database
from app.i18n import language
from app.leads.cache import BoardCache
from app.leads.queries import LeadRow, lead_row
from app.live.outbox import LEAD_CHANGED, Change
from app.templating import row_html

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class LiveEvent:
    id: int
    event: str
    data: str
    wire: bytes = b""  # the event as SSE bytes, encoded once


def live_event(event_id: int, event: str, data: str) -> LiveEvent:
    wire = ServerSentEvent(data=data, event=event, id=str(event_id)).encode()
    return LiveEvent(id=event_id, event=event, data=data, wire=wire)


class SharedTasks(Generic[K, V]):
    """At most one run of `make(key)` in flight or remembered per key (the newest `size`):
    concurrent callers await the same task; a failed one is forgotten, to be tried again."""

    def __init__(self, make: Callable[[K], Awaitable[V]], size: int) -> None:
        self._make = make
        self._size = size
        self._tasks: OrderedDict[K, asyncio.Future[V]] = OrderedDict()

    async def get(self, key: K) -> V:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._make(key))
            self._tasks[key] = task
            while len(self._tasks) > self._size:
                self._tasks.popitem(last=False)
        try:
            return await asyncio.shield(task)
        except Exception:
            self._tasks.pop(key, None)
            raise


class LiveRenderer:
    def __init__(
        self,
        db: Database,
        env: Environment,
        cache: BoardCache | None = None,
        *,
        cache_size: int = 512,
    ) -> None:
        self._db = db
        self._env = env
        self._board = cache or BoardCache(db)
        # The lead is read once per change, whatever the number of languages rendering it.
        self._rows: SharedTasks[Change, LeadRow | None] = SharedTasks(self._read_row, cache_size)
        self._events: SharedTasks[tuple[Change, str, str], LiveEvent | None] = SharedTasks(
            lambda key: self._render(*key), cache_size
        )

    async def render(self, change: Change, tz: str, lang: str = "en") -> LiveEvent | None:
        return await self._events.get((change, tz, lang))

    async def stats_event(self, workspace_id: int, tz: str, lang: str, newer_than: float) -> str:
        """The stats header alone, counted after `newer_than` (sent shortly after live changes,
        since the header in a change event may come from a count a moment older)."""
        stats = await self._board.stats(workspace_id, tz, newer_than=newer_than)
        with language(lang):
            return self._env.get_template("partials/_stats.html").render(stats=stats, oob=True)

    async def _render(self, change: Change, tz: str, lang: str) -> LiveEvent | None:
        if change.kind != LEAD_CHANGED or change.contact_id is None:
            return None
        row = await self._rows.get(change)
        if row is None:
            return None
        stats = await self._board.stats(change.workspace_id, tz)
        with language(lang):
            html = str(row_html(self._env, row, tz))  # str: Markup + str would escape the str
            html += self._env.get_template("partials/_stats.html").render(stats=stats, oob=True)
        return live_event(change.id, "lead", html)

    async def _read_row(self, change: Change) -> LeadRow | None:
        ws, contact_id = change.workspace_id, change.contact_id
        if contact_id is None:
            return None
        return await self._db.read(lambda conn: lead_row(conn, ws, contact_id))
