"""Webhook endpoints: read the raw body, hand it to the ingest service, map outcomes to HTTP."""

from __future__ import annotations

import hmac

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_403_FORBIDDEN

from app.ingest.services import IngestError, IngestResult, IngestService, WorkspaceDirectory


def _answer(result: IngestResult) -> Response[dict[str, object]]:
    return Response(result.as_json(), status_code=HTTP_200_OK)


def _refuse(error: IngestError) -> Response[dict[str, object]]:
    return Response({"error": error.detail}, status_code=error.status)


class WebhookController(Controller):
    path = "/"
    include_in_schema = True
    tags = ["webhooks"]

    @post(["/webhooks/kapso", "/webhook/kapso"], status_code=HTTP_200_OK)
    async def kapso(
        self, request: Request, ingest: NamedDependency[IngestService]
    ) -> Response[dict[str, object]]:
        """Kapso webhook, payload v2 (single or batched), signed with X-Webhook-Signature."""
        raw = await request.body()
        try:
            return _answer(await ingest.receive_kapso(request.headers, raw))
        except IngestError as exc:
            return _refuse(exc)

    @post("/webhooks/whatsapp", status_code=HTTP_200_OK)
    async def meta(
        self, request: Request, ingest: NamedDependency[IngestService]
    ) -> Response[dict[str, object]]:
        """Meta's raw Cloud API webhook, signed with X-Hub-Signature-256."""
        raw = await request.body()
        try:
            return _answer(await ingest.receive_meta(request.headers, raw))
        except IngestError as exc:
            return _refuse(exc)

    @get("/webhooks/whatsapp", media_type=MediaType.TEXT)
    async def meta_handshake(
        self, request: Request, directory: NamedDependency[WorkspaceDirectory]
    ) -> Response[str]:
        """Meta's subscription check: echo hub.challenge when hub.verify_token is a workspace's."""
        params = request.query_params
        mode = params.get("hub.mode")
        token = params.get("hub.verify_token") or ""
        challenge = params.get("hub.challenge") or ""
        if mode == "subscribe" and token:
            for workspace in await directory.all():
                expected = workspace.meta_verify_token or ""
                if expected and hmac.compare_digest(expected.encode(), token.encode()):
                    return Response(challenge, status_code=HTTP_200_OK, media_type=MediaType.TEXT)
        return Response(
            "verification failed", status_code=HTTP_403_FORBIDDEN, media_type=MediaType.TEXT
        )
