"""The board (table and pipeline), its CSV export, and the lead page with its actions.

Thin: parse the request, call a service, render. Pages render whole for a browser and as the
swapped fragment for htmx (same templates), and every form works without JavaScript.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Stream, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST
from sqlalchemy import Connection

from app.accounts.web import Viewer
from app.db import Database
from app.leads import actions
from app.leads.board import BoardQuery, Page, PipelineColumn, board_rows, pipeline_columns
from app.leads.cache import BoardCache
from app.leads.changes import StatusError
from app.leads.export import csv_rows
from app.leads.queries import LeadRow, lead_details, lead_row
from app.leads.timeline import TimelinePage, timeline
from app.live.broker import Broker
from app.live.outbox import Change, latest_change_id
from app.live.views import live_view_key
from app.notes.services import NoteError
from app.reconcile.health import FeedHealth, feed_health
from app.settings import Settings
from app.web import back_to, page

FormBody = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


BoardRead = tuple[int, FeedHealth | None, Page | None, list[PipelineColumn] | None]


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


class BoardController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", name="board")
    async def board(
        self,
        request: Request,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        viewer: NamedDependency[Viewer],
        cache: NamedDependency[BoardCache],
    ) -> Template:
        query = BoardQuery.from_params(request.query_params, settings.board_page_size)
        ws = viewer.workspace_id
        facets = await cache.facets(ws)
        user_id, workspace = viewer.user_id, viewer.workspace
        fragment = _is_htmx(request) and request.headers.get("hx-target") == "board-view"

        def read(conn: Connection) -> BoardRead:
            # The event position first: whatever commits after it reaches the page as a replay.
            last_event_id = latest_change_id(conn, ws)
            feed = None if fragment else feed_health(conn, workspace, exact=False)  # indicator
            if query.view == "pipeline":
                columns = pipeline_columns(conn, ws, query, user_id, facets=facets)
                return last_event_id, feed, None, columns
            return last_event_id, feed, board_rows(conn, ws, query, user_id, facets), None

        last_event_id, feed, rows, columns = await db.read(read)
        members = await cache.members(ws)
        return page(
            "partials/_board_view.html" if fragment else "board.html",
            request,
            viewer,
            workspace=viewer.workspace,
            query=query,
            page=rows,
            columns=columns,
            members=members,
            stats=await cache.stats(ws, viewer.workspace.timezone),
            feed=feed,
            facets=facets,
            oob=False,
            last_event_id=last_event_id,
            live_view=live_view_key(query),
            webhook_url=f"{settings.public_url}/webhooks/kapso",
        )

    @get("/export.csv")
    async def export(
        self,
        request: Request,
        db: NamedDependency[Database],
        viewer: NamedDependency[Viewer],
    ) -> Stream:
        """The current filtered view as CSV, streamed in keyset batches (flat memory)."""
        query = BoardQuery.from_params(request.query_params)

        async def body() -> AsyncIterator[str]:
            async for chunk in csv_rows(
                db, viewer.workspace_id, query, viewer.user_id, viewer.workspace.timezone
            ):
                yield chunk

        name = f"leads-{viewer.workspace.slug}.csv"
        return Stream(
            body(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )


class LeadController(Controller):
    path = "/leads"
    include_in_schema = False

    @get("/{lead_id:int}")
    async def show(
        self,
        request: Request,
        lead_id: FromPath[int],
        db: NamedDependency[Database],
        viewer: NamedDependency[Viewer],
        cache: NamedDependency[BoardCache],
        before: FromQuery[str | None] = None,
    ) -> Template:
        ws = viewer.workspace_id

        def read(conn: Connection) -> tuple[LeadRow, dict[str, Any], TimelinePage, int] | None:
            lead = lead_row(conn, ws, lead_id)
            if lead is None:
                return None
            details = lead_details(conn, ws, lead_id)
            items = timeline(conn, ws, lead_id, cursor=before)
            return lead, details, items, latest_change_id(conn, ws)

        found = await db.read(read)
        if found is None:
            raise NotFoundException("no such lead")  # another workspace's id: the same answer
        lead, details, items, last_event_id = found
        members = await cache.members(ws)
        target = request.headers.get("hx-target") if _is_htmx(request) else None
        template = {
            "timeline-more": "partials/_timeline_items.html",
            "lead-live": "partials/_lead_live.html",
        }.get(target or "", "lead.html")
        return page(
            template,
            request,
            viewer,
            workspace=viewer.workspace,
            lead=lead,
            details=details,
            timeline=items,
            members=members,
            last_event_id=last_event_id,
            error=request.query_params.get("error"),
        )

    async def _act(
        self,
        request: Request,
        lead_id: FromPath[int],
        db: Database,
        broker: Broker,
        action: Any,
    ) -> Response[Any]:
        try:
            change: Change | None = await db.run_write(action)
        except LookupError:
            raise NotFoundException("no such lead") from None
        except (StatusError, NoteError, actions.ActionError) as exc:
            if _is_htmx(request):
                return Response({"error": str(exc)}, status_code=HTTP_400_BAD_REQUEST)
            return Redirect(f"/leads/{lead_id}?error={exc}", status_code=HTTP_303_SEE_OTHER)
        if change is not None:
            await broker.publish([change])
        if _is_htmx(request):
            # The page refreshes from the live event; answer at once with nothing to swap.
            return Response(b"", status_code=204, headers={"HX-Trigger": "lead-changed"})
        return Redirect(back_to(request, f"/leads/{lead_id}"), status_code=HTTP_303_SEE_OTHER)

    @post("/{lead_id:int}/status")
    async def status(
        self,
        request: Request,
        lead_id: FromPath[int],
        data: FormBody,
        db: NamedDependency[Database],
        broker: NamedDependency[Broker],
        viewer: NamedDependency[Viewer],
        cache: NamedDependency[BoardCache],
    ) -> Response[Any]:
        new = (data.get("status") or "").strip()
        response = await self._act(
            request,
            lead_id,
            db,
            broker,
            lambda s: actions.change_status(s, viewer.workspace_id, lead_id, new, viewer.user.name),
        )
        # The pipeline's column counts come from the facet cache: the person who moved a card
        # sees the counts move with it (other changes show within the cache's 30 s).
        cache.forget(viewer.workspace_id)
        return response

    @post("/{lead_id:int}/claim")
    async def claim(
        self,
        request: Request,
        lead_id: FromPath[int],
        db: NamedDependency[Database],
        broker: NamedDependency[Broker],
        viewer: NamedDependency[Viewer],
    ) -> Response[Any]:
        return await self._act(
            request,
            lead_id,
            db,
            broker,
            lambda s: actions.assign_owner(s, viewer.workspace_id, lead_id, viewer.user_id),
        )

    @post("/{lead_id:int}/owner")
    async def assign(
        self,
        request: Request,
        lead_id: FromPath[int],
        data: FormBody,
        db: NamedDependency[Database],
        broker: NamedDependency[Broker],
        viewer: NamedDependency[Viewer],
    ) -> Response[Any]:
        raw = (data.get("owner") or "").strip()
        owner_id = int(raw) if raw.isdigit() else None
        return await self._act(
            request,
            lead_id,
            db,
            broker,
            lambda s: actions.assign_owner(s, viewer.workspace_id, lead_id, owner_id),
        )

    @post("/{lead_id:int}/notes")
    async def add_note(
        self,
        request: Request,
        lead_id: FromPath[int],
        data: FormBody,
        db: NamedDependency[Database],
        broker: NamedDependency[Broker],
        viewer: NamedDependency[Viewer],
    ) -> Response[Any]:
        body = data.get("body") or ""
        return await self._act(
            request,
            lead_id,
            db,
            broker,
            lambda s: actions.note(
                s,
                viewer.workspace_id,
                lead_id,
                body,
                user_id=viewer.user_id,
                author_name=viewer.user.name,
            ),
        )
