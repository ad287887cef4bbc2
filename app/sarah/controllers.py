"""GET/POST /sarah/state: the contract Sarah's Kapso workflows already call.

Plain ASGI endpoints (app/plain.py): the bot calls twice per message, and each call is a small JSON
body in and out. `Authorization: Bearer <Sarah key>` names the workspace.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.handlers import ASGIRouteHandler

from app.auth import KeyDirectory, bearer_key
from app.plain import PlainRequest, PlainResponse, plain_endpoint
from app.sarah.services import InvalidSarahBody, SarahService
from app.workspaces.models import Workspace


def _invalid(exc: InvalidSarahBody) -> PlainResponse:
    return PlainResponse.json(
        {"success": False, "error": f"invalid body: {exc}", "fields": exc.fields}, 400
    )


def _not_json() -> PlainResponse:
    return PlainResponse.json(
        {"success": False, "error": "body is not valid JSON", "fields": {"body": "not JSON"}}, 400
    )


def sarah_endpoints(
    sarah: SarahService, keys: KeyDirectory, max_body: int
) -> list[ASGIRouteHandler]:
    async def workspace_of(request: PlainRequest) -> Workspace | None:
        key = bearer_key(request.headers.get("authorization"))
        return await keys.workspace_for(key) if key else None

    @plain_endpoint("/sarah/state", methods=["GET", "POST"], max_body=max_body, name="sarah_state")
    async def state(request: PlainRequest) -> PlainResponse:
        """GET: the conversation state, or the default for a new conversation.
        POST: upsert the state and sync it onto the lead; answers {success, sync, syncReason}."""
        workspace = await workspace_of(request)
        if workspace is None or workspace.id is None:
            return PlainResponse.json({"error": "send Authorization: Bearer <Sarah key>"}, 401)
        try:
            if request.method == "GET":
                phone = request.query.get("contact_phone")
                return PlainResponse.json(await sarah.get(workspace.id, phone))
            try:
                body: Any = msgspec.json.decode(request.body)
            except msgspec.DecodeError:
                return _not_json()
            result = await sarah.save(workspace.id, body)
        except InvalidSarahBody as exc:
            return _invalid(exc)
        return PlainResponse.json(
            {"success": True, "sync": result.synced, "syncReason": result.reason}
        )

    return [state]
