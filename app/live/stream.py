"""GET /events: the board's server-sent-events stream, written by the fan-out.

On connect the browser says which event it saw last (Last-Event-ID on native reconnects, ?after=
on page load and on htmx's own reconnects); missed events are replayed from the event log, or, past
the replay limit, the browser is told to refresh its view. The connection joins the fan-out before
the replay is read, so nothing slips between the replay and the live feed.

The request goes through Litestar as any page does (session, sign-in, workspace scope, security
headers on the response start). The body then bypasses the middleware: every chunk is written
with the server's own `send`, kept by `raw_send_middleware`, because with a thousand browsers
the middleware's wrappers were a third of the process's time (issue 11).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send
from sse_starlette import ServerSentEvent

from app.accounts.web import Viewer
from app.db import Database
from app.i18n import current_language
from app.live.connection import Connection
from app.live.fanout import Fanout
from app.live.outbox import changes_after, latest_change_id, oldest_change_id
from app.live.render import LiveRenderer
from app.live.views import lead_view, live_view
from app.settings import Settings

log = logging.getLogger(__name__)

RAW_SEND: Final = "leadboard.raw_send"
EVENTS_PATH: Final = "/events"
# A short retry: after a server restart the browser is back within about a second.
HELLO: Final = ServerSentEvent(comment="live", retry=1000).encode()


def raw_send_middleware(app: ASGIApp) -> ASGIApp:
    """Keeps the server's `send` in the scope state of /events (the outermost middleware)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == EVENTS_PATH:
            scope.setdefault("state", {})[RAW_SEND] = send
        await app(scope, receive, send)

    return middleware


def _parse_event_id(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


async def replay(
    db: Database,
    renderer: LiveRenderer,
    conn: Connection,
    *,
    tz: str,
    last_id: int,
    limit: int,
) -> set[int]:
    """Put what the browser missed since `last_id` in its backlog: one row per lead, or a refresh
    when that is more than `limit` events or the log was trimmed past it. Returns the leads
    replayed."""
    ws, lang = conn.workspace_id, conn.variant[0]
    oldest, newest, missed = await db.read(
        lambda c: (
            oldest_change_id(c, ws),
            latest_change_id(c, ws),
            changes_after(c, ws, last_id, limit + 1),
        )
    )
    trimmed = oldest is not None and last_id > 0 and last_id < oldest - 1
    if len(missed) > limit or trimmed:
        # Too much to replay one by one: the browser reloads its view, which is cheaper.
        conn.backlog.newest_id = max(conn.backlog.newest_id, newest)
        conn.backlog.overflow(time.monotonic())
        return set()
    latest_per_lead = {change.contact_id: change for change in missed}  # the newest per lead
    for change in sorted(latest_per_lead.values(), key=lambda c: c.id):
        event = await renderer.render(change, tz, lang)
        if event is not None:
            conn.offer(("lead", change.contact_id), event.wire, time.monotonic(), change.id)
    return {cid for cid in latest_per_lead if cid is not None}


class EventStreamResponse(ASGIResponse):
    """Starts like any response (through the middleware), then hands the body to the fan-out."""

    _should_set_content_length = False

    def __init__(
        self,
        fanout: Fanout,
        conn: Connection,
        *,
        db: Database,
        renderer: LiveRenderer,
        tz: str,
        last_id: int | None,
        replay_limit: int,
    ) -> None:
        super().__init__(
            media_type="text/event-stream",
            status_code=200,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._fanout = fanout
        self._conn = conn
        self._db = db
        self._renderer = renderer
        self._tz = tz
        self._last_id = last_id
        self._replay_limit = replay_limit
        self._raw_send: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._raw_send = scope.get("state", {}).get(RAW_SEND, send)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._fanout.disconnect(self._conn)

    async def send_body(self, send: Send, receive: Receive) -> None:
        raw = self._raw_send or send
        conn = self._conn
        watcher = asyncio.ensure_future(_until_disconnect(receive, conn))
        try:
            await raw({"type": "http.response.body", "body": HELLO, "more_body": True})
            conn.start(raw)
            if self._last_id is not None:
                try:
                    replayed = await replay(
                        self._db,
                        self._renderer,
                        conn,
                        tz=self._tz,
                        last_id=self._last_id,
                        limit=self._replay_limit,
                    )
                    if replayed and conn.view_key is not None:
                        self._fanout.touch_views(conn.workspace_id, replayed, only=conn.view_key)
                except Exception:  # the database is away: live changes still flow
                    log.exception("replay after event %s failed; the view refreshes", self._last_id)
                    conn.backlog.overflow(time.monotonic())
            await conn.finished()
            await raw({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the browser went away mid-write
        finally:
            watcher.cancel()


async def _until_disconnect(receive: Receive, conn: Connection) -> None:
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
    conn.close()


@get(EVENTS_PATH, media_type="text/event-stream", include_in_schema=False)
async def events_stream(
    request: Request,
    db: NamedDependency[Database],
    fanout: NamedDependency[Fanout],
    renderer: NamedDependency[LiveRenderer],
    settings: NamedDependency[Settings],
    viewer: NamedDependency[Viewer],
    after: FromQuery[str | None] = None,
    view: FromQuery[str | None] = None,
    lead: FromQuery[int | None] = None,
) -> EventStreamResponse:
    """Only the signed-in member's workspace: a crafted Last-Event-ID replays nothing else."""
    workspace = viewer.workspace
    assert workspace.id is not None
    last_id = _parse_event_id(request.headers.get("last-event-id"))
    if last_id is None:
        last_id = _parse_event_id(after)
    # Join the fan-out now, before the response starts: changes from here on reach this browser.
    shown = (
        lead_view(lead, viewer.user_id)
        if lead is not None
        else live_view(view, viewer.user_id, settings.board_page_size)
    )
    conn = fanout.connect(workspace.id, (current_language.get(), workspace.timezone), shown)
    if fanout.closing:
        conn.close()
    return EventStreamResponse(
        fanout,
        conn,
        db=db,
        renderer=renderer,
        tz=workspace.timezone,
        last_id=last_id,
        replay_limit=settings.sse_replay_limit,
    )
