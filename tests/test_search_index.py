"""The search index of migration 0005: a search finds exactly what LIKE over search_text finds,
whatever people type; the index follows every insert, change and delete of a lead; the
migration backfills it, and goes down and up again, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, insert, select, text, update

from app.db import Database
from app.leads import board
from app.leads.board import (
    BoardQuery,
    Plan,
    Search,
    board_rows,
    filters,
    plan_search,
    search_term,
)
from app.leads.models import Contact
from app.leads.services import search_text_for
from app.migrate import alembic_config, upgrade
from app.workspaces.models import Workspace
from tests.conftest import add_workspace

contacts = Contact.__table__  # type: ignore[attr-defined]
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

PEOPLE = [
    ("Budi Santoso", "katering", "Bekasi", "+6281234567890"),
    ('Budi "Bos" Wijaya', "bengkel motor", "Depok", "+6281298765432"),
    ("Dewi Lestari", "laundry kiloan", "Jakarta Selatan", "+6285712345678"),
    ("Zoë Élodie", "café", "Bandung", "+6281311112222"),
    ("O'Neil (NEAR) AND OR", "toko * bangunan", "Solo", "+6282133334444"),
    ("100% Halal_Food", "warung-makan", "Medan", "+6287855556666"),
    ("李小龍 🙂", "kedai kopi", "Surabaya", "+6289677778888"),
    ("back\\slash col:umn {x}", "^caret", "Bogor", "+6283899990000"),
    ("Ani", None, None, None),
]
TERMS = [
    "budi", "BUDI", "Budi San", "santoso", "dewi lest", "ani", "an", "a", "é", "zoë", "ÉLODIE",
    "café", '"', 'bos"', '"bos" wijaya', "budi*", "budi OR dewi", "NEAR(budi dewi)", "near)",
    "and or", "-budi", "^caret", "col:umn", "{x}", "(", "toko * ban", "%", "_", "100%",
    "halal_food", "o'neil", "\\", "back\\slash", "李小", "🙂", "0812-3456", "+62 857 1234",
    "81298765432", "6281", "zzzz", "kopi su", "a b",
]  # fmt: skip


async def seed_people(db: Database, workspace_id: int, copies: int = 1) -> None:
    rows = []
    for n in range(copies):
        for i, (name, business, location, e164) in enumerate(PEOPLE):
            phone = f"{e164[:-2]}{n:02d}" if e164 and n else e164
            rows.append(
                dict(
                    workspace_id=workspace_id,
                    name=name,
                    business_type=business,
                    location=location,
                    phone_e164=phone,
                    status="new",
                    message_count=0,
                    last_activity_at=NOW.replace(minute=i),
                    created_at=NOW,
                    updated_at=NOW,
                    search_text=search_text_for(
                        name=name,
                        business_type=business,
                        location=location,
                        phone_e164=phone,
                    ),
                )
            )
    async with db.write() as session:
        await session.execute(insert(contacts), rows)


async def ids_for(db: Database, workspace_id: int, search: Search | None, q: str) -> set[int]:
    query = BoardQuery(q=q)
    async with db.session() as session:
        plan = Plan(search=search)
        stmt = select(contacts.c.id).where(*filters(query, workspace_id, None, plan))
        return set((await session.execute(stmt)).scalars())


async def board_ids(db: Database, workspace_id: int, q: str) -> set[int]:
    query = BoardQuery(q=q, size=100)
    page = await db.read(lambda conn: board_rows(conn, workspace_id, query, None))
    return {r.id for r in page.rows}


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite")


async def test_search_finds_exactly_what_like_finds(
    db: Database, workspace: Workspace, database_url: str
) -> None:
    assert workspace.id is not None
    await seed_people(db, workspace.id)
    other = await add_workspace(database_url, name="Other", phone_number_id="9")
    assert other.id is not None
    await seed_people(db, other.id)  # same text in another workspace: never shown here
    for q in TERMS:
        like = await ids_for(db, workspace.id, Search(search_term(q)), q)
        plan = await db.read(partial(plan_search, q=q))
        assert plan is not None
        indexed = len(plan.term) >= board.FTS_MIN_CHARS and is_sqlite(database_url)
        assert bool(plan.index) == indexed, (q, plan)
        assert await ids_for(db, workspace.id, plan, q) == like, q
        assert await board_ids(db, workspace.id, q) == like, q
    assert BoardQuery.from_params({"q": "bu\x00di"}).q == "budi"
    # Sanity: the reference is not trivially empty or everything.
    assert len(await board_ids(db, workspace.id, "budi")) == 2
    assert len(await board_ids(db, workspace.id, "BUDI")) == 2
    assert len(await board_ids(db, workspace.id, '"bos"')) == 1
    assert len(await board_ids(db, workspace.id, "0812-3456")) == 1


async def test_common_terms_walk_the_sort_index_with_the_same_answer(
    db: Database, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A term the index matches often ("probe") finds what a rare one ("ids") finds."""
    assert workspace.id is not None
    await seed_people(db, workspace.id, copies=3)
    ids = {q: await board_ids(db, workspace.id, q) for q in ("budi", "halal", "zzzz", "628")}
    monkeypatch.setattr(board, "FEW", 2)
    for q, expected in ids.items():
        plan = await db.read(partial(plan_search, q=q))
        assert plan is not None
        if db.engine.dialect.name == "sqlite" and q != "zzzz":
            assert plan.index == "probe", q
        assert await board_ids(db, workspace.id, q) == expected, q
    assert len(ids["budi"]) == 6 and len(ids["628"]) == 24 and not ids["zzzz"]


