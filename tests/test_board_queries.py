"""Board reads: keyset pagination by latest activity, cursors, stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from app.db import Database
from app.leads.models import Contact
from app.leads.queries import board_page, board_stats, decode_cursor, encode_cursor, lead_row
from app.templating import ago
from app.workspaces.models import Workspace
from tests.conftest import add_workspace

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


async def seed(db: Database, workspace_id: int, n: int, *, same_time: bool = False) -> None:
    async with db.write() as session:
        await session.execute(
            insert(Contact.__table__),  # type: ignore[attr-defined]
            [
                dict(
                    workspace_id=workspace_id,
                    phone_e164=f"+62812000{workspace_id}{i:04d}",
                    name=f"Lead {i}",
                    status="new",
                    message_count=1,
                    temperature="hot" if i % 3 == 0 else "warm",
                    last_activity_at=NOW if same_time else NOW - timedelta(minutes=i),
                    created_at=NOW,
                    updated_at=NOW,
                )
                for i in range(n)
            ],
        )


async def test_pages_walk_every_lead_once_in_order(db: Database, workspace: Workspace) -> None:
    await seed(db, workspace.id, 23, same_time=True)  # type: ignore[arg-type]
    seen: list[int] = []
    cursor = None
    async with db.session() as session:
        while True:
            page = await board_page(session, workspace.id, cursor=cursor, page_size=10)  # type: ignore[arg-type]
            seen.extend(r.id for r in page.rows)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert len(seen) == 23 and len(set(seen)) == 23
    assert seen == sorted(seen, reverse=True)  # ties on activity break by id, newest first


async def test_latest_activity_first_and_scoped_to_workspace(
    db: Database, workspace: Workspace, database_url: str
) -> None:
    other = await add_workspace(database_url, name="Other", phone_number_id="222")
    await seed(db, workspace.id, 5)  # type: ignore[arg-type]
    await seed(db, other.id, 7)  # type: ignore[arg-type]
    async with db.session() as session:
        page = await board_page(session, workspace.id, cursor=None, page_size=50)  # type: ignore[arg-type]
        stats = await board_stats(session, workspace.id, NOW - timedelta(hours=24))  # type: ignore[arg-type]
        foreign = await lead_row(session, workspace.id, 9999)  # type: ignore[arg-type]
        assert await lead_row(session, other.id, page.rows[0].id) is None  # type: ignore[arg-type]
    assert [r.display_name for r in page.rows] == [f"Lead {i}" for i in range(5)]
    assert (stats.total, stats.hot, stats.active_today) == (5, 2, 5)
    assert foreign is None


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor("not-a-cursor!!") is None
    assert decode_cursor(None) is None


async def test_cursor_encodes_position(db: Database, workspace: Workspace) -> None:
    await seed(db, workspace.id, 1)  # type: ignore[arg-type]
    async with db.session() as session:
        row = (await board_page(session, workspace.id, cursor=None, page_size=5)).rows[0]  # type: ignore[arg-type]
    assert decode_cursor(encode_cursor(row)) == (row.last_activity_at, row.id)


def test_relative_times() -> None:
    assert ago(NOW - timedelta(seconds=10), NOW) == "just now"
    assert ago(NOW - timedelta(minutes=5), NOW) == "5 min ago"
    assert ago(NOW - timedelta(hours=3), NOW) == "3 h ago"
    assert ago(NOW - timedelta(days=2), NOW) == "2 d ago"
    assert ago(NOW - timedelta(days=90), NOW) == "23 Aug 2026"
