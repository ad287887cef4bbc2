"""Reconciliation rules with a controlled clock, on SQLite and PostgreSQL.

Threshold, 24 h cooldown, batch limit, excluded statuses, the reasons in the notes, workspaces
without a Kapso number, a workspace that fails for real (a database trigger) while the others go on,
and the live side: a change event per flagged lead whose rendered row carries the stale badge.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, text, update

from app.db import Database
from app.leads.models import Contact
from app.live.broker import Broker
from app.live.outbox import ChangeEventRow
from app.live.render import LiveRenderer
from app.notes.models import Note
from app.reconcile.models import ReconciliationRun
from app.reconcile.services import humanize_duration, reconcile_all, reconcile_workspace
from app.templating import create_environment
from app.workspaces.models import Workspace
from tests.conftest import add_workspace

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
contacts = Contact.__table__  # type: ignore[attr-defined]

_phones = iter(range(10**9))


async def add_lead(
    db: Database,
    workspace: Workspace,
    *,
    quiet_for: timedelta,
    status: str = "new",
    **fields: Any,
) -> int:
    """A lead whose last activity was `quiet_for` before NOW."""
    values: dict[str, Any] = {
        "workspace_id": workspace.id,
        "phone_e164": f"+6281{next(_phones):09d}",
        "status": status,
        "message_count": 1,
        "last_activity_at": NOW - quiet_for,
        "created_at": NOW - timedelta(days=10),
        "updated_at": NOW - quiet_for,
    }
    values.update(fields)
    async with db.write() as session:
        result = await session.execute(insert(contacts).values(**values).returning(contacts.c.id))
        return int(result.scalar_one())


async def notes_of(db: Database, contact_id: int) -> list[Note]:
    async with db.session() as session:
        result = await session.execute(
            select(Note).where(Note.contact_id == contact_id).order_by(Note.id)  # type: ignore[arg-type]
        )
        return list(result.scalars())


async def flagged_at(db: Database, contact_id: int) -> datetime | None:
    async with db.session() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        return contact.stale_flagged_at


async def all_runs(db: Database) -> list[ReconciliationRun]:
    async with db.session() as session:
        result = await session.execute(select(ReconciliationRun).order_by(ReconciliationRun.id))  # type: ignore[arg-type]
        return list(result.scalars())


async def set_workspace(db: Database, workspace: Workspace, **values: Any) -> Workspace:
    async with db.write() as session:
        await session.execute(
            update(Workspace).where(Workspace.id == workspace.id).values(**values)  # type: ignore[arg-type]
        )
    async with db.session() as session:
        fresh = await session.get(Workspace, workspace.id)
        assert fresh is not None
        return fresh


# -- the rules ---------------------------------------------------------------------------------
def test_durations_read_like_a_person_wrote_them() -> None:
    assert humanize_duration(timedelta(minutes=45, seconds=59)) == "45 min"
    assert humanize_duration(timedelta(hours=5, minutes=59)) == "5 h"
    assert humanize_duration(timedelta(hours=47)) == "47 h"
    assert humanize_duration(timedelta(days=3, hours=20)) == "3 d"


async def test_a_lead_is_stale_past_the_threshold_and_gets_a_note_saying_why(
    db: Database, workspace: Workspace
) -> None:
    fresh = await add_lead(db, workspace, quiet_for=timedelta(minutes=59))
    quiet = await add_lead(db, workspace, quiet_for=timedelta(minutes=61))
    old = await add_lead(db, workspace, quiet_for=timedelta(hours=5, minutes=10))

    summary = await reconcile_workspace(db, workspace, now=NOW)

    assert (summary.checked, summary.stale, summary.flagged, summary.error) == (3, 2, 2, None)
    assert set(summary.flagged_ids) == {quiet, old}
    assert await flagged_at(db, fresh) is None
    assert await flagged_at(db, quiet) == NOW and await flagged_at(db, old) == NOW
    [note] = await notes_of(db, old)
    assert note.body == "no activity for 5 h"
    assert (note.kind, note.author_kind, note.author_name) == ("stale", "system", "reconciliation")
    assert note.created_at == NOW
    assert [n.body for n in await notes_of(db, quiet)] == ["no activity for 1 h"]
    assert await notes_of(db, fresh) == []
    [run] = await all_runs(db)
    assert (run.workspace_id, run.checked, run.stale, run.flagged, run.error) == (
        workspace.id,
        3,
        2,
        2,
        None,
    )
    assert run.started_at == NOW and run.id == summary.run_id and run.duration_ms >= 0


async def test_the_threshold_is_the_workspaces_own(db: Database, workspace: Workspace) -> None:
    workspace = await set_workspace(db, workspace, stale_threshold_minutes=180)
    two_hours = await add_lead(db, workspace, quiet_for=timedelta(hours=2))
    four_hours = await add_lead(db, workspace, quiet_for=timedelta(hours=4))
    summary = await reconcile_workspace(db, workspace, now=NOW)
    assert (summary.stale, summary.flagged_ids) == (1, (four_hours,))
    assert await flagged_at(db, two_hours) is None


async def test_a_lead_is_flagged_at_most_once_per_24_hours(
    db: Database, workspace: Workspace
) -> None:
    lead = await add_lead(db, workspace, quiet_for=timedelta(hours=3))
    first = await reconcile_workspace(db, workspace, now=NOW)
    again = await reconcile_workspace(db, workspace, now=NOW + timedelta(hours=1))
    later = await reconcile_workspace(db, workspace, now=NOW + timedelta(hours=23, minutes=59))
    next_day = await reconcile_workspace(db, workspace, now=NOW + timedelta(hours=24))

    assert [s.flagged for s in (first, again, later, next_day)] == [1, 0, 0, 1]
    assert [s.stale for s in (first, again, later, next_day)] == [1, 1, 1, 1]  # still stale
    assert [n.body for n in await notes_of(db, lead)] == [
        "no activity for 3 h",
        "no activity for 27 h",
    ]
    assert await flagged_at(db, lead) == NOW + timedelta(hours=24)
    assert len(await all_runs(db)) == 4  # every run is recorded, flagging or not


async def test_a_run_flags_at_most_the_limit_most_recently_quiet_first(
    db: Database, workspace: Workspace
) -> None:
    workspace = await set_workspace(db, workspace, reconcile_flag_limit=3)
    leads = [await add_lead(db, workspace, quiet_for=timedelta(hours=2 + i)) for i in range(7)]

    runs = [await reconcile_workspace(db, workspace, now=NOW) for _ in range(4)]

    assert [r.stale for r in runs] == [7, 7, 7, 7]
    assert [r.flagged for r in runs] == [3, 3, 1, 0]
    assert list(runs[0].flagged_ids) == leads[:3]  # 2 h, 3 h, 4 h quiet: the freshest trail
    assert list(runs[1].flagged_ids) == leads[3:6]
    assert list(runs[2].flagged_ids) == leads[6:]
    async with db.session() as session:
        notes = (await session.execute(select(Note))).scalars().all()
    assert sorted(n.contact_id for n in notes) == sorted(leads)  # each exactly once


async def test_archived_and_converted_leads_are_never_stale(
    db: Database, workspace: Workspace
) -> None:
    quiet = timedelta(days=3)
    ids = {
        status: await add_lead(db, workspace, quiet_for=quiet, status=status)
        for status in ("new", "qualified", "contacted", "converted", "archived")
    }
    summary = await reconcile_workspace(db, workspace, now=NOW)
    assert (summary.checked, summary.stale, summary.flagged) == (5, 3, 3)
    assert set(summary.flagged_ids) == {ids["new"], ids["qualified"], ids["contacted"]}
    assert await notes_of(db, ids["converted"]) == [] and await notes_of(db, ids["archived"]) == []
    assert await flagged_at(db, ids["archived"]) is None


async def test_the_note_gives_the_most_specific_reason(db: Database, workspace: Workspace) -> None:
    h = timedelta(hours=1)
    hot_waiting = await add_lead(
        db,
        workspace,
        quiet_for=2 * h,
        temperature="hot",
        last_inbound_at=NOW - 2 * h,
        last_contact_at=NOW - 3 * h,
    )
    hot_never_answered = await add_lead(
        db, workspace, quiet_for=6 * h, temperature="hot", last_inbound_at=NOW - 6 * h
    )
    hot_answered = await add_lead(
        db,
        workspace,
        quiet_for=4 * h,
        temperature="hot",
        last_inbound_at=NOW - 5 * h,
        last_contact_at=NOW - 4 * h,
    )
    stuck_in_phase = await add_lead(
        db,
        workspace,
        quiet_for=5 * h,
        status="qualified",
        phase="validate_pain_points",
        status_changed_at=NOW - 30 * h,
    )
    stuck_qualifying = await add_lead(
        db, workspace, quiet_for=3 * h, status="qualified", status_changed_at=NOW - 24 * h
    )
    recently_qualified = await add_lead(
        db, workspace, quiet_for=3 * h, status="qualified", status_changed_at=NOW - 4 * h
    )

    summary = await reconcile_workspace(db, workspace, now=NOW)

    assert summary.flagged == 6
    reasons = {cid: [n.body for n in await notes_of(db, cid)] for cid in summary.flagged_ids}
    assert reasons == {
        hot_waiting: ["hot, no reply from us for 2 h"],
        hot_never_answered: ["hot, no reply from us for 6 h"],
        hot_answered: ["no activity for 4 h"],
        stuck_in_phase: ["in validate pain points for 30 h"],
        stuck_qualifying: ["in qualifying for 24 h"],
        recently_qualified: ["no activity for 3 h"],
    }


# -- every workspace ------------------------------------------------------------------------------
async def test_workspaces_without_a_kapso_number_are_skipped(
    db: Database, database_url: str, workspace: Workspace
) -> None:
    no_feed = await add_workspace(database_url, name="No Feed", phone_number_id="")
    assert no_feed.kapso_phone_number_id is None
    mine = await add_lead(db, workspace, quiet_for=timedelta(hours=2))
    theirs = await add_lead(db, no_feed, quiet_for=timedelta(hours=2))

    report = await reconcile_all(db, now=NOW)

    assert [r.workspace_slug for r in report.runs] == [workspace.slug]
    assert (report.checked, report.stale, report.flagged, report.failed) == (1, 1, 1, 0)
    assert await flagged_at(db, mine) == NOW and await flagged_at(db, theirs) is None
    assert {r.workspace_id for r in await all_runs(db)} == {workspace.id}


async def _make_workspace_fail(db: Database, workspace_id: int) -> None:
    """Every update of this workspace's leads raises: a real database error, not a mock."""
    async with db.write() as session:
        if db.is_sqlite:
            await session.execute(
                text(
                    "CREATE TRIGGER broken_ws BEFORE UPDATE ON contacts "
                    f"WHEN OLD.workspace_id = {workspace_id} "
                    "BEGIN SELECT RAISE(ABORT, 'workspace is broken'); END"
                )
            )
        else:
            await session.execute(
                text(
                    "CREATE FUNCTION broken_ws() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'workspace is broken'; END $$"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER broken_ws BEFORE UPDATE ON contacts FOR EACH ROW "
                    f"WHEN (OLD.workspace_id = {workspace_id}) EXECUTE FUNCTION broken_ws()"
                )
            )


