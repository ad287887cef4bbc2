"""What one small write-path statement costs on PostgreSQL, by the way it is sent.

    .venv/bin/python bench/pg_statement.py [--calls 2000]

On a fresh PostgreSQL database (the local server), the lead lookup of the webhook path
(`CONTACT_BY_PHONE`, a SELECT ... FOR UPDATE by primary key) runs `--calls` times each way, inside
one connection's `run_sync` as the writer runs it, under uvloop as the server runs:
  SQLAlchemy   Connection.execute of the prebuilt Core statement;
  DBAPI cursor the compiled SQL on asyncpg's DBAPI cursor (what app/prepared.py does);
  asyncpg      a prepared statement awaited straight from the greenlet (the floor).
Prints microseconds per call (median of --repeat rounds) and each way's ratio to SQLAlchemy's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import uvloop
from _common import PostgresUnavailable, command_line, postgres_database
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import await_only

from app.leads import statements as st
from app.migrate import upgrade


def _per_call(run: Any, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - started) / calls


def _measure(conn: Connection, calls: int) -> dict[str, float]:
    params = {"ws": 1, "key": "+6281234567"}
    statement = st.CONTACT_BY_PHONE.statement
    sql = statement.compile(dialect=conn.dialect).string
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    raw = conn.connection.dbapi_connection._connection  # type: ignore[union-attr]
    prepared = await_only(raw.prepare(sql))

    def on_cursor() -> None:
        cursor.execute(sql, (1, "+6281234567"))
        cursor.fetchall()

    ways = {
        "SQLAlchemy": lambda: conn.execute(statement, params).first(),
        "DBAPI cursor": on_cursor,
        "asyncpg": lambda: await_only(prepared.fetch(1, "+6281234567")),
    }
    for run in ways.values():  # warm: statement caches, prepared statements
        _per_call(run, 100)
    return {name: _per_call(run, calls) for name, run in ways.items()}


async def _run(url: str, calls: int, repeat: int) -> dict[str, list[float]]:
    engine = create_async_engine(url)
    rounds: dict[str, list[float]] = {}
    try:
        async with engine.connect() as conn:
            for _ in range(repeat):
                for name, seconds in (await conn.run_sync(_measure, calls)).items():
                    rounds.setdefault(name, []).append(seconds)
    finally:
        await engine.dispose()
    return rounds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    try:
        with postgres_database() as url:
            upgrade(url)
            rounds = uvloop.run(_run(url, args.calls, args.repeat))
    except PostgresUnavailable as exc:
        print(f"PostgreSQL leg skipped: {exc}")
        return 1
    print(f"command: {command_line()}")
    base = statistics.median(rounds["SQLAlchemy"])
    for name, values in rounds.items():
        us = statistics.median(values) * 1e6
        print(f"{name:13s} {us:6.0f} us per statement  x{statistics.median(values) / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
