"""The change-event log tail: how a process hears other processes' changes without Redis."""

from __future__ import annotations

from sqlalchemy import insert

from app.db import Database, utcnow
from app.live.broker import Hub
from app.live.outbox import LEAD_CHANGED, Change, ChangeEventRow, record_change
from app.live.tail import LogTail
from app.workspaces.models import Workspace


async def write_changes(db: Database, workspace: Workspace, contacts: list[int]) -> None:
    """Changes committed by some other process (nothing here is told about them)."""
    assert workspace.id is not None
    async with db.write() as session:
        for contact in contacts:
            await record_change(session, workspace.id, LEAD_CHANGED, contact)


def listening_hub() -> tuple[Hub, list[Change]]:
    hub, heard = Hub(), []
    hub.listen(heard.append)
    return hub, heard


async def test_the_tail_starts_at_the_end_of_the_log_and_delivers_what_comes_after(
    db: Database, workspace: Workspace
) -> None:
    await write_changes(db, workspace, [1, 2])  # before this process started: not replayed
    hub, heard = listening_hub()
    tail = LogTail(db, hub.deliver)
    await tail.start()
    try:
        assert await tail.poll() == 0
        await write_changes(db, workspace, [3, 4, 3])
        assert await tail.poll() == 3
        assert await tail.poll() == 0  # read again inside the settle window, delivered once
    finally:
        await tail.stop()
    assert [c.contact_id for c in heard] == [3, 4, 3]
    assert all(c.workspace_id == workspace.id and c.kind == LEAD_CHANGED for c in heard)


async def test_an_event_committed_late_with_a_lower_id_is_still_delivered(
    db: Database, workspace: Workspace
) -> None:
    """PostgreSQL hands out ids before commit: id 5 can become visible after id 6 was read."""
    hub, heard = listening_hub()
    tail = LogTail(db, hub.deliver, settle_seconds=60)
    await tail.start()
    await write_changes(db, workspace, [1, 2])  # ids n+1, n+2
    await tail.poll()
    late_id = heard[0].id  # reuse a free id below the newest: free it first
    table = ChangeEventRow.__table__  # type: ignore[attr-defined]
    async with db.write() as session:
        await session.execute(table.delete().where(table.c.id == late_id))
    heard.clear()
    hub2, heard2 = listening_hub()
    tail2 = LogTail(db, hub2.deliver, settle_seconds=60)
    await tail2.start()  # starts at n+2
    tail2._floor = late_id - 1  # as if it had read up to the id before the late one
    async with db.write() as session:
        await session.execute(
            insert(table).values(
                id=late_id,
                workspace_id=workspace.id,
                kind=LEAD_CHANGED,
                contact_id=9,
                created_at=utcnow(),
            )
        )
    try:
        assert await tail2.poll() == 2  # the late one (id n+1) and n+2
        assert [c.contact_id for c in heard2] == [9, 2]
    finally:
        await tail.stop()
        await tail2.stop()


async def test_the_hub_delivers_an_event_once_whichever_way_it_came(
    db: Database, workspace: Workspace
) -> None:
    hub, heard = listening_hub()
    tail = LogTail(db, hub.deliver)
    await tail.start()
    try:
        await write_changes(db, workspace, [7])
        [change] = await _read_all(db)
        assert hub.deliver(change) is True  # Redis was first
        assert await tail.poll() == 0  # the tail finds it already delivered
    finally:
        await tail.stop()
    assert heard == [change]


async def _read_all(db: Database) -> list[Change]:
    from app.live.outbox import changes_since

    return await db.read(lambda conn: changes_since(conn, 0, 100))
