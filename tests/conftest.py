"""Real components for the tests: a Redis server, a SQLite file, PostgreSQL when one answers.

PostgreSQL: TEST_POSTGRES_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres); each
run makes and drops its own database. Where none answers, only the PostgreSQL leg is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.db import Database
from app.migrate import upgrade
from app.settings import Settings
from app.workspaces.models import Workspace
from app.workspaces.services import create_workspace

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOKS = FIXTURES / "webhooks"
MANIFEST = json.loads((WEBHOOKS / "manifest.json").read_text())
KAPSO_SECRET = MANIFEST["kapso_test_secret"]
META_SECRET = MANIFEST["meta_test_app_secret"]
PHONE_NUMBER_ID = "109876543210987"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fixture_delivery(name: str) -> tuple[bytes, dict[str, str]]:
    """A recorded delivery: exact bytes and the headers it came with."""
    entry = next(f for f in MANIFEST["files"] if f["file"].endswith(name))
    return (WEBHOOKS / entry["file"]).read_bytes(), dict(entry["headers"])


# -- Redis ---------------------------------------------------------------------------------------
def start_redis(port: int) -> subprocess.Popen[bytes]:
    """Start redis-server on this port (nothing kept on disk) and wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("redis-server did not start")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server on a free port (never the machine's shared one)."""
    port = free_port()
    proc = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def restartable_redis() -> Iterator[tuple[int, list[subprocess.Popen[bytes]], object]]:
    """A private redis-server a test may kill and start again on the same port:
    (port, the processes started so far, start())."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(start_redis(port))

    start()
    yield port, procs, start
    for proc in procs:
        proc.kill()
        proc.wait()


# -- Databases -----------------------------------------------------------------------------------
def _postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG)


async def _pg_execute(admin_url: str, sql: str) -> None:
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    admin = _postgres_admin_url()
    name = f"leadboard_test_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_pg_execute(admin, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach PostgreSQL means: skip this leg only
        pytest.skip(
            f"PostgreSQL not reachable at {admin} ({type(exc).__name__}): PostgreSQL leg skipped"
        )
    base = admin.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a real SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'leadboard.db'}"
        upgrade(url)
        yield url
        return
    server = request.getfixturevalue("postgres_server_url")
    asyncio.run(_pg_reset(server))
    upgrade(server)
    yield server


async def _pg_reset(url: str) -> None:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'leadboard.db'}"
    upgrade(url)
    return url


# -- App -----------------------------------------------------------------------------------------
def make_settings(database_url: str, redis_url: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        database_url=database_url,
        redis_url=redis_url,
        redis_namespace=f"test-{uuid.uuid4().hex[:8]}",  # each app its own sessions and counters
        demo_workspace=False,
        sse_ping_seconds=1.0,
        freeze_heap=False,  # one process builds hundreds of apps: frozen, their garbage stays
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def add_workspace(
    database_url: str, name: str = "Test Team", phone_number_id: str = PHONE_NUMBER_ID, **kw: str
) -> Workspace:
    db = Database(database_url)
    try:
        async with db.write() as session:
            created = await create_workspace(
                session,
                name=name,
                kapso_phone_number_id=phone_number_id,
                webhook_secret=kw.get("webhook_secret", KAPSO_SECRET),
                meta_app_secret=kw.get("meta_app_secret", META_SECRET),
                meta_verify_token=kw.get("meta_verify_token", "rahasia-verify-token-dashboard"),
                sarah_key=kw.get("sarah_key"),
            )
            return created.workspace
    finally:
        await db.dispose()


@pytest.fixture
async def workspace(database_url: str) -> Workspace:
    return await add_workspace(database_url)


@pytest.fixture
async def app(database_url: str, redis_url: str, workspace: Workspace) -> Litestar:
    return create_app(make_settings(database_url, redis_url))


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


# -- people ----------------------------------------------------------------------------------------
PASSWORD = "correct horse battery"


async def add_user(
    database_url: str, workspace: Workspace, email: str = "agent@example.com", role: str = "agent"
) -> None:
    from app.accounts.services import create_user

    db = Database(database_url)
    try:
        async with db.write() as session:
            await create_user(
                session, email=email, password=PASSWORD, workspace=workspace, role=role
            )
    finally:
        await db.dispose()


async def sign_in(client: AsyncTestClient[Litestar], email: str, password: str = PASSWORD) -> int:
    """Sign in like a browser: the form page sets the CSRF cookie, the form posts it back."""
    await client.get("/login")
    token = client.cookies.get("csrftoken", "")
    response = await client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    return response.status_code


@pytest.fixture
async def agent(client: AsyncTestClient[Litestar], database_url: str, workspace: Workspace) -> str:
    """The test client, signed in as an agent of the workspace; returns the email."""
    await add_user(database_url, workspace, "agent@example.com", "agent")
    assert await sign_in(client, "agent@example.com") == 303
    return "agent@example.com"
