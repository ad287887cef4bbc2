"""Security headers on every response, and a sign-in throttle."""

from __future__ import annotations

import time
from collections.abc import Callable

from litestar.stores.base import Store
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


def security_headers_middleware(app: ASGIApp) -> ASGIApp:
    """Adds the headers at the ASGI level, so streamed responses (SSE, CSV) get them too."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in HEADERS if k not in present
                ]
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


class LoginThrottle:
    """Failed sign-ins per email and per client address, in a shared store (Redis when set).

    After `limit` failures within `window` seconds, further attempts are refused until the window
    passes; a success clears the email's counter.
    """

    def __init__(self, store: Store, *, per_email: int = 5, per_ip: int = 20, window: int = 900):
        self.store = store
        self.per_email = per_email
        self.per_ip = per_ip
        self.window = window

    @staticmethod
    def _keys(email: str, ip: str) -> tuple[str, str]:
        return f"login:email:{email.strip().lower()}", f"login:ip:{ip}"

    async def _count(self, key: str) -> tuple[int, float]:
        raw = await self.store.get(key)
        if not raw:
            return 0, 0.0
        count, _, first = raw.decode().partition(":")
        return int(count), float(first or 0)

    async def retry_after(self, email: str, ip: str) -> int:
        """Seconds until another attempt is allowed; 0 when allowed now."""
        wait = 0
        for key, limit in zip(self._keys(email, ip), (self.per_email, self.per_ip), strict=True):
            count, first = await self._count(key)
            if count >= limit:
                wait = max(wait, int(first + self.window - time.time()) + 1)
        return max(wait, 0)

    async def failed(self, email: str, ip: str) -> None:
        now = time.time()
        for key in self._keys(email, ip):
            count, first = await self._count(key)
            if count == 0 or now - first > self.window:
                count, first = 0, now
            await self.store.set(key, f"{count + 1}:{first}", expires_in=self.window)

    async def succeeded(self, email: str) -> None:
        await self.store.delete(self._keys(email, "")[0])


class RateLimiter:
    """Fixed-window request counters per client address and path group.

    In Redis (INCR + EXPIRE, one round trip) when REDIS_URL is set, so every app process shares
    the count; in process memory otherwise. A limiter that cannot reach Redis lets requests through
    rather than refuse a webhook.
    """

    def __init__(
        self,
        rules: list[tuple[str, int]],
        *,
        redis_url: str | None,
        namespace: str = "leadboard",
        window: int = 60,
    ):
        self.rules = sorted(rules, key=lambda r: -len(r[0]))  # longest prefix first
        self.window = window
        self.namespace = namespace
        self._memory: dict[str, int] = {}
        self._memory_window = 0
        self._redis = None
        if redis_url:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)

    def limit_for(self, path: str) -> tuple[str, int] | None:
        for prefix, limit in self.rules:
            if path.startswith(prefix):
                return prefix, limit
        return None

    async def hit(self, group: str, client: str) -> tuple[bool, int]:
        """(allowed, seconds until the window resets)."""
        now = int(time.time())
        window_start = now - now % self.window
        reset = window_start + self.window - now
        limit = next(limit for prefix, limit in self.rules if prefix == group)
        key = f"{self.namespace}:rl:{group}:{client}:{window_start}"
        if self._redis is not None:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, self.window + 1)
                    count, _ = await pipe.execute()
                return int(count) <= limit, reset
            except Exception:  # Redis down: never refuse traffic because the limiter is blind
                return True, reset
        if window_start != self._memory_window:
            self._memory.clear()
            self._memory_window = window_start
        self._memory[key] = self._memory.get(key, 0) + 1
        return self._memory[key] <= limit, reset

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def rate_limit_middleware(limiter: RateLimiter) -> Callable[[ASGIApp], ASGIApp]:
    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            rule = limiter.limit_for(scope.get("path", "")) if scope["type"] == "http" else None
            if rule is None or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
                await app(scope, receive, send)
                return
            client = (scope.get("client") or ("unknown", 0))[0]
            allowed, reset = await limiter.hit(rule[0], client)
            if allowed:
                await app(scope, receive, send)
                return
            body = b'{"error":"too many requests; slow down"}'
            start: Message = {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(reset).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return middleware

    return wrap
