"""A browser's /events stream without a network: the real response, the real fan-out, and an
ASGI server stand-in that keeps what was written and says when the browser leaves."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from app.live.pipeline import LivePipeline
from app.live.stream import EventStreamResponse
from app.live.views import LiveView
from app.workspaces.models import Workspace


@dataclass(frozen=True)
class SSE:
    event: str  # "message" when the block names none; "comment" for a comment-only block
    data: str
    id: str | None


def parse_events(text: str) -> list[SSE]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields.setdefault(name or "comment", []).append(
                value[1:] if value[:1] == " " else value
            )
        event = fields.get(
            "event", ["comment" if set(fields) <= {"comment", "retry"} else "message"]
        )
        events.append(
            SSE(event[0], "\n".join(fields.get("data", [])), (fields.get("id") or [None])[0])
        )
    return events


class OpenStream:
    """One connected browser. `chunks` are the body writes, as the server sent them."""

    def __init__(
        self,
        live: LivePipeline,
        workspace: Workspace,
        *,
        last_id: int | None = None,
        lang: str = "en",
        replay_limit: int = 500,
        view: LiveView | None = None,
    ) -> None:
        assert workspace.id is not None
        self.live = live
        self.conn = live.fanout.connect(workspace.id, (lang, workspace.timezone), view)
        self.response = EventStreamResponse(
            live.fanout,
            self.conn,
            db=live.renderer._db,
            renderer=live.renderer,
            tz=workspace.timezone,
            last_id=last_id,
            replay_limit=replay_limit,
        )
        self.chunks: list[bytes] = []
        self.started: dict[str, Any] | None = None
        self.ended = False
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._incoming.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        self._written = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reads: dict[str, int] = {}  # per event type: how many next() returned

    async def _receive(self) -> dict[str, Any]:
        return await self._incoming.get()

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = message
        elif message["type"] == "http.response.body":
            if message.get("body"):
                self.chunks.append(message["body"])
            if not message.get("more_body", False):
                self.ended = True
        self._written.set()

    async def __aenter__(self) -> OpenStream:
        scope = {"type": "http", "method": "GET", "path": "/events", "headers": [], "state": {}}
        self._task = asyncio.ensure_future(self.response(scope, self._receive, self._send))  # type: ignore[arg-type]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()

    async def leave(self) -> None:
        """The browser closes the tab; the stream must end and leave the fan-out."""
        self._incoming.put_nowait({"type": "http.disconnect"})
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)

    @property
    def events(self) -> list[SSE]:
        return parse_events(b"".join(self.chunks).decode())

    async def next(self, event: str = "lead", wait: float = 5.0) -> SSE:
        """The next event of that type not returned before (waits for it)."""
        deadline = time.monotonic() + wait
        while True:
            found = [e for e in self.events if e.event == event]
            seen = self._reads.get(event, 0)
            if len(found) > seen:
                self._reads[event] = seen + 1
                return found[seen]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {event!r} event in {wait}s; got {self.events}")
            self._written.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._written.wait(), left)

    async def quiet(self, event: str = "lead", wait: float = 0.3) -> bool:
        """True when no new event of that type arrives within `wait` seconds."""
        try:
            await self.next(event, wait)
        except TimeoutError:
            return True
        return False
