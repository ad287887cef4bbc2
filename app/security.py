"""Security headers on every response, a sign-in throttle, and request rate limits.

Redis only shares the throttle's and the limits' counts between processes: when it is down, both
keep counting in this process's memory (and try Redis again every REDIS_RETRY_SECONDS), so
sign-in and webhooks keep working.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")

REDIS_RETRY_SECONDS = 5.0  # after a failure, Redis is left alone this long

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
    """Failed sign-ins per email and per client address, in a shared store (Redis when set,
    through a FallbackStore: process memory while Redis is down).

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


class RedisOutage:
    """Whether to try Redis now: after a failure it is left alone for `retry_seconds`; losing it
    is logged once, its return once. FallbackStore and RateLimiter share this rule."""

    def __init__(self, name: str, retry_seconds: float = REDIS_RETRY_SECONDS) -> None:
        self.name = name
        self.retry_seconds = retry_seconds
        self.down = False
        self._until = 0.0

    def worth_trying(self) -> bool:
        return time.monotonic() >= self._until

    def failed(self, exc: BaseException, fallback: str) -> None:
        if not self.down:
            log.warning("%s: Redis unreachable, %s: %s", self.name, fallback, exc)
        self.down = True
        self._until = time.monotonic() + self.retry_seconds

    def succeeded(self) -> None:
        if self.down:
            log.info("%s: Redis reachable again", self.name)
            self.down = False


class FallbackStore(Store):
    """A store in Redis that keeps answering when Redis does not.

    An operation that meets a Redis or connection error goes to a process-local store instead
    (a MemoryStore unless given), and so does every operation for `retry_seconds` after it; then
    Redis is tried again. Losing Redis is logged once, its return once. Values written while it
    was down stay in this process's memory (for the throttle: its counts start afresh in Redis).
    """

    def __init__(
        self,
        primary: Store,
        fallback: Store | None = None,
        *,
        name: str = "store",
        retry_seconds: float = REDIS_RETRY_SECONDS,
    ) -> None:
        self.primary = primary
        self.fallback = fallback if fallback is not None else MemoryStore()
        self.outage = RedisOutage(name, retry_seconds)

    @property
    def degraded(self) -> bool:
        return self.outage.down

    async def _run(self, op: Callable[[Store], Awaitable[T]]) -> T:
        if self.outage.worth_trying():
            try:
                result = await op(self.primary)
            except (RedisError, OSError) as exc:
                self.outage.failed(exc, "using process memory")
            else:
                self.outage.succeeded()
                return result
        return await op(self.fallback)

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        await self._run(lambda store: store.set(key, value, expires_in))

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        return await self._run(lambda store: store.get(key, renew_for))

    async def delete(self, key: str) -> None:
        await self._run(lambda store: store.delete(key))

    async def delete_all(self) -> None:
        await self._run(lambda store: store.delete_all())

    async def exists(self, key: str) -> bool:
        return await self._run(lambda store: store.exists(key))

    async def expires_in(self, key: str) -> int | None:
        return await self._run(lambda store: store.expires_in(key))

    async def __aenter__(self) -> None:
        await self.primary.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self.primary.__aexit__(*exc)  # type: ignore[arg-type]


class RateLimiter:
    """Fixed-window request counters per client address and path group.

    In Redis (INCR + EXPIRE, one round trip) when REDIS_URL is set, so every app process shares
    the count; in process memory otherwise. A limiter that cannot reach Redis never refuses a
    request for that: it counts in process memory (never more than the shared count, so nothing
    the shared limit would let through is refused) and tries Redis again after
    REDIS_RETRY_SECONDS, so a Redis that is down costs one connection attempt per interval, not
    one per request.
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
        self._outage = RedisOutage("rate limits")
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
        if self._redis is not None and self._outage.worth_trying():
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, self.window + 1)
                    count, _ = await pipe.execute()
            except Exception as exc:  # Redis down: count here; never refuse traffic for that
                self._outage.failed(exc, "counting in memory")
            else:
                self._outage.succeeded()
                return int(count) <= limit, reset
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
