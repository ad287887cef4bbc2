"""The board page: the same template serves the full page and the htmx refresh of #board."""

from __future__ import annotations

from datetime import timedelta

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template

from app.accounts.web import Viewer
from app.db import Database, utcnow
from app.events import latest_change_id
from app.leads.queries import board_page, board_stats
from app.settings import Settings
from app.web import page


@get("/", name="board", include_in_schema=False)
async def board(
    request: Request,
    db: NamedDependency[Database],
    settings: NamedDependency[Settings],
    viewer: NamedDependency[Viewer],
    cursor: FromQuery[str | None] = None,
) -> Template:
    workspace_id = viewer.workspace_id
    async with db.session() as session:
        # Read the event position first: anything committed after it is replayed by the stream.
        last_event_id = await latest_change_id(session, workspace_id)
        rows = await board_page(
            session, workspace_id, cursor=cursor, page_size=settings.board_page_size
        )
        stats = await board_stats(session, workspace_id, utcnow() - timedelta(hours=24))
    return page(
        "board.html",
        request,
        viewer,
        workspace=viewer.workspace,
        page=rows,
        stats=stats,
        oob=False,
        page_size=settings.board_page_size,
        last_event_id=last_event_id,
        request_path=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        webhook_url=f"{settings.public_url}/webhooks/kapso",
    )
