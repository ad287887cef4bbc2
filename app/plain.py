"""Plain ASGI endpoints for the machine traffic: Kapso/Meta webhooks and Sarah's state API.

These are the busiest endpoints and the simplest: a body in, a small JSON answer out, no session,
no template. A Litestar handler spends about 0.1 ms per request on dependency injection, request
and response objects; on the webhook path that was 13 % of the server's CPU (bench/ingest.py), so
these read the body and headers themselves and answer through `send`. Everything around them still
applies: the app's middleware (security headers, rate limits), its exception handling (a plain
500, never a trace), and its routing.

An endpoint is an async function `PlainRequest -> PlainResponse`; `plain_endpoint` turns it into a
Litestar ASGI route handler that also answers 405 for other methods and 413 for bodies over the
limit (checked on Content-Length and again on the bytes actually received).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


@dataclass(slots=True)
class PlainRequest:
    method: str
    headers: Mapping[str, str]  # lower-case names; a repeated header keeps its last value
    query_string: bytes
    body: bytes

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True))


@dataclass(slots=True)
class PlainResponse:
    status: int
    content: bytes
    media_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> PlainResponse:
        return cls(status, msgspec.json.encode(payload))

    @classmethod
    def text(cls, text: str, status: int = 200) -> PlainResponse:
        return cls(status, text.encode(), TEXT)


Endpoint = Callable[[PlainRequest], Awaitable[PlainResponse]]


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise _BodyTooLarge
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Send, response: PlainResponse) -> None:
    headers = [
        (b"content-type", response.media_type),
        (b"content-length", str(len(response.content)).encode()),
        *response.headers,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.content, "more_body": False})


def plain_endpoint(
    path: str | Sequence[str], *, methods: Sequence[str], max_body: int, name: str
) -> Callable[[Endpoint], ASGIRouteHandler]:
    """Route `path` (any method) to the endpoint; other methods get 405 with Allow."""
    allowed = frozenset(methods)
    allow_header = ", ".join(sorted(allowed)).encode()

    def decorate(endpoint: Endpoint) -> ASGIRouteHandler:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            method: str = scope["method"]  # type: ignore[typeddict-item]  # routes are HTTP
            if method not in allowed:
                refused = PlainResponse.json({"error": f"method {method} not allowed"}, 405)
                refused.headers.append((b"allow", allow_header))
                await _send(send, refused)
                return
            try:
                body = await _read_body(scope, receive, max_body) if method == "POST" else b""
            except _BodyTooLarge:
                limit = f"request body is larger than the limit of {max_body:,} bytes"
                await _send(send, PlainResponse.json({"error": limit}, 413))
                return
            except _Disconnected:
                return  # nobody is left to answer
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            request = PlainRequest(
                method=method,
                headers=headers,
                query_string=scope.get("query_string", b""),
                body=body,
            )
            await _send(send, await endpoint(request))

        handle.__name__ = handle.__qualname__ = name
        handle.__doc__ = endpoint.__doc__
        # Litestar inspects the handler's signature: name the ASGI types explicitly.
        handle.__annotations__ = {"scope": Scope, "receive": Receive, "send": Send, "return": None}
        paths = [path] if isinstance(path, str) else list(path)
        return asgi(paths, name=name, copy_scope=False)(handle)

    return decorate