async def test_index_follows_inserts_changes_and_deletes(
    db: Database, workspace: Workspace, database_url: str
) -> None:
    assert workspace.id is not None
    await seed_people(db, workspace.id)
    async with db.session() as session:
        budi = (
            await session.execute(select(contacts.c.id).where(contacts.c.name == "Budi Santoso"))
        ).scalar_one()
    assert budi in await board_ids(db, workspace.id, "santoso")

    async with db.write() as session:
        await session.execute(
            update(contacts)
            .where(contacts.c.id == budi)
            .values(name="Budi Gunawan", search_text=search_text_for(name="Budi Gunawan"))
        )
    assert budi not in await board_ids(db, workspace.id, "santoso")
    assert await board_ids(db, workspace.id, "gunawan") == {budi}

    async with db.write() as session:
        await session.execute(delete(contacts).where(contacts.c.id == budi))
    assert await board_ids(db, workspace.id, "gunawan") == set()

    if is_sqlite(database_url):
        path = database_url.split("///", 1)[1]
        conn = sqlite3.connect(path, isolation_level=None)
        try:

            def writes(sql: str) -> int:
                before = conn.total_changes
                conn.execute(sql)
                return conn.total_changes - before

            # The webhook path updates a lead on every message: the index is not touched...
            assert writes("UPDATE contacts SET last_activity_at = last_activity_at") == 8
            # ... nor when search_text is written again unchanged; only a real change reindexes.
            assert writes("UPDATE contacts SET search_text = search_text") == 8
            assert writes("UPDATE contacts SET search_text = 'x' || search_text") > 8
            # The index agrees with the table, row by row.
            conn.execute(
                "INSERT INTO contacts_fts(contacts_fts, rank) VALUES ('integrity-check', 1)"
            )
        finally:
            conn.close()


async def _at(database_url: str, revision: str) -> None:
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, revision)


async def _search_objects(db: Database) -> set[str]:
    async with db.session() as session:
        if db.engine.dialect.name == "sqlite":
            sql = (
                "SELECT name FROM sqlite_master WHERE name LIKE 'contacts_fts%' "
                "OR name IN ('ix_contacts_ws_temp_score', 'ix_lead_changes_contact_created')"
            )
        else:
            sql = (
                "SELECT indexname FROM pg_indexes WHERE indexname IN ('ix_contacts_search_trgm', "
                "'ix_contacts_ws_temp_score', 'ix_lead_changes_contact_created')"
            )
        return set((await session.execute(text(sql))).scalars())


async def test_migration_backfills_and_goes_down_and_up(
    db: Database, workspace: Workspace, database_url: str
) -> None:
    assert workspace.id is not None
    made = await _search_objects(db)
    expected: dict[str, Any] = {
        "sqlite": {
            "contacts_fts",
            "contacts_fts_insert",
            "contacts_fts_update",
            "contacts_fts_delete",
        },
        "postgresql": {"ix_contacts_search_trgm"},
    }
    assert expected[db.engine.dialect.name] <= made
    assert {"ix_contacts_ws_temp_score", "ix_lead_changes_contact_created"} <= made

    await db.dispose()
    await _at(database_url, "0004")
    assert await _search_objects(db) == set()
    await seed_people(db, workspace.id)  # leads written before the index existed
    assert len(await board_ids(db, workspace.id, "budi")) == 2  # LIKE alone

    await db.dispose()
    await asyncio.to_thread(upgrade, database_url)
    assert await _search_objects(db) == made
    db2 = Database(database_url)  # a fresh engine: it finds the index
    try:
        plan = await db2.read(partial(plan_search, q="budi"))
        assert plan is not None and bool(plan.index) == is_sqlite(database_url)
        assert len(await board_ids(db2, workspace.id, "budi")) == 2
        assert len(await board_ids(db2, workspace.id, "dewi lest")) == 1
    finally:
        await db2.dispose()
