"""The ingest benchmark's baseline: a bare Litestar app that parses the same Kapso bodies.

One JSON POST endpoint on the webhook's path: Litestar decodes the body (msgspec) into a dict and
echoes it back. No signature check, no database: the cost of the framework and server alone.
Serve with: uvicorn _echo_app:app --app-dir bench --workers 1
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, MediaType, get, post
from litestar.status_codes import HTTP_200_OK


@post("/webhooks/kapso", status_code=HTTP_200_OK)
async def echo(data: dict[str, Any]) -> dict[str, Any]:
    return data


@get("/healthz", media_type=MediaType.JSON)
async def healthz() -> dict[str, bool]:
    return {"ok": True}


app = Litestar(route_handlers=[echo, healthz], debug=False)
