"""GET/POST /sarah/state: the contract Sarah's Kapso workflows already call."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST

from app.auth import provide_key_workspace
from app.sarah.services import InvalidSarahBody, SarahService
from app.workspaces.models import Workspace


def _invalid(exc: InvalidSarahBody) -> Response[dict[str, Any]]:
    return Response(
        {"success": False, "error": f"invalid body: {exc}", "fields": exc.fields},
        status_code=HTTP_400_BAD_REQUEST,
    )


class SarahController(Controller):
    path = "/sarah"
    tags = ["sarah"]
    dependencies = {"workspace": Provide(provide_key_workspace)}

    @get("/state")
    async def get_state(
        self,
        workspace: NamedDependency[Workspace],
        sarah: NamedDependency[SarahService],
        contact_phone: FromQuery[str | None] = None,
    ) -> Response[dict[str, Any]]:
        """The conversation state, or the default for a new conversation."""
        assert workspace.id is not None
        try:
            return Response(await sarah.get(workspace.id, contact_phone))
        except InvalidSarahBody as exc:
            return _invalid(exc)

    @post("/state", status_code=HTTP_200_OK)
    async def save_state(
        self,
        request: Request,
        workspace: NamedDependency[Workspace],
        sarah: NamedDependency[SarahService],
    ) -> Response[dict[str, Any]]:
        """Upsert the state and sync it onto the lead: {success, sync, syncReason}."""
        assert workspace.id is not None
        try:
            body = await request.json()
        except Exception:  # Litestar raises its own decode errors; all mean the same here
            return Response(
                {
                    "success": False,
                    "error": "body is not valid JSON",
                    "fields": {"body": "not JSON"},
                },
                status_code=HTTP_400_BAD_REQUEST,
            )
        try:
            result = await sarah.save(workspace.id, body)
        except InvalidSarahBody as exc:
            return _invalid(exc)
        return Response({"success": True, "sync": result.synced, "syncReason": result.reason})
