"""Prepared statements: run on the DBAPI cursor, answering exactly what SQLAlchemy would.

Each test builds a small table inline and runs the same statement both ways (Prepared, and plain
Connection.execute) on a real database: a SQLite file through the writer's driver (pysqlite), the
app's async driver (aiosqlite, as the retry job uses it), and PostgreSQL (asyncpg's cursor).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import UTCDateTime
from app.prepared import Prepared, run_sql

metadata = MetaData()
things = Table(
    "prepared_things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(40), nullable=False, unique=True),
    Column("hot", Boolean, nullable=False, default=False),
    Column("kind", String(20), nullable=False, default="plain"),
    Column("seen", Integer, nullable=False, default=0),
    Column("at", UTCDateTime, nullable=True),
    Column("data", JSON, nullable=True),
)
stamped = Table(
    "prepared_stamped",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(40), nullable=False),
    Column("made", String(40), nullable=False, default=lambda: "made-by-python"),
)

INSERT = Prepared(
    insert(things)
    .values({c: bindparam(c) for c in ("name", "at", "data")})
    .returning(things.c.id, things.c.hot, things.c.kind)
)
INSERT_PLAIN = Prepared(insert(things).values(name=bindparam("name")))
BY_NAME = Prepared(
    select(things.c.id, things.c.name, things.c.hot, things.c.at, things.c.data).where(
        things.c.name == bindparam("name")
    )
)
BUMP = Prepared(
    update(things).where(things.c.kind == bindparam("k")).values(seen=things.c.seen + 1, hot=True)
)
AT = datetime(2026, 11, 22, 3, 4, 5, 678901, tzinfo=UTC)

Runner = Callable[[Callable[[Connection], Any]], Any]


@pytest.fixture(params=["pysqlite", "aiosqlite", "postgres"])
def driver_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "pysqlite":
        return f"sqlite:///{tmp_path / 'p.db'}"
    if request.param == "aiosqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    return str(request.getfixturevalue("postgres_server_url"))


@pytest.fixture
async def run(driver_url: str) -> AsyncIterator[Runner]:
    """Run fn(sync connection) in a committed transaction, on each driver the app uses."""
    if driver_url.startswith("sqlite:"):
        engine = create_sync_engine(driver_url, hide_parameters=True)
        metadata.create_all(engine)

        async def on_pysqlite(fn: Callable[[Connection], Any]) -> Any:
            with engine.begin() as conn:
                return fn(conn)

        yield on_pysqlite
        engine.dispose()
        return
    async_engine = create_async_engine(driver_url, hide_parameters=True)
    async with async_engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)

    async def on_async(fn: Callable[[Connection], Any]) -> Any:
        async with async_engine.begin() as conn:
            return await conn.run_sync(fn)

    yield on_async
    async with async_engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    await async_engine.dispose()


async def test_insert_returning_and_select_match_sqlalchemy(run: Runner) -> None:
    def work(conn: Connection) -> tuple[Any, Any, Any]:
        created = INSERT.first(conn, {"name": "ani", "at": AT, "data": {"pain": ["stok"]}})
        fast = BY_NAME.first(conn, {"name": "ani"})
        slow = conn.execute(BY_NAME.statement, {"name": "ani"}).one()
        return created, fast, slow

    created, fast, slow = await run(work)
    assert created.id == fast.id
    # Column defaults SQLAlchemy would fill in are filled in: hot False, kind "plain".
    assert (created.hot, created.kind) == (False, "plain")
    assert tuple(fast) == tuple(slow)
    assert fast.at == AT and fast.at.tzinfo is not None  # UTCDateTime's processors ran
    assert fast.hot is False  # Boolean, not SQLite's 0
    assert fast.data == {"pain": ["stok"]}  # JSON decoded
    assert fast._mapping == dict(slow._mapping)


async def test_missing_row_is_none_and_run_many_runs_each(run: Runner) -> None:
    def work(conn: Connection) -> tuple[Any, list[Any]]:
        INSERT_PLAIN.run_many(conn, [{"name": "a"}, {"name": "b"}, {"name": "c"}])
        missing = BY_NAME.first(conn, {"name": "nobody"})
        everyone = list(conn.execute(select(things.c.name).order_by(things.c.name)))
        return missing, everyone

    missing, everyone = await run(work)
    assert missing is None
    assert [r.name for r in everyone] == ["a", "b", "c"]


async def test_update_with_literal_values_counts_rows(run: Runner) -> None:
    def work(conn: Connection) -> tuple[int, int, list[Any]]:
        INSERT_PLAIN.run_many(conn, [{"name": "a"}, {"name": "b"}])
        bumped = BUMP.run(conn, {"k": "plain"})
        none = BUMP.run(conn, {"k": "other"})
        rows = list(conn.execute(select(things.c.seen, things.c.hot)))
        return bumped, none, rows

    bumped, none, rows = await run(work)
    assert (bumped, none) == (2, 0)
    assert [tuple(r) for r in rows] == [(1, True), (1, True)]


async def test_python_callable_defaults_still_apply(run: Runner) -> None:
    statement = Prepared(insert(stamped).values(name=bindparam("name")).returning(stamped.c.made))

    row = await run(lambda conn: statement.first(conn, {"name": "x"}))

    assert row.made == "made-by-python"


async def test_a_constraint_violation_is_sqlalchemys_integrity_error_without_values(
    run: Runner,
) -> None:
    def work(conn: Connection) -> None:
        INSERT_PLAIN.run(conn, {"name": "secret-body-text"})
        INSERT_PLAIN.run(conn, {"name": "secret-body-text"})

    with pytest.raises(IntegrityError) as caught:
        await run(work)
    assert isinstance(caught.value, SQLAlchemyError)
    assert "secret-body-text" not in str(caught.value)


async def test_run_sql_savepoint_rolls_back_only_its_part(run: Runner) -> None:
    def work(conn: Connection) -> list[str]:
        INSERT_PLAIN.run(conn, {"name": "kept"})
        run_sql(conn, "SAVEPOINT part")
        INSERT_PLAIN.run(conn, {"name": "dropped"})
        run_sql(conn, "ROLLBACK TO SAVEPOINT part")
        run_sql(conn, "RELEASE SAVEPOINT part")
        return [r.name for r in conn.execute(select(things.c.name))]

    assert await run(work) == ["kept"]


def test_missing_parameter_is_a_clear_error(tmp_path: Path) -> None:
    engine = create_sync_engine(f"sqlite:///{tmp_path / 'p.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn, pytest.raises(KeyError, match="name"):
        BY_NAME.first(conn, {})
    engine.dispose()


def test_datetimes_are_stored_as_sqlalchemy_stores_them(tmp_path: Path) -> None:
    """Rows written by the fast path are read back by the ORM's queries: same text format."""
    engine = create_sync_engine(f"sqlite:///{tmp_path / 'p.db'}")
    metadata.create_all(engine)
    jakarta = AT.astimezone(timezone(timedelta(hours=7)))  # converted to UTC before storing
    data = {"name": "Bu Sari", "pain_points": ["stok"]}
    with engine.begin() as conn:
        INSERT.first(conn, {"name": "fast", "at": jakarta, "data": data})
        conn.execute(INSERT.statement, {"name": "slow", "at": jakarta, "data": data})
        stored = {
            r.name: (r.at, json.loads(r.data))
            for r in conn.exec_driver_sql("SELECT name, at, data FROM prepared_things")
        }
    engine.dispose()
    assert stored["fast"] == stored["slow"] == ("2026-11-22 03:04:05.678901", data)
