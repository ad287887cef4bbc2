"""Database.read: a function on a connection, run as one read transaction (on SQLite on a reader
thread, on PostgreSQL on a pooled connection), and the SQLite datetime parsing every read uses."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Connection, func, select, text

from app.db import Database, _utc_from_sqlite_text
from app.workspaces.models import Workspace
from tests.conftest import add_workspace

workspaces = Workspace.__table__  # type: ignore[attr-defined]


def count_workspaces(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(workspaces)).scalar_one())


async def test_a_read_returns_what_the_function_returns(db: Database, workspace: Workspace) -> None:
    names = await db.read(lambda conn: list(conn.execute(select(workspaces.c.name)).scalars()))
    assert names == [workspace.name]
    assert await db.read(count_workspaces) == 1


async def test_a_read_sees_one_snapshot(db: Database, database_url: str) -> None:
    """A write that commits between two statements of a read is not seen by the second."""

    def read_twice(conn: Connection) -> tuple[int, int]:
        before = count_workspaces(conn)
        # The write runs on its own connection and event loop, and commits before we go on.
        writer = threading.Thread(
            target=lambda: asyncio.run(add_workspace(database_url, "Later", "later-phone"))
        )
        writer.start()
        writer.join(30)
        assert not writer.is_alive()
        return before, count_workspaces(conn)

    assert await db.read(read_twice) == (0, 0)
    assert await db.read(count_workspaces) == 1  # the next read sees it


async def test_an_error_in_a_read_reaches_the_caller_and_leaves_nothing_open(
    db: Database, workspace: Workspace
) -> None:
    def broken(conn: Connection) -> None:
        conn.execute(text("SELECT no_such_column FROM workspaces"))

    for _ in range(6):  # more than there are reader threads: each one recovers
        with pytest.raises(Exception, match="no_such_column"):
            await db.read(broken)
    assert await db.read(count_workspaces) == 1
    async with db.write() as session:  # and no read transaction holds up a writer
        await session.execute(workspaces.update().values(name="Renamed"))
    assert await db.read(lambda c: c.execute(select(workspaces.c.name)).scalar_one()) == "Renamed"


async def test_reads_run_side_by_side(db: Database, workspace: Workspace) -> None:
    results = await asyncio.gather(*(db.read(count_workspaces) for _ in range(40)))
    assert results == [1] * 40


async def test_a_database_reads_again_after_dispose(db: Database, workspace: Workspace) -> None:
    assert await db.read(count_workspaces) == 1
    await db.dispose()
    assert await db.read(count_workspaces) == 1


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("2026-11-22 04:00:28.335218", datetime(2026, 11, 22, 4, 0, 28, 335218, tzinfo=UTC)),
        ("2026-11-22 04:00:28", datetime(2026, 11, 22, 4, 0, 28, tzinfo=UTC)),
        ("2026-11-22T04:00:28", datetime(2026, 11, 22, 4, 0, 28, tzinfo=UTC)),
        ("2026-11-22", datetime(2026, 11, 22, tzinfo=UTC)),
        ("2026-11-22 11:00:28+07:00", datetime(2026, 11, 22, 4, 0, 28, tzinfo=UTC)),
        (None, None),
    ],
)
def test_sqlite_text_reads_as_utc(stored: str | None, expected: datetime | None) -> None:
    found = _utc_from_sqlite_text(stored)
    assert found == expected
    if found is not None:
        assert found.utcoffset() == timedelta(0) and found.tzinfo is UTC


async def test_datetimes_round_trip_as_utc(db: Database, workspace: Workspace) -> None:
    """What goes in (any zone) comes back as the same moment, in UTC, on both databases."""
    moment = datetime(2026, 11, 22, 11, 30, 5, 120000, tzinfo=timezone(timedelta(hours=7)))
    async with db.write() as session:
        await session.execute(workspaces.update().values(created_at=moment))
    read = await db.read(lambda c: c.execute(select(workspaces.c.created_at)).scalar_one())
    assert read == moment and read.tzinfo is UTC
