"""The PostgreSQL writer: group commit, one failure fails alone, lock order, reconnects.

Runs on a real PostgreSQL (the session's test database) with a small table built inline; every
figure a test checks is read back from the server (transaction ids, rows committed), not from
the writer's own bookkeeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.pg_writer import PostgresWriter

metadata = MetaData()
rows = Table(
    "pg_writer_rows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(40), nullable=False, unique=True),
)


@pytest.fixture
async def engine(postgres_server_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(postgres_server_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    yield engine
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    await engine.dispose()


def insert_named(name: str) -> Any:
    def write(conn: Connection) -> int:
        conn.execute(insert(rows).values(name=name))
        return int(conn.execute(text("SELECT txid_current()")).scalar_one())

    return write


async def committed_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(rows.c.name))).scalars())


async def test_concurrent_writes_share_commits_and_are_committed_when_answered(
    engine: AsyncEngine,
) -> None:
    writer = PostgresWriter(engine, lanes=2)
    try:
        txids = await asyncio.gather(*(writer.submit(insert_named(f"n{i}")) for i in range(60)))
        assert await committed_names(engine) == {f"n{i}" for i in range(60)}
        # 60 writes in far fewer transactions: the lanes took what was waiting, together.
        assert len(set(txids)) < 20
    finally:
        await writer.close()


async def test_a_failing_write_fails_alone_and_its_rows_are_undone(engine: AsyncEngine) -> None:
    def half_then_fail(conn: Connection) -> None:
        conn.execute(insert(rows).values(name="doomed"))
        raise ValueError("this write fails after writing")

    writer = PostgresWriter(engine, lanes=1)
    try:
        calls = [writer.submit(insert_named(f"ok{i}")) for i in range(10)]
        calls.insert(5, writer.submit(half_then_fail))
        results = await asyncio.gather(*calls, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 1 and isinstance(failures[0], ValueError)
        assert await committed_names(engine) == {f"ok{i}" for i in range(10)}
        # A duplicate key (the database's own error) fails only its write too.
        again = await asyncio.gather(
            writer.submit(insert_named("ok1")),
            writer.submit(insert_named("fresh")),
            return_exceptions=True,
        )
        assert isinstance(again[0], DBAPIError) and isinstance(again[1], int)
        assert "fresh" in await committed_names(engine)
    finally:
        await writer.close()


async def test_a_batch_runs_in_lock_order_keeping_arrival_order_among_equals(
    engine: AsyncEngine,
) -> None:
    seen: list[str] = []

    def record(label: str) -> Any:
        def write(conn: Connection) -> int:
            seen.append(label)
            return int(conn.execute(text("SELECT txid_current()")).scalar_one())

        return write

    writer = PostgresWriter(engine, lanes=1)
    try:
        labels = [("c", "c1"), ("a", "a1"), ("b", "b1"), ("a", "a2"), ("", "none")]
        txids = await asyncio.gather(
            *(writer.submit(record(label), order=order) for order, label in labels)
        )
        assert len(set(txids)) == 1  # submitted in one tick: one batch, one transaction
        assert seen == ["none", "a1", "a2", "b1", "c1"]
    finally:
        await writer.close()


async def test_a_lost_connection_fails_its_write_and_the_next_one_reconnects(
    engine: AsyncEngine,
) -> None:
    def kill_own_backend(conn: Connection) -> None:
        conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    writer = PostgresWriter(engine, lanes=1)
    try:
        with pytest.raises(DBAPIError):
            await writer.submit(kill_own_backend)
        await writer.submit(insert_named("after"))
        assert await committed_names(engine) == {"after"}
    finally:
        await writer.close()


async def test_close_finishes_the_queued_writes(engine: AsyncEngine) -> None:
    writer = PostgresWriter(engine, lanes=1, max_batch=4)
    pending = [asyncio.ensure_future(writer.submit(insert_named(f"q{i}"))) for i in range(30)]
    await asyncio.sleep(0)  # queued, most not yet started
    await writer.close()
    assert all(task.done() and not task.exception() for task in pending)
    assert await committed_names(engine) == {f"q{i}" for i in range(30)}
