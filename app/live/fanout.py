"""One process's browsers, and how a change reaches all of them at about the cost of a socket write.

The hub hands every change to `Fanout.on_change` once. Changes that arrive together are handled as
one burst per workspace: each changed lead is rendered once per variant (language, time zone) in
use, as SSE bytes (app/live/render.py), and those same bytes are put in the backlog of every
browser of that variant (app/live/connection.py). Every browser with something waiting is then
written from one callback per loop turn, in slices of WRITE_SLICE, straight to the server's
`send` (app/live/writes.py): no queue, no per-event future or task per browser, no middleware.
Server-kept views (app/live/views.py) are read once per burst for all of their browsers.

The connection status each browser shows is decided here and sent as an SSE `status` event:
`delayed` while this process cannot hear other processes (its Redis subscription is down; the log
tail fills in, seconds late), `catching-up` while a burst is handled more than `behind_seconds`
after it arrived or a browser's own backlog waits that long (a slow socket), else `live`.
Pings are one shared tick that puts the same comment in every backlog. A backlog that has waited
`stale_seconds` becomes a refresh: the browser reloads its view instead of a stream of old rows.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Final

from sse_starlette import ServerSentEvent
from sse_starlette.sse import AppStatus

from app.heap import HeapKeeper
from app.live.connection import CATCHING_UP, DELAYED, LIVE, Connection, Variant
from app.live.outbox import Change
from app.live.render import LiveRenderer
from app.live.tasks import cancel_and_wait
from app.live.views import LiveView, ViewRenderer

log = logging.getLogger(__name__)

PING: Final = b": ping\r\n\r\n"
TICK_SECONDS: Final = 0.5
WRITE_SLICE: Final = 100  # streams written per loop callback


class ViewGroup:
    """The browsers of one server-kept view, and what the view showed when last read."""

    __slots__ = ("changed", "conns", "dirty", "last_run", "previous", "task", "view")

    def __init__(self, view: LiveView) -> None:
        self.view = view
        self.conns: dict[Variant, set[Connection]] = {}
        self.changed: set[int] = set()  # leads changed since the view was last read
        self.previous: list[int] | None = None  # the ids it showed then
        self.dirty = False
        self.task: asyncio.Task[None] | None = None
        self.last_run = 0.0


class Fanout:
    def __init__(
        self,
        renderer: LiveRenderer,
        views: ViewRenderer | None = None,
        *,
        ping_seconds: float = 15.0,
        backlog_limit: int = 200,
        behind_seconds: float = 1.0,
        stale_seconds: float = 10.0,
        stats_delay: float = 1.0,
        view_seconds: float = 0.25,
    ) -> None:
        self._renderer = renderer
        self._view_renderer = views
        self.view_seconds = view_seconds  # a view is read at most this often, however busy
        self._views: dict[int, dict[str, ViewGroup]] = {}
        self.ping_seconds = ping_seconds
        self.backlog_limit = backlog_limit
        self.behind_seconds = behind_seconds
        self.stale_seconds = stale_seconds
        self.stats_delay = stats_delay
        self._by_workspace: dict[int, dict[Variant, set[Connection]]] = {}
        self._pending: dict[int, dict[int | None, tuple[Change, float]]] = {}
        self._lagging: set[int] = set()  # workspaces whose burst is handled late
        self._flush_task: asyncio.Task[None] | None = None
        self._stats_due: dict[int, float] = {}  # workspace -> when its trailing stats are due
        self._ticker: asyncio.Task[None] | None = None
        self.delayed = False
        self.closing = False
        self._ready: list[Connection] = []  # connections with something to write
        self.heap: HeapKeeper | None = None  # set when the server freezes its heap

    # -- connections ------------------------------------------------------------------------
    def connect(
        self, workspace_id: int, variant: Variant, view: LiveView | None = None
    ) -> Connection:
        if self._view_renderer is None:
            view = None
        conn = Connection(
            workspace_id,
            variant,
            limit=self.backlog_limit,
            view_key=view.key if view is not None else None,
            fanout=self,
        )
        self._by_workspace.setdefault(workspace_id, {}).setdefault(variant, set()).add(conn)
        if view is not None:
            group = self._views.setdefault(workspace_id, {}).get(view.key)
            if group is None:
                group = self._views[workspace_id][view.key] = ViewGroup(view)
            group.conns.setdefault(variant, set()).add(conn)
        conn.set_status(self.state_for(workspace_id), time.monotonic())
        return conn

    def disconnect(self, conn: Connection) -> None:
        if conn.view_key is not None:
            groups = self._views.get(conn.workspace_id, {})
            group = groups.get(conn.view_key)
            if group is not None and _discard(group.conns, conn.variant, conn):
                del groups[conn.view_key]
                if group.task is not None:
                    group.task.cancel()
            if not groups:
                self._views.pop(conn.workspace_id, None)
        variants = self._by_workspace.get(conn.workspace_id)
        if variants is not None and _discard(variants, conn.variant, conn):
            del self._by_workspace[conn.workspace_id]

    def schedule_write(self, conn: Connection) -> None:
        if not self._ready:
            asyncio.get_running_loop().call_soon(self._write_ready)
        self._ready.append(conn)

    def _write_ready(self) -> None:
        """Write WRITE_SLICE streams, then let the loop run what else is ready (a request
        between two of its awaits) before the next slice: 1,000 writes in one go held the
        loop for ~15 ms, and a board GET waiting behind it at each of its hops."""
        ready = self._ready
        batch, rest = ready[:WRITE_SLICE], ready[WRITE_SLICE:]
        self._ready = rest
        if rest:
            asyncio.get_running_loop().call_soon(self._write_ready)
        for conn in batch:
            conn.write()

    @property
    def connection_count(self) -> int:
        return sum(len(c) for v in self._by_workspace.values() for c in v.values())

    def _connections(self, workspace_id: int | None = None) -> list[Connection]:
        groups = (
            self._by_workspace.values()
            if workspace_id is None
            else [self._by_workspace.get(workspace_id, {})]
        )
        return [conn for variants in groups for conns in variants.values() for conn in conns]

    # -- state ------------------------------------------------------------------------------
    def state_for(self, workspace_id: int) -> str:
        if self.delayed:
            return DELAYED
        return CATCHING_UP if workspace_id in self._lagging else LIVE

    def set_delayed(self, delayed: bool) -> None:
        """True while this process cannot hear other processes (its Redis subscription is down)."""
        self.delayed = delayed
        self._announce()

    # -- changes ----------------------------------------------------------------------------
    def on_change(self, change: Change) -> None:
        if change.workspace_id not in self._by_workspace:
            return  # no browser of that workspace here
        burst = self._pending.setdefault(change.workspace_id, {})
        waiting = burst.get(change.contact_id)
        now = time.monotonic()
        if waiting is None or waiting[0].id < change.id:
            burst[change.contact_id] = (change, waiting[1] if waiting else now)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush())

    async def drain(self) -> None:
        """Wait until every change handed in so far is in the backlogs."""
        while self._flush_task is not None and not self._flush_task.done():
            await asyncio.shield(self._flush_task)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            for workspace_id, entries in batch.items():
                try:
                    await self._send_burst(workspace_id, entries)
                except Exception:
                    log.exception("live update for workspace %s failed", workspace_id)

    async def _send_burst(
        self, workspace_id: int, entries: dict[int | None, tuple[Change, float]]
    ) -> None:
        variants = self._by_workspace.get(workspace_id)
        if not variants:
            return
        now = time.monotonic()
        late = now - min(received for _, received in entries.values()) > self.behind_seconds
        if late and workspace_id not in self._lagging:
            self._lagging.add(workspace_id)
            self._announce(workspace_id)
        changes = sorted((change for change, _ in entries.values()), key=lambda c: c.id)
        keys = [(change, variant) for change in changes for variant in tuple(variants)]
        events = await asyncio.gather(
            *(self._renderer.render(change, tz, lang) for change, (lang, tz) in keys)
        )
        now = time.monotonic()
        for (change, variant), event in zip(keys, events, strict=True):
            if event is None:
                continue
            key = ("lead", change.contact_id)
            for conn in tuple(variants.get(variant, ())):
                conn.offer(key, event.wire, now, change.id)
        self._stats_due.setdefault(workspace_id, now + self.stats_delay)
        self.touch_views(workspace_id, {c.contact_id for c in changes if c.contact_id is not None})
        if workspace_id in self._lagging and not self._pending.get(workspace_id):
            self._lagging.discard(workspace_id)
            self._announce(workspace_id)

    # -- server-kept views ---------------------------------------------------------------
    def touch_views(self, workspace_id: int, changed: set[int], only: str | None = None) -> None:
        """These leads changed: read the workspace's views again (`only`: that one), soon."""
        for key, group in tuple(self._views.get(workspace_id, {}).items()):
            if only is not None and key != only:
                continue
            lead_id = group.view.lead_id
            if lead_id is not None and lead_id not in changed:
                continue  # a lead's page changes with its lead only
            group.changed |= changed
            group.dirty = True
            if group.task is None or group.task.done():
                group.task = asyncio.get_running_loop().create_task(
                    self._run_view(workspace_id, group)
                )

    async def _run_view(self, workspace_id: int, group: ViewGroup) -> None:
        assert self._view_renderer is not None
        while group.dirty and group.conns:
            wait = group.last_run + self.view_seconds - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # changes meanwhile join this read
            group.dirty = False
            changed, group.changed = group.changed, set()
            group.last_run = time.monotonic()
            try:
                data = await self._view_renderer.read(workspace_id, group.view)
                if data is None:
                    continue
                ids: list[int] | None = None
                now = time.monotonic()
                for (lang, tz), conns in tuple(group.conns.items()):
                    wire, ids = self._view_renderer.render(
                        group.view, data, lang=lang, tz=tz, changed=changed, previous=group.previous
                    )
                    for conn in tuple(conns):
                        conn.offer("view", wire, now)
                if ids is not None:
                    group.previous = ids
            except Exception:
                log.exception("live view %s of workspace %s failed", group.view.key, workspace_id)

    def _announce(self, workspace_id: int | None = None) -> None:
        """Tell the browsers (of one workspace, or all) the status they are in now."""
        now = time.monotonic()
        for conn in self._connections(workspace_id):
            conn.set_status(self.state_for(conn.workspace_id), now)

    async def _send_stats(self, workspace_id: int, newer_than: float) -> None:
        """The stats header alone, counted after the burst (the header sent with a row may come
        from a count a moment older)."""
        variants = self._by_workspace.get(workspace_id)
        if not variants:
            return
        for (lang, tz), conns in tuple(variants.items()):
            data = await self._renderer.stats_event(workspace_id, tz, lang, newer_than)
            wire = ServerSentEvent(data=data, event="stats").encode()
            now = time.monotonic()
            for conn in tuple(conns):
                conn.offer("stats", wire, now)

    # -- the shared tick: pings, stale backlogs, trailing stats, shutdown ---------------------
    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_forever(), name="live-fanout-tick")

    async def stop(self) -> None:
        self.close_all()
        await cancel_and_wait(self._ticker)
        await cancel_and_wait(self._flush_task)

    def close_all(self) -> None:
        """End every stream cleanly (server shutdown: browsers reconnect to the next process)."""
        self.closing = True
        for conn in self._connections():
            conn.close()

    async def _tick_forever(self) -> None:
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(min(TICK_SECONDS, self.ping_seconds))
            if _server_is_exiting():
                self.close_all()
                continue
            now = time.monotonic()
            ping = now - last_ping >= self.ping_seconds
            if ping:
                last_ping = now
            try:
                self._tick(now, ping=ping)
            except Exception:
                log.exception("live fan-out tick failed")

    def _tick(self, now: float, *, ping: bool) -> None:
        if self.heap is not None:
            self.heap.check(self.connection_count, now)
        for conn in self._connections():
            since = conn.backlog.since
            if since is not None:
                waited = now - since
                if waited > self.stale_seconds and not conn.backlog.refreshing:
                    conn.backlog.overflow(now)
                if waited > self.behind_seconds and not conn.behind:
                    conn.behind = True
                    conn.set_status(CATCHING_UP, now)
            if ping:
                conn.offer("ping", PING, now)
        for workspace_id, due in tuple(self._stats_due.items()):
            if now >= due:
                del self._stats_due[workspace_id]
                asyncio.get_running_loop().create_task(
                    self._send_stats(workspace_id, due - self.stats_delay)
                )


def _discard(
    by_variant: dict[Variant, set[Connection]], variant: Variant, conn: Connection
) -> bool:
    """Take the connection out of its variant's set; True when nothing is left in any."""
    conns = by_variant.get(variant)
    if conns is not None:
        conns.discard(conn)
        if not conns:
            del by_variant[variant]
    return not by_variant


def _server_is_exiting() -> bool:
    """uvicorn is shutting down: it waits for open responses, so streams must end first.
    sse-starlette's AppStatus is set by its patch of uvicorn's exit handler; the bound handler
    uvicorn installed may predate the patch, so its server's flag is read too."""
    if AppStatus.should_exit:
        return True
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))
