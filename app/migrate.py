"""Apply Alembic migrations (`leadboard migrate`; `make run` and the tests call it too)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from app.db import _sqlite_path
from app.settings import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Synchronous: call it outside a running event loop (or in a thread)."""
    path = _sqlite_path(database_url) if database_url.startswith("sqlite") else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)
    analyze(database_url)


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
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    asyncio.run(run())