async def test_one_failing_workspace_does_not_stop_the_others(
    db: Database, database_url: str
) -> None:
    broken = await add_workspace(database_url, name="Broken", phone_number_id="111")
    healthy = await add_workspace(database_url, name="Healthy", phone_number_id="222")
    broken_lead = await add_lead(db, broken, quiet_for=timedelta(hours=2))
    healthy_lead = await add_lead(db, healthy, quiet_for=timedelta(hours=2))
    assert broken.id is not None
    await _make_workspace_fail(db, broken.id)

    report = await reconcile_all(db, now=NOW)  # the broken one comes first (lower id)

    first, second = report.runs
    assert first.workspace_slug == "broken" and first.error is not None
    assert "workspace is broken" in first.error and first.flagged == 0
    assert (first.checked, first.stale) == (1, 1)  # counted before the write failed
    assert second.workspace_slug == "healthy" and second.error is None and second.flagged == 1
    assert report.failed == 1
    assert await flagged_at(db, broken_lead) is None
    assert await notes_of(db, broken_lead) == []  # the failed run's writes were rolled back
    assert await flagged_at(db, healthy_lead) == NOW
    runs = {r.workspace_id: r for r in await all_runs(db)}
    assert runs[broken.id].error is not None and "workspace is broken" in runs[broken.id].error
    assert runs[healthy.id].error is None and runs[healthy.id].flagged == 1


