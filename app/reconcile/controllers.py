"""The data feed's health: the /sync page, the board's feed indicator, and GET /api/sync/health."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.accounts.web import Viewer, provide_api_workspace
from app.db import Database
from app.reconcile.health import feed_for, sync_health
from app.settings import Settings
from app.sync.services import resolve_sync_failures
from app.web import page
from app.workspaces.models import Workspace


class SyncController(Controller):
    """Pages for signed-in members of the workspace in view (?ws=<slug>, like the board)."""

    path = "/sync"
    include_in_schema = False

    @get("/", name="sync")
    async def sync_page(
        self,
        request: Request,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        viewer: NamedDependency[Viewer],
    ) -> Template:
        async with db.session() as session:
            health = await sync_health(
                session,
                viewer.workspace,
                reconcile_interval_minutes=settings.reconcile_interval_minutes,
            )
        return page(
            "sync.html",
            request,
            viewer,
            workspace=viewer.workspace,
            health=health,
            feed=health.feed,
        )

    @get("/feed", name="sync_feed")
    async def feed(
        self, request: Request, db: NamedDependency[Database], viewer: NamedDependency[Viewer]
    ) -> Template:
        """The indicator alone: the board header polls it, since silence raises no event."""
        return page(
            "partials/_feed.html", request, viewer, feed=await feed_for(db, viewer.workspace)
        )

    @post("/failures/{failure_id:int}/resolve", name="sync_resolve")
    async def resolve(
        self,
        failure_id: FromPath[int],
        db: NamedDependency[Database],
        viewer: NamedDependency[Viewer],
    ) -> Redirect:
        """A plain form post (works without JavaScript); back to /sync afterwards."""
        async with db.write() as session:
            await resolve_sync_failures(session, viewer.workspace_id, [failure_id])
        return Redirect(f"/sync?ws={quote(viewer.workspace.slug)}", status_code=303)


class SyncApiController(Controller):
    """GET /api/sync/health: a workspace key (Authorization: Bearer ...) or a signed-in session."""

    path = "/api/sync"
    tags = ["api"]
    dependencies = {"workspace": Provide(provide_api_workspace)}

    @get("/health")
    async def health(
        self,
        workspace: NamedDependency[Workspace],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> dict[str, Any]:
        async with db.session() as session:
            health = await sync_health(
                session, workspace, reconcile_interval_minutes=settings.reconcile_interval_minutes
            )
        return health.as_dict()
