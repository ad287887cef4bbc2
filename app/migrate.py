"""Apply Alembic migrations (`leadboard migrate`; `make run` and the tests call it too)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from typing import TYPE_CHECKING

from sqlalchemy import create_engine

from app.db import _sqlite_path
from app.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config  # imported when needed: ~0.3 s of every start-up

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


_REVISION = re.compile(r'^revision: str = "([^"]+)"', re.MULTILINE)
_DOWN = re.compile(r'^down_revision: [^=]+= "([^"]+)"', re.MULTILINE)


def head_revision() -> str:
    """The newest migration's id, read from the files without loading Alembic (its script
    directory costs ~0.4 s of every start-up; tests/test_migrate.py checks both agree)."""
    revisions, parents = set(), set()
    for path in (PROJECT_ROOT / "migrations" / "versions").glob("*.py"):
        text = path.read_text()
        revisions.update(_REVISION.findall(text))
        parents.update(_DOWN.findall(text))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def current_revision(database_url: str) -> str | None:
    """The revision the database is at (None: never migrated, or unreadable)."""
    try:
        if database_url.startswith("sqlite"):
            path = _sqlite_path(database_url)
            if path is None or not path.exists():
                return None
            with contextlib.closing(sqlite3.connect(path)) as conn:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return str(row[0]) if row else None
        return asyncio.run(_pg_revision(database_url))
    except Exception:  # no table yet, no database yet: let Alembic say what is wrong
        return None


async def _pg_revision(database_url: str) -> str | None:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        value = await conn.fetchval("SELECT version_num FROM alembic_version")
        return str(value) if value is not None else None
    finally:
        await conn.close()


def upgrade(database_url: str, revision: str = "head") -> bool:
    """Synchronous: call it outside a running event loop (or in a thread). Returns whether it
    migrated. A database already at the newest revision costs one query: `serve` starts fast
    after a restart, and the planner's statistics are refreshed only after a migration."""
    path = _sqlite_path(database_url) if database_url.startswith("sqlite") else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    wanted = head_revision() if revision == "head" else revision
    if current_revision(database_url) == wanted:
        return False
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)
    analyze(database_url)
    return True


def analyze(database_url: str) -> None:
    """Refresh the planner's statistics: without them a filter that matches nothing can walk a
    whole sort index instead of using its own (seconds on 100,000 leads)."""
    if not database_url.startswith("sqlite"):
        _analyze_postgres(database_url)
        return
    engine = create_engine(database_url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()


def _analyze_postgres(database_url: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    asyncio.run(run())
