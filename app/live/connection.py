"""One browser's `/events` stream: what waits for it, and how it is written.

`offer` only queues (app/live/backlog.py coalesces); the fan-out writes every connection with
something waiting in one callback per loop turn, with the server's own `send` run inline until it
would have to wait (app/live/writes.py). A write that has to wait (the browser reads slowly)
finishes in a task of this connection's own, which keeps writing its backlog until it is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Hashable
from typing import Final, Protocol

from litestar.types import HTTPResponseBodyEvent, Send
from sse_starlette import ServerSentEvent

from app.live.backlog import Backlog
from app.live.writes import start_write

Variant = tuple[str, str]  # (language, time zone): browsers that are sent the same bytes
LIVE: Final = "live"
CATCHING_UP: Final = "catching-up"
DELAYED: Final = "delayed"
STATUS_EVENTS: Final = {
    state: ServerSentEvent(data=state, event="status").encode()
    for state in (LIVE, CATCHING_UP, DELAYED)
}


class Writer(Protocol):
    """What a connection asks of the fan-out that owns it."""

    def schedule_write(self, conn: Connection) -> None: ...

    def state_for(self, workspace_id: int) -> str: ...


class Connection:
    """One browser's stream: its backlog, its status, and its write in flight if any."""

    __slots__ = (
        "backlog",
        "behind",
        "closed",
        "done",
        "fanout",
        "ready",
        "send",
        "status",
        "variant",
        "view_key",
        "workspace_id",
        "writer",
    )

    def __init__(
        self,
        workspace_id: int,
        variant: Variant,
        *,
        limit: int = 200,
        view_key: str | None = None,
        fanout: Writer,
    ) -> None:
        self.workspace_id = workspace_id
        self.variant = variant
        self.view_key = view_key  # the server-kept view it shows (app/live/views.py), if any
        self.backlog = Backlog(limit)
        self.status = ""  # the status this browser was last given
        self.closed = False
        self.behind = False  # its own backlog waited too long (a slow socket)
        self.fanout = fanout
        self.ready = False  # queued for the next write callback
        self.send: Send | None = None  # the server's send, once the response has started
        self.writer: asyncio.Task[None] | None = None  # a write that had to wait
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def offer(self, key: Hashable, data: bytes, now: float, event_id: int = 0) -> None:
        self.backlog.put(key, data, now, event_id)
        self._schedule()

    def _schedule(self) -> None:
        if not self.ready:
            self.ready = True
            self.fanout.schedule_write(self)

    def set_status(self, state: str, now: float) -> None:
        if state != self.status:
            self.status = state
            self.offer("status", STATUS_EVENTS[state], now)

    def start(self, send: Send) -> None:
        """The response has started: from now on the fan-out writes with the server's send."""
        self.send = send
        if len(self.backlog):
            self._schedule()

    def close(self) -> None:
        self.closed = True
        if not self.done.done():
            self.done.set_result(None)

    def write(self) -> None:
        """Write what waits, now; a write that has to wait goes on in this stream's task."""
        self.ready = False
        if self.closed or self.send is None or self.writer is not None or not len(self.backlog):
            return
        try:
            pending = start_write(self.send, _body(self.backlog.take()))
        except Exception:  # the connection is gone
            self.close()
            return
        if pending is not None:
            self.writer = asyncio.get_running_loop().create_task(self._drain(pending))
        elif self.behind:
            self._caught_up()

    async def _drain(self, pending: Awaitable[None]) -> None:
        try:
            await pending
            while len(self.backlog) and not self.closed and self.send is not None:
                await self.send(_body(self.backlog.take()))
        except Exception:
            self.close()
        finally:
            self.writer = None
        if self.behind and not self.closed:
            self._caught_up()

    def _caught_up(self) -> None:
        self.behind = False
        self.set_status(self.fanout.state_for(self.workspace_id), time.monotonic())

    async def finished(self) -> None:
        """Wait until the browser or the server ends the stream, and any write in flight."""
        await self.done
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self.writer


def _body(chunk: bytes) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": chunk, "more_body": True}
