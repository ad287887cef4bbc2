"""Workspace settings for admins: numbers, secrets, keys, API tokens, stale threshold, time zone.

New secrets and tokens are shown once, on the page that created them; only hashes of keys and
tokens are stored (the webhook secret stays readable: signatures are checked with it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.services import members_of
from app.accounts.viewers import viewer_cache
from app.accounts.web import Viewer
from app.auth import KeyDirectory
from app.db import Database
from app.i18n import N_
from app.ingest.services import WorkspaceDirectory
from app.settings import Settings
from app.web import page
from app.workspaces.models import Workspace
from app.workspaces.services import (
    WorkspaceError,
    create_api_token,
    list_api_tokens,
    revoke_api_token,
    rotate_webhook_secret,
    set_sarah_key,
    update_workspace,
)

FormBody = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


async def _page(
    request: Request,
    db: Database,
    admin: Viewer,
    settings: Settings,
    *,
    revealed: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Template:
    async with db.session() as session:
        workspace = await session.get(Workspace, admin.workspace_id)
        tokens = await list_api_tokens(session, admin.workspace_id)
        members = await members_of(session, admin.workspace_id)
    return page(
        "settings.html",
        request,
        admin,
        status_code=status,
        workspace=workspace,
        tokens=tokens,
        members=members,
        revealed=revealed or {},
        error=error,
        public_url=settings.public_url,
    )


async def _on_workspace(
    db: Database, admin: Viewer, action: Callable[[AsyncSession, Workspace], Awaitable[str]]
) -> str:
    """Run an action on the admin's workspace in one write; returns the new secret to show once."""
    async with db.write() as session:
        workspace = await session.get(Workspace, admin.workspace_id)
        assert workspace is not None
        return await action(session, workspace)


class SettingsController(Controller):
    path = "/settings"
    include_in_schema = False

    @get("/")
    async def show(
        self,
        request: Request,
        db: NamedDependency[Database],
        admin: NamedDependency[Viewer],
        settings: NamedDependency[Settings],
    ) -> Template:
        return await _page(request, db, admin, settings, error=request.query_params.get("error"))

    @post("/")
    async def save(
        self,
        request: Request,
        data: FormBody,
        db: NamedDependency[Database],
        admin: NamedDependency[Viewer],
        settings: NamedDependency[Settings],
        directory: NamedDependency[WorkspaceDirectory],
    ) -> Any:
        threshold = (data.get("stale_threshold_minutes") or "").strip()
        try:
            async with db.write() as session:
                workspace = await session.get(Workspace, admin.workspace_id)
                assert workspace is not None
                await update_workspace(
                    session,
                    workspace,
                    kapso_phone_number_id=data.get("kapso_phone_number_id"),
                    meta_app_secret=data.get("meta_app_secret"),
                    meta_verify_token=data.get("meta_verify_token"),
                    stale_threshold_minutes=int(threshold) if threshold.isdigit() else -1,
                    timezone=(data.get("timezone") or "").strip(),
                )
        except WorkspaceError as exc:
            return await _page(request, db, admin, settings, error=str(exc), status=400)
        directory.forget()
        viewer_cache(db).forget()  # pages show the workspace's name and time zone from it
        return Redirect("/settings", status_code=HTTP_303_SEE_OTHER)

    @post("/rotate-webhook-secret")
    async def rotate_webhook(
        self,
        request: Request,
        db: NamedDependency[Database],
        admin: NamedDependency[Viewer],
        settings: NamedDependency[Settings],
        directory: NamedDependency[WorkspaceDirectory],
    ) -> Template:
        secret = await _on_workspace(db, admin, rotate_webhook_secret)
        directory.forget()
        return await _page(request, db, admin, settings, revealed={N_("Webhook secret"): secret})

    @post("/rotate-sarah-key")
    async def rotate_sarah(
        self,
        request: Request,
        db: NamedDependency[Database],
        admin: NamedDependency[Viewer],
        settings: NamedDependency[Settings],
        keys: NamedDependency[KeyDirectory],
    ) -> Template:
        key = await _on_workspace(db, admin, set_sarah_key)
        keys.forget()
        return await _page(request, db, admin, settings, revealed={N_("Sarah key"): key})

    @post("/api-tokens")
    async def new_token(
        self,
        request: Request,
        data: FormBody,
        db: NamedDependency[Database],
        admin: NamedDependency[Viewer],
        settings: NamedDependency[Settings],
    ) -> Template:
        name = data.get("name") or ""
        token = await _on_workspace(db, admin, lambda s, ws: create_api_token(s, ws, name))
        return await _page(request, db, admin, settings, revealed={N_("API token"): token})

    @post("/api-tokens/{token_id:int}/revoke")
    async def revoke(
        self,
        token_id: FromPath[int],
        db: NamedDependency[Database],
        admin: NamedDependency[Viewer],
        keys: NamedDependency[KeyDirectory],
    ) -> Redirect:
        async with db.write() as session:
            await revoke_api_token(session, admin.workspace_id, token_id)
        keys.forget()
        return Redirect("/settings", status_code=HTTP_303_SEE_OTHER)
