"""Sessions in the database (both databases), written only when they change; pages, the event
stream and sign-in with a Redis that is down; the throttle and rate limits without Redis."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import httpx
import pytest
import uvicorn
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import insert, select

from app.asgi import create_app
from app.db import Database, utcnow
from app.housekeeping import run_housekeeping
from app.security import FallbackStore, RateLimiter
from app.sessions import (
    DatabaseSessionStore,
    QuietSessionStore,
    SessionRow,
    purge_expired_sessions,
    sessions,
    storage_key,
)
from app.workspaces.models import Workspace
from tests import helpers
from tests.conftest import (
    PASSWORD,
    add_user,
    add_workspace,
    free_port,
    make_settings,
    sign_in,
    start_redis,
)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        self.writes += 1
        await super().set(key, value, expires_in)


async def test_unchanged_sessions_are_not_rewritten_until_refresh_is_due() -> None:
    inner = CountingStore()
    store = QuietSessionStore(inner, refresh=300)
    await store.set("s1", b'{"uid":1}', expires_in=60)
    await store.set("s1", b'{"uid":1}', expires_in=60)  # the next request, nothing changed
    assert inner.writes == 1 and await store.get("s1") == b'{"uid":1}'
    await store.set("s1", b'{"uid":1,"ws":2}', expires_in=60)  # changed: written
    await store.set("s2", b'{"uid":1,"ws":2}', expires_in=60)  # another session
    assert inner.writes == 3 and await store.get("s1") == b'{"uid":1,"ws":2}'
    await store.delete("s1")  # sign-out
    assert await store.get("s1") is None and not await store.exists("s1")
    await store.set("s1", b'{"uid":1,"ws":2}', expires_in=60)  # signed in again: written
    assert inner.writes == 4 and await store.get("s1") is not None

    due = QuietSessionStore(inner, refresh=0)  # refresh due at once: every set writes
    await due.set("s3", b"x", expires_in=60)
    await due.set("s3", b"x", expires_in=60)
    assert inner.writes == 6 and await due.expires_in("s3") is not None


HTML = {"Accept": "text/html"}


# -- the database store --------------------------------------------------------------------------
async def put_row(db: Database, key: str, value: bytes, expires_at: datetime | None) -> None:
    """A session row as an earlier process (or an earlier hour) left it."""
    await db.run_write(
        lambda conn: conn.execute(
            insert(sessions).values(key=storage_key(key), value=value, expires_at=expires_at)
        )
    )


async def test_database_store_keeps_the_store_contract(db: Database) -> None:
    store = DatabaseSessionStore(db)
    assert await store.get("missing") is None and not await store.exists("missing")
    assert await store.expires_in("missing") is None

    await store.set("s1", b'{"uid":1}', expires_in=60)
    assert await store.get("s1") == b'{"uid":1}' and await store.exists("s1")
    assert 58 <= (await store.expires_in("s1") or 0) <= 60
    await store.set("s1", '{"uid":2}', expires_in=timedelta(hours=1))  # upsert, str accepted
    assert await store.get("s1") == b'{"uid":2}'
    assert 3598 <= (await store.expires_in("s1") or 0) <= 3600

    # renew_for slides the expiry of a value that has one, and only of such a value.
    await store.set("short", b"x", expires_in=30)
    assert await store.get("short", renew_for=7200) == b"x"
    assert 7198 <= (await store.expires_in("short") or 0) <= 7200
    await store.set("forever", b"y")
    assert await store.expires_in("forever") == -1
    assert await store.get("forever", renew_for=60) == b"y"
    assert await store.expires_in("forever") == -1

    # Expired is gone, for every question; renewing does not bring it back.
    await put_row(db, "old", b"z", utcnow() - timedelta(seconds=1))
    assert await store.get("old") is None and await store.get("old", renew_for=60) is None
    assert not await store.exists("old") and await store.expires_in("old") is None
    await store.set("old", b"again", expires_in=60)  # the key can be used again at once
    assert await store.get("old") == b"again"

    crafted = "x" * 4000  # a cookie of any length is a key like any other
    await store.set(crafted, b"c", expires_in=60)
    assert await store.get(crafted) == b"c" and await store.get("x" * 3999) is None

    await store.delete("s1")
    await store.delete("s1")  # deleting what is not there is no error
    assert await store.get("s1") is None and await store.get("short") == b"x"
    await store.delete_all()
    for key in ("short", "forever", "old", crafted):
        assert await store.get(key) is None
    assert await helpers.count(db, SessionRow) == 0


async def test_quiet_store_over_the_database(db: Database) -> None:
    store = QuietSessionStore(DatabaseSessionStore(db))
    await store.set("s", b'{"uid":1}', expires_in=60)
    await store.set("s", b'{"uid":1}', expires_in=60)
    assert await store.get("s") == b'{"uid":1}' and await store.exists("s")
    await store.delete("s")
    assert await store.get("s") is None


async def test_expired_sessions_are_purged_in_batches(db: Database) -> None:
    now = utcnow()
    for i in range(5):
        await put_row(db, f"expired-{i}", b"x", now - timedelta(minutes=i + 1))
    await put_row(db, "live", b"x", now + timedelta(days=1))
    await put_row(db, "forever", b"x", None)

    assert await purge_expired_sessions(db, now=now, batch=2, max_batches=1) == 2  # bounded
    assert await purge_expired_sessions(db, now=now, batch=2) == 3  # 2 + 1, then done
    assert await purge_expired_sessions(db, now=now) == 0
    async with db.session() as session:
        keys = set((await session.execute(select(sessions.c.key))).scalars())
    assert keys == {storage_key("live"), storage_key("forever")}


async def test_housekeeping_purges_expired_sessions(db: Database) -> None:
    now = utcnow()
    await put_row(db, "expired", b"x", now - timedelta(seconds=5))
    await put_row(db, "live", b"x", now + timedelta(days=1))
    report = await run_housekeeping(db, now=now)
    assert report.sessions_deleted == 1
    assert await DatabaseSessionStore(db).get("live") == b"x"


# -- pages and sign-in without Redis -------------------------------------------------------------
@pytest.fixture
def dead_redis_url() -> str:
    """REDIS_URL pointing at a port nothing listens on: a Redis that is down."""
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_pages_and_sign_in_work_while_redis_is_down(
    database_url: str, workspace: Workspace, dead_redis_url: str
) -> None:
    await add_user(database_url, workspace, "agent@example.com")
    app = create_app(make_settings(database_url, dead_redis_url))
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/login")).status_code == 200
        assert await sign_in(client, "agent@example.com", "wrong password") == 401
        assert await sign_in(client, "agent@example.com") == 303
        board = await client.get("/")
        assert board.status_code == 200 and "Test Team" in board.text
        assert (await client.get("/?ws=test-team&cursor=")).status_code == 200
        assert (await client.get("/healthz")).json()["broker_healthy"] is False
        # The throttle still counts (in this process's memory) while Redis is away.
        for _ in range(5):
            assert await sign_in(client, "other@example.com", "nope") == 401
        assert await sign_in(client, "other@example.com", "nope") == 429
        logout = await client.post(
            "/logout",
            data={"_csrf_token": client.cookies.get("csrftoken", "")},
            follow_redirects=False,
        )
        assert logout.status_code == 303
        assert (await client.get("/", headers=HTML, follow_redirects=False)).status_code in (
            302,
            303,
        )


async def test_the_event_stream_opens_while_redis_is_down(
    sqlite_url: str, dead_redis_url: str
) -> None:
    """Over a real server: an endless stream hangs the in-process test client."""
    workspace = await add_workspace(sqlite_url)
    await add_user(sqlite_url, workspace, "agent@example.com")
    port = free_port()
    app = create_app(make_settings(sqlite_url, dead_redis_url))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10
        ) as client:
            await client.get("/login")
            signed_in = await client.post(
                "/login",
                data={
                    "email": "agent@example.com",
                    "password": PASSWORD,
                    "_csrf_token": client.cookies.get("csrftoken", ""),
                },
            )
            assert signed_in.status_code == 303
            board = await client.get("/")
            assert board.status_code == 200 and "Test Team" in board.text
            async with client.stream("GET", "/events") as events:
                assert events.status_code == 200
                assert events.headers["content-type"].startswith("text/event-stream")
                first = await asyncio.wait_for(anext(events.aiter_text()), 5)
                assert ": live" in first
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


async def test_sessions_survive_a_restart_and_are_shared_between_processes(
    database_url: str, workspace: Workspace, redis_url: str
) -> None:
    await add_user(database_url, workspace, "agent@example.com")
    first, second = (create_app(make_settings(database_url, redis_url)) for _ in range(2))
    async with AsyncTestClient(app=first) as one:
        assert await sign_in(one, "agent@example.com") == 303
        assert (await one.get("/")).status_code == 200
        cookies = dict(one.cookies)
    db = Database(database_url)
    try:  # the table holds a digest of the session id, never the cookie itself
        async with db.session() as session:
            keys = set((await session.execute(select(sessions.c.key))).scalars())
    finally:
        await db.dispose()
    assert keys == {storage_key(cookies["lb_session"])}
    # `first` has shut down; `second` (another namespace, another process) knows the sign-in.
    async with AsyncTestClient(app=second) as two:
        two.cookies.update(cookies)
        assert (await two.get("/")).status_code == 200
        logout = await two.post(
            "/logout",
            data={"_csrf_token": two.cookies.get("csrftoken", "")},
            follow_redirects=False,
        )
        assert logout.status_code == 303
    async with AsyncTestClient(app=first) as again:  # signed out there is signed out here
        again.cookies.update(cookies)
        assert (await again.get("/", headers=HTML, follow_redirects=False)).status_code in (
            302,
            303,
        )


# -- Redis as an accelerator only: the throttle and the rate limits --------------------------------
async def test_fallback_store_uses_memory_while_redis_is_down_and_redis_once_back() -> None:
    port = free_port()
    redis = RedisStore(
        Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1, socket_timeout=1),
        namespace="fallback-test",
        handle_client_shutdown=True,
    )
    store = FallbackStore(redis, retry_seconds=0)
    await store.set("k", b"in memory", expires_in=60)
    assert store.degraded and await store.get("k") == b"in memory"
    assert await store.exists("k") and await store.expires_in("k") is not None
    proc = start_redis(port)
    try:
        await store.set("k", b"in redis", expires_in=60)
        assert not store.degraded and await redis.get("k") == b"in redis"
        assert await store.get("k") == b"in redis"
        await store.delete("k")
        assert await redis.get("k") is None
    finally:
        await store.__aexit__(None, None, None)
        proc.terminate()
        proc.wait(timeout=10)


async def test_fallback_store_waits_before_trying_redis_again(dead_redis_url: str) -> None:
    store = FallbackStore(
        RedisStore(Redis.from_url(dead_redis_url, socket_connect_timeout=1), namespace="t"),
        retry_seconds=3600,
    )
    await store.set("k", b"v")
    started = time.monotonic()
    for _ in range(50):  # none of these goes near Redis
        assert await store.get("k") == b"v"
    assert time.monotonic() - started < 0.5
    await store.primary.__aexit__(None, None, None)


async def test_rate_limiter_never_fails_and_counts_in_memory_while_redis_is_down(
    dead_redis_url: str,
) -> None:
    limiter = RateLimiter([("/login", 3)], redis_url=dead_redis_url, namespace="t")
    try:
        answers = [(await limiter.hit("/login", "10.0.0.1"))[0] for _ in range(4)]
    finally:
        await limiter.close()
    assert answers == [True, True, True, False]