async def test_two_reconciliations_at_once_never_flag_a_lead_twice(
    db: Database, workspace: Workspace
) -> None:
    leads = [await add_lead(db, workspace, quiet_for=timedelta(hours=2 + i)) for i in range(5)]
    other = Database(db.url)  # a second worker: its own engine and connections
    try:
        a, b = await asyncio.gather(reconcile_all(db, now=NOW), reconcile_all(other, now=NOW))
    finally:
        await other.dispose()
    assert a.flagged + b.flagged == 5
    async with db.session() as session:
        notes = (await session.execute(select(Note))).scalars().all()
    assert sorted(n.contact_id for n in notes) == leads


# -- live -----------------------------------------------------------------------------------------
async def test_flagged_leads_reach_open_boards_with_a_stale_badge(
    db: Database, workspace: Workspace
) -> None:
    assert workspace.id is not None
    broker = Broker()
    quiet = await add_lead(db, workspace, quiet_for=timedelta(hours=2), name="Budi")
    await add_lead(db, workspace, quiet_for=timedelta(minutes=5), name="Sari")
    async with broker.subscribe(workspace.id) as sub:
        summary = await reconcile_workspace(db, workspace, broker=broker, now=NOW)
        change = await asyncio.wait_for(sub.get(), 5)
    assert summary.flagged == 1
    assert not isinstance(change, str)
    assert (change.kind, change.contact_id, change.workspace_id) == ("lead", quiet, workspace.id)
    async with db.session() as session:
        events = (await session.execute(select(ChangeEventRow))).scalars().all()
    assert [(e.id, e.contact_id) for e in events] == [(change.id, quiet)]
    live = await LiveRenderer(db, create_environment()).render(change, workspace.timezone)
    assert live is not None and f'id="lead-{quiet}"' in live.data
    assert "stale-badge" in live.data  # the badge the board shows on a flagged lead

    # New activity clears the badge: the flag is older than the lead's last activity.
    async with db.write() as session:
        await session.execute(
            update(contacts)
            .where(contacts.c.id == quiet)
            .values(last_activity_at=NOW + timedelta(minutes=1))
        )
    again = await LiveRenderer(db, create_environment()).render(change, workspace.timezone)
    assert again is not None and "stale-badge" not in again.data
