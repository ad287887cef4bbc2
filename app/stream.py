"""GET /events: the board's server-sent-events stream.

On connect the browser says which event it saw last (Last-Event-ID on native reconnects, ?after=
on page load and on htmx's own reconnects); missed events are replayed from the event log, or, past
the replay limit, the browser is told to refresh its view. The subscription is taken before the
response starts, so nothing slips between the replay and the live feed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.accounts.web import Viewer
from app.broker import RESYNC, Broker, QueueItem, Subscription
from app.db import Database
from app.events import Change, changes_after, latest_change_id, oldest_change_id
from app.i18n import current_language
from app.live import LiveRenderer
from app.settings import Settings
from app.workspaces.models import Workspace

log = logging.getLogger(__name__)
STATS_DUE = object()  # _next() marker: time to send the trailing stats refresh
STATS_REFRESH_SECONDS = 1.0


def _parse_event_id(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


class LiveStream:
    """One browser's stream: replay what it missed, then follow the subscription."""

    def __init__(
        self,
        db: Database,
        renderer: LiveRenderer,
        workspace: Workspace,
        subscription: Subscription,
        last_id: int | None,
        replay_limit: int,
        lang: str = "en",
        stop: anyio.Event | None = None,
    ) -> None:
        assert workspace.id is not None
        self.db = db
        self.renderer = renderer
        self.workspace_id = workspace.id
        self.tz = workspace.timezone
        self.sub = subscription
        self.last_id = last_id
        self.replay_limit = replay_limit
        self.lang = lang
        self.stop = stop
        self._stats_due: float | None = None  # monotonic time of the trailing stats refresh
        self._stats_after = 0.0
        self._sent: set[int] = set()

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        # A short retry: after a server restart the browser is back within about a second.
        yield ServerSentEvent(comment="live", retry=1000)
        if self.last_id is None:
            ws = self.workspace_id
            self.last_id = await self.db.read(lambda conn: latest_change_id(conn, ws))
        else:
            async for event in self._catch_up():
                yield event
        while True:
            item = await self._next()
            if item is STATS_DUE:
                self._stats_due = None
                data = await self.renderer.stats_event(
                    self.workspace_id, self.tz, self.lang, self._stats_after
                )
                yield ServerSentEvent(data=data, event="stats")
                continue
            if item is None:
                return  # the server is shutting down: end the stream cleanly
            if item == RESYNC:
                async for event in self._catch_up():
                    yield event
            elif isinstance(item, Change):
                live = await self._render(item)
                if live is not None:
                    yield live

    async def _next(self) -> QueueItem | object | None:
        """The next queued item; STATS_DUE when the trailing stats refresh is due; None once the
        server starts shutting down."""
        timeout = None
        if self._stats_due is not None:
            timeout = max(0.0, self._stats_due - time.monotonic())
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.sub.get())}
        get = next(iter(waiters))
        stop = asyncio.ensure_future(self.stop.wait()) if self.stop is not None else None
        if stop is not None:
            waiters.add(stop)
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in waiters:
            if task not in done:
                task.cancel()
        if get in done:
            return get.result()
        if stop is not None and stop in done:
            return None
        return STATS_DUE

    async def _catch_up(self) -> AsyncIterator[ServerSentEvent]:
        assert self.last_id is not None
        ws, after, limit = self.workspace_id, self.last_id, self.replay_limit + 1
        oldest, missed = await self.db.read(
            lambda conn: (oldest_change_id(conn, ws), changes_after(conn, ws, after, limit))
        )
        trimmed = oldest is not None and self.last_id > 0 and self.last_id < oldest - 1
        if len(missed) > self.replay_limit or trimmed:
            # Too much to replay one by one: the browser reloads its view, which is cheaper.
            newest = missed[-1].id if missed else self.last_id
            self.last_id = newest
            yield ServerSentEvent(data="refresh", event="refresh", id=str(newest))
            return
        # One row per lead is enough: each render shows the lead as it is now.
        latest_per_lead: dict[int | None, Change] = {}
        for change in missed:
            latest_per_lead.pop(change.contact_id, None)
            latest_per_lead[change.contact_id] = change
        for change in latest_per_lead.values():
            event = await self._render(change)
            if event is not None:
                yield event
        if missed:
            self.last_id = max(self.last_id, missed[-1].id)

    async def _render(self, change: Change) -> ServerSentEvent | None:
        if change.id in self._sent:
            return None
        self._sent.add(change.id)
        if len(self._sent) > 4096:
            self._sent = {i for i in self._sent if i > change.id - 2048}
        self.last_id = max(self.last_id or 0, change.id)
        live = await self.renderer.render(change, self.tz, self.lang)
        if live is None:
            return None
        if self._stats_due is None:
            self._stats_after = time.monotonic()
            self._stats_due = self._stats_after + STATS_REFRESH_SECONDS
        return ServerSentEvent(data=live.data, event=live.event, id=str(live.id))


@get("/events", media_type="text/event-stream", include_in_schema=False)
async def events_stream(
    request: Request,
    db: NamedDependency[Database],
    broker: NamedDependency[Broker],
    renderer: NamedDependency[LiveRenderer],
    settings: NamedDependency[Settings],
    viewer: NamedDependency[Viewer],
    after: FromQuery[str | None] = None,
) -> EventSourceResponse:
    """Only the signed-in member's workspace: a crafted Last-Event-ID replays nothing else."""
    workspace = viewer.workspace
    assert workspace.id is not None
    last_id = _parse_event_id(request.headers.get("last-event-id"))
    if last_id is None:
        last_id = _parse_event_id(after)
    stop = anyio.Event()  # set by sse-starlette at server shutdown: the stream ends cleanly
    # Subscribe now, before the response starts: events from here on are queued for this browser.
    subscription_cm = broker.subscribe(workspace.id)
    subscription = await subscription_cm.__aenter__()
    stream = LiveStream(
        db,
        renderer,
        workspace,
        subscription,
        last_id,
        settings.sse_replay_limit,
        lang=current_language.get(),
        stop=stop,
    )

    async def body() -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in stream.events():
                yield event
        finally:
            await subscription_cm.__aexit__(None, None, None)

    return EventSourceResponse(
        body(),
        ping=settings.sse_ping_seconds,
        shutdown_event=stop,
        shutdown_grace_period=1.0,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
