"""Read-only counts from a benchmark server's database: a SQLite file or a PostgreSQL URL.

The throughput benchmarks judge a run by what the database shows afterwards (rows processed,
states saved, mismatches), not only by what the server answered; these read it without taking
a write lock, so they can run while the server is still busy. A database is named by a `Path`
(a SQLite file) or a URL (`sqlite+aiosqlite:///...` or `postgresql+asyncpg://...`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

DatabaseRef = Path | str
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on a loop of its own, in a thread: callable from code that is
    itself inside a running loop (a benchmark's async part)."""
    with ThreadPoolExecutor(1, thread_name_prefix="bench-db") as pool:
        return pool.submit(asyncio.run, coro).result()


def _sqlite_path(db: DatabaseRef) -> Path | None:
    if isinstance(db, Path):
        return db
    return Path(db.split(":///", 1)[1]) if db.startswith("sqlite") else None


def rows(db: DatabaseRef, sql: str) -> list[tuple[Any, ...]]:
    """Every row of one query (SQL both databases understand)."""
    path = _sqlite_path(db)
    if path is not None:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()

    async def fetch() -> list[tuple[Any, ...]]:
        import asyncpg

        assert isinstance(db, str)
        conn = await asyncpg.connect(db.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return _run(fetch())


def db_counts(db: DatabaseRef, counts: dict[str, str]) -> dict[str, int]:
    """Run each named `SELECT count(*) ...` once."""
    return {name: int(rows(db, sql)[0][0]) for name, sql in counts.items()}


def settle(db: DatabaseRef, counts: dict[str, str], timeout: float = 15.0) -> dict[str, int]:
    """Counts once in-flight requests have drained (two equal readings 0.5 s apart)."""
    deadline = time.monotonic() + timeout
    last = db_counts(db, counts)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = db_counts(db, counts)
        if now == last:
            return now
        last = now
    return last


def analyze(db: DatabaseRef) -> None:
    """ANALYZE after a warm-up, as autovacuum (or SQLite's optimize) does within a minute of a
    table growing: a measured window is the steady state, not a fresh database's first minute
    (before it, PostgreSQL planned the lead lookup on a stale, empty-table estimate and scanned
    an index of every lead, 0.5 ms a delivery and growing)."""
    path = _sqlite_path(db)
    if path is not None:
        with sqlite3.connect(path, timeout=30) as conn:
            conn.execute("ANALYZE")
        return

    async def run() -> None:
        import asyncpg

        assert isinstance(db, str)
        conn = await asyncpg.connect(db.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    _run(run())
