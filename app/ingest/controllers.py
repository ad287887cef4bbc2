"""Webhook endpoints: hand the raw body to the ingest service, map outcomes to HTTP.

Plain ASGI endpoints (app/plain.py): the busiest path in the product, and the one with the least
to do per request.
"""

from __future__ import annotations

import hmac

from litestar.handlers import ASGIRouteHandler

from app.ingest.services import IngestError, IngestResult, IngestService, WorkspaceDirectory
from app.plain import PlainRequest, PlainResponse, plain_endpoint


def _answer(result: IngestResult) -> PlainResponse:
    return PlainResponse.json(result.as_json())


def _refuse(error: IngestError) -> PlainResponse:
    return PlainResponse.json({"error": error.detail}, error.status)


async def meta_handshake(directory: WorkspaceDirectory, params: dict[str, str]) -> PlainResponse:
    """Meta's subscription check: echo hub.challenge when hub.verify_token is a workspace's."""
    token = params.get("hub.verify_token") or ""
    if params.get("hub.mode") == "subscribe" and token:
        for workspace in await directory.all():
            expected = workspace.meta_verify_token or ""
            if expected and hmac.compare_digest(expected.encode(), token.encode()):
                return PlainResponse.text(params.get("hub.challenge") or "")
    return PlainResponse.text("verification failed", 403)


def webhook_endpoints(
    ingest: IngestService, directory: WorkspaceDirectory, max_body: int
) -> list[ASGIRouteHandler]:
    @plain_endpoint(
        ["/webhooks/kapso", "/webhook/kapso"], methods=["POST"], max_body=max_body, name="kapso"
    )
    async def kapso(request: PlainRequest) -> PlainResponse:
        """Kapso webhook, payload v2 (single or batched), signed with X-Webhook-Signature."""
        try:
            return _answer(await ingest.receive_kapso(request.headers, request.body))
        except IngestError as exc:
            return _refuse(exc)

    @plain_endpoint("/webhooks/whatsapp", methods=["GET", "POST"], max_body=max_body, name="meta")
    async def meta(request: PlainRequest) -> PlainResponse:
        """Meta's Cloud API webhook (POST, X-Hub-Signature-256) and its handshake (GET)."""
        if request.method == "GET":
            return await meta_handshake(directory, request.query)
        try:
            return _answer(await ingest.receive_meta(request.headers, request.body))
        except IngestError as exc:
            return _refuse(exc)

    return [kapso, meta]
