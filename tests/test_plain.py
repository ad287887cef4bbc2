"""Plain ASGI endpoints: methods, body limits, query strings, and the app's handling around them.

Each test builds a tiny Litestar app inline with one endpoint.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.plain import PlainRequest, PlainResponse, plain_endpoint
from app.security import security_headers_middleware

LIMIT = 1000


@plain_endpoint(["/echo", "/echo-alias"], methods=["GET", "POST"], max_body=LIMIT, name="echo")
async def echo(request: PlainRequest) -> PlainResponse:
    """Answers what it was given."""
    return PlainResponse.json(
        {
            "method": request.method,
            "size": len(request.body),
            "query": request.query,
            "signature": request.headers.get("x-signature"),
        }
    )


@plain_endpoint("/boom", methods=["POST"], max_body=LIMIT, name="boom")
async def boom(request: PlainRequest) -> PlainResponse:
    raise RuntimeError("secret internals")


def _app() -> Litestar:
    return Litestar([echo, boom], middleware=[security_headers_middleware], debug=False)


async def test_body_headers_and_query_reach_the_endpoint() -> None:
    async with AsyncTestClient(_app()) as client:
        response = await client.post(
            "/echo?a=1&b=x%20y&empty=", content=b"x" * 10, headers={"X-Signature": "abc"}
        )
        alias = await client.get("/echo-alias")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "method": "POST",
        "size": 10,
        "query": {"a": "1", "b": "x y", "empty": ""},
        "signature": "abc",
    }
    assert alias.json()["method"] == "GET"
    # The app's middleware still wraps plain endpoints.
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_other_methods_get_405_with_allow() -> None:
    async with AsyncTestClient(_app()) as client:
        put = await client.put("/echo", content=b"{}")
        get = await client.get("/boom")

    assert put.status_code == 405 and put.headers["allow"] == "GET, POST"
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    assert "not allowed" in get.json()["error"]


async def call_asgi(app: Litestar, chunks: list[bytes], *, disconnect: bool = False) -> list[Any]:
    """POST /echo straight through the ASGI interface, the body in chunks without a length
    (as a chunked upload arrives), optionally with the client going away mid-body."""
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]
    incoming.append(
        {"type": "http.disconnect"}
        if disconnect
        else {"type": "http.request", "body": b"", "more_body": False}
    )
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent


async def test_a_body_over_the_limit_is_413_by_length_and_by_bytes_received() -> None:
    app = _app()
    async with AsyncTestClient(app) as client:
        at_limit = await client.post("/echo", content=b"x" * LIMIT)
        declared = await client.post("/echo", content=b"x" * (LIMIT + 1))
        streamed_ok = await call_asgi(app, [b"y" * 500, b"y" * 500])
        streamed_over = await call_asgi(app, [b"y" * 600, b"y" * 600])

    assert at_limit.status_code == 200 and at_limit.json()["size"] == LIMIT
    assert declared.status_code == 413 and "1,000 bytes" in declared.json()["error"]
    assert streamed_ok[0]["status"] == 200 and b'"size":1000' in streamed_ok[1]["body"]
    assert streamed_over[0]["status"] == 413


async def test_a_client_gone_mid_body_gets_no_answer() -> None:
    async with AsyncTestClient(_app()) as client:  # runs the app's startup
        sent = await call_asgi(client.app, [b"z" * 10], disconnect=True)

    assert sent == []


async def test_an_unexpected_error_is_a_plain_500_without_a_trace() -> None:
    async with AsyncTestClient(_app()) as client:
        response = await client.post("/boom", content=b"{}")

    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
