"""The JSON API (`Authorization: Bearer <workspace key>`): leads, stats, sync failures, status."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST, HTTP_404_NOT_FOUND
from sqlalchemy import Connection

from app.accounts.web import provide_api_workspace
from app.db import Database
from app.leads.changes import LEAD_STATUSES, StatusError, set_status_by_human
from app.leads.queries import lead_stats, list_leads
from app.live.broker import Broker
from app.live.outbox import LEAD_CHANGED, Change, add_change
from app.sarah.rules import TEMPERATURES
from app.sync.services import list_sync_failures, resolve_sync_failures
from app.workspaces.models import Workspace


def _bad(message: str) -> Response[dict[str, Any]]:
    return Response({"error": message}, status_code=HTTP_400_BAD_REQUEST)


class ApiController(Controller):
    path = "/api"
    tags = ["api"]
    dependencies = {"workspace": Provide(provide_api_workspace)}

    @get("/leads")
    async def leads(
        self,
        workspace: NamedDependency[Workspace],
        db: NamedDependency[Database],
        temperature: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Response[dict[str, Any]]:
        if temperature and temperature not in TEMPERATURES:
            return _bad(f"temperature must be one of {', '.join(TEMPERATURES)}")
        if status and status not in LEAD_STATUSES:
            return _bad(f"status must be one of {', '.join(LEAD_STATUSES)}")
        assert workspace.id is not None
        async with db.session() as session:
            rows = await list_leads(
                session, workspace.id, temperature=temperature, status=status, limit=limit
            )
        return Response({"leads": rows, "count": len(rows)})

    @get("/stats")
    async def stats(
        self, workspace: NamedDependency[Workspace], db: NamedDependency[Database]
    ) -> dict[str, Any]:
        assert workspace.id is not None
        async with db.session() as session:
            return await lead_stats(session, workspace.id)

    @post("/leads/{lead_id:int}/status", status_code=HTTP_200_OK)
    async def set_status(
        self,
        request: Request,
        lead_id: FromPath[int],
        workspace: NamedDependency[Workspace],
        db: NamedDependency[Database],
        broker: NamedDependency[Broker],
    ) -> Response[dict[str, Any]]:
        """A person sets the status ({"status": "...", "actor": "Rina"}), or hands the lead back
        to the bot ({"release_to_bot": true})."""
        assert workspace.id is not None
        try:
            body = await request.json()
        except Exception:
            return _bad("body is not valid JSON")
        if not isinstance(body, dict):
            return _bad("body must be a JSON object")
        status = body.get("status")
        release = body.get("release_to_bot") is True
        actor = str(body.get("actor") or "api")[:120]
        if status is None and not release:
            return _bad("give a status, or release_to_bot: true")
        ws_id = workspace.id

        def apply(conn: Connection) -> Change | None:
            changed = set_status_by_human(
                conn, ws_id, lead_id, status, actor, release_to_bot=release
            )
            return add_change(conn, ws_id, LEAD_CHANGED, lead_id) if changed else None

        try:
            change = await db.run_write(apply)
        except StatusError as exc:
            return _bad(str(exc))
        except LookupError:
            return Response({"error": "no such lead"}, status_code=HTTP_404_NOT_FOUND)
        if change is not None:
            await broker.publish([change])
        return Response({"changed": change is not None})

    @get("/sync/failures")
    async def sync_failures(
        self,
        workspace: NamedDependency[Workspace],
        db: NamedDependency[Database],
        source: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        unresolved: FromQuery[bool] = False,
    ) -> dict[str, Any]:
        assert workspace.id is not None
        async with db.session() as session:
            rows = await list_sync_failures(
                session, workspace.id, source=source, include_resolved=not unresolved, limit=limit
            )
        return {"failures": rows, "count": len(rows)}

    @post("/sync/failures/resolve", status_code=HTTP_200_OK)
    async def resolve(
        self, request: Request, workspace: NamedDependency[Workspace], db: NamedDependency[Database]
    ) -> Response[dict[str, Any]]:
        """Mark failures resolved: {"ids": [1, 2, 3]}."""
        assert workspace.id is not None
        try:
            body = await request.json()
        except Exception:
            return _bad("body is not valid JSON")
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            return _bad("ids must be a list of failure ids")
        async with db.write() as session:
            resolved = await resolve_sync_failures(session, workspace.id, ids)
        return Response({"resolved": resolved})
