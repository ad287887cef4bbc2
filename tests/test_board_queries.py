"""Board reads: every filter, search, every sort with keyset pages, stats, facets, pipeline, CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Connection, event, insert

from app.accounts.models import User
from app.db import Database
from app.leads.board import (
    BoardQuery,
    Facets,
    board_rows,
    decode_cursor,
    facet_counts,
    pipeline_columns,
    plan_view,
    search_term,
)
from app.leads.cache import FACET_COLUMNS
from app.leads.export import csv_rows
from app.leads.models import Contact
from app.leads.queries import board_stats, lead_row
from app.leads.services import search_text_for
from app.templating import ago
from app.workspaces.models import Workspace
from tests.conftest import add_workspace

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
STATUSES = ["new", "qualified", "contacted", "converted", "archived"]
TEMPS = ["hot", "warm", "lukewarm", "cold", None]


async def seed(db: Database, workspace_id: int, n: int, *, owner: int | None = None) -> None:
    rows = []
    for i in range(n):
        name = f"Lead {i}"
        business = "Katering" if i % 2 else "Bengkel motor"
        location = "Bekasi" if i % 3 else "Depok"
        phone = f"+628120000{workspace_id}{i:03d}"
        rows.append(
            dict(
                workspace_id=workspace_id,
                phone_e164=phone,
                name=name,
                status=STATUSES[i % 5],
                temperature=TEMPS[i % 5],
                score=None if i % 7 == 0 else (i * 13) % 101,
                phase="qualifying" if i % 4 == 0 else "greeting",
                business_type=business,
                location=location,
                owner_user_id=owner if i % 2 == 0 else None,
                needs_reply=i % 3 == 0,
                message_count=1,
                stale_flagged_at=NOW - timedelta(hours=1) if i % 10 == 0 else None,
                last_activity_at=NOW - timedelta(hours=2 if i % 10 == 0 else 0, minutes=i % 6),
                created_at=NOW - timedelta(days=i % 9),
                updated_at=NOW,
                search_text=search_text_for(
                    name=name, business_type=business, location=location, phone_e164=phone
                ),
            )
        )
    async with db.write() as session:
        await session.execute(insert(Contact.__table__), rows)  # type: ignore[attr-defined]


async def walk(
    db: Database,
    ws: int,
    query: BoardQuery,
    user: int | None = None,
    facets: Facets | None = None,
) -> list[int]:
    """Every id the query shows, page by page, with no repeats."""
    seen: list[int] = []
    read = partial(board_rows, workspace_id=ws, user_id=user, facets=facets)
    while True:
        page = await db.read(partial(read, query=query))
        seen.extend(r.id for r in page.rows)
        if page.next_cursor is None:
            return seen
        query = replace(query, cursor=page.next_cursor)


async def add_me(db: Database) -> int:
    """The viewing user ("owner=me"), without a password: these tests never sign in."""
    async with db.write() as session:
        return int(
            (
                await session.execute(
                    insert(User.__table__)
                    .values(email="me@example.com", name="Me", created_at=NOW)  # type: ignore[attr-defined]
                    .returning(User.__table__.c.id)  # type: ignore[attr-defined]
                )
            ).scalar_one()
        )


async def contacts_of(db: Database, ws: int) -> list[Contact]:
    from sqlalchemy import select

    async with db.session() as session:
        return list(
            (await session.execute(select(Contact).where(Contact.workspace_id == ws))).scalars()
        )


@pytest.mark.parametrize("sort", ["activity", "score", "newest"])
async def test_every_sort_pages_through_every_lead_once_in_order(
    db: Database, workspace: Workspace, sort: str
) -> None:
    await seed(db, workspace.id, 37)  # type: ignore[arg-type]
    ids = await walk(db, workspace.id, BoardQuery(sort=sort, size=25))  # type: ignore[arg-type]
    assert len(ids) == 37 and len(set(ids)) == 37
    by_id = {c.id: c for c in await contacts_of(db, workspace.id)}  # type: ignore[arg-type]
    key = {
        "activity": lambda c: (c.last_activity_at, c.id),
        "score": lambda c: (c.score if c.score is not None else -1, c.id),
        "newest": lambda c: (c.created_at, c.id),
    }[sort]
    assert ids == sorted(ids, key=lambda i: key(by_id[i]), reverse=True)


@pytest.mark.parametrize(
    ("params", "check"),
    [
        ({"status": "qualified"}, lambda c, me: c.status == "qualified"),
        ({"temperature": "hot"}, lambda c, me: c.temperature == "hot"),
        ({"phase": "qualifying"}, lambda c, me: c.phase == "qualifying"),
        ({"business_type": "Katering"}, lambda c, me: c.business_type == "Katering"),
        ({"location": "Depok"}, lambda c, me: c.location == "Depok"),
        ({"owner": "me"}, lambda c, me: c.owner_user_id == me),
        ({"owner": "none"}, lambda c, me: c.owner_user_id is None),
        ({"needs_reply": "1"}, lambda c, me: c.needs_reply),
        ({"stale": "1"}, lambda c, me: c.stale_flagged_at is not None),
        ({"q": "lead 1"}, lambda c, me: "lead 1" in c.name.lower()),
        ({"q": "0812-0000"}, lambda c, me: True),
        (
            {"status": "new", "temperature": "hot", "sort": "score"},
            lambda c, me: c.status == "new" and c.temperature == "hot",
        ),
    ],
)
async def test_filters_match_exactly_the_right_leads(
    db: Database, workspace: Workspace, database_url: str, params: dict, check: object
) -> None:
    me = await add_me(db)
    await seed(db, workspace.id, 40, owner=me)  # type: ignore[arg-type]
    other = await add_workspace(database_url, name="Other", phone_number_id="9")
    await seed(db, other.id, 10, owner=me)  # type: ignore[arg-type]
    query = BoardQuery.from_params(params)
    ids = set(await walk(db, workspace.id, query, me))  # type: ignore[arg-type]
    expected = {c.id for c in await contacts_of(db, workspace.id) if check(c, me)}  # type: ignore[arg-type,operator]
    assert ids == expected and ids


def test_query_round_trips_through_the_url() -> None:
    query = BoardQuery.from_params(
        {
            "status": "new",
            "needs_reply": "on",
            "sort": "score",
            "size": "25",
            "q": "budi",
            "bogus": "x",
            "temperature": "boiling",
        }
    )
    assert query.params() == {
        "status": "new",
        "needs_reply": "1",
        "sort": "score",
        "size": "25",
        "q": "budi",
    }
    assert BoardQuery.from_params(query.params()) == query
    assert query.url("/export.csv").startswith("/export.csv?status=new")
    assert BoardQuery.from_params({"size": "7"}).size == 50  # only the offered page sizes


def test_search_terms() -> None:
    assert search_term("0812-3456") == "8123456"
    assert search_term("+62 812 3456") == "8123456"
    assert search_term("  Budi ") == "budi"
    assert decode_cursor("score", "garbage!!") is None


async def test_stats_facets_pipeline_and_scoping(
    db: Database, workspace: Workspace, database_url: str
) -> None:
    await seed(db, workspace.id, 20)  # type: ignore[arg-type]
    other = await add_workspace(database_url, name="Other", phone_number_id="9")
    await seed(db, other.id, 5)  # type: ignore[arg-type]
    theirs = (await contacts_of(db, other.id))[0]  # type: ignore[arg-type]
    ws: int = workspace.id  # type: ignore[assignment]

    def read(conn: Connection) -> tuple[Any, ...]:
        return (
            board_stats(conn, ws, NOW - timedelta(days=1)),
            dict(facet_counts(conn, ws, "status")),
            pipeline_columns(conn, ws, BoardQuery(), None),
            # with the status menu's counts, the columns are not counted again: the same figures
            pipeline_columns(
                conn, ws, BoardQuery(), None, facets={"status": facet_counts(conn, ws, "status")}
            ),
            lead_row(conn, ws, theirs.id),  # type: ignore[arg-type]
        )

    stats, statuses, columns, from_menu, their_row = await db.read(read)
    assert their_row is None
    assert (stats.total, stats.hot, stats.warm, stats.needs_reply) == (20, 4, 4, 7)
    assert statuses == {"new": 4, "qualified": 4, "contacted": 4, "converted": 4, "archived": 4}
    assert [(c.status, c.count, len(c.cards)) for c in columns] == [(s, 4, 4) for s in STATUSES]
    assert from_menu == columns


async def test_csv_export_streams_the_filtered_view(db: Database, workspace: Workspace) -> None:
    await seed(db, workspace.id, 2300)  # more than two export batches
    chunks = [
        c
        async for c in csv_rows(
            db, workspace.id, BoardQuery(temperature="hot"), None, "Asia/Jakarta"
        )
    ]  # type: ignore[arg-type]
    assert len(chunks) >= 1
    rows = list(csv.reader(io.StringIO("".join(chunks).lstrip("\ufeff"))))
    assert rows[0][:4] == ["id", "name", "phone", "status"]
    assert len(rows) - 1 == 460 and {r[4] for r in rows[1:]} == {"hot"}
    everyone = [c async for c in csv_rows(db, workspace.id, BoardQuery(), None, "Asia/Jakarta")]  # type: ignore[arg-type]
    assert len(everyone) == 3  # 1000 + 1000 + 300: streamed in batches, not built in memory
    assert sum(len(list(csv.reader(io.StringIO(c)))) for c in everyone) == 2301


async def test_csv_cells_cannot_become_formulas(db: Database, workspace: Workspace) -> None:
    async with db.write() as session:
        await session.execute(
            insert(Contact.__table__).values(  # type: ignore[attr-defined]
                workspace_id=workspace.id,
                name='=HYPERLINK("http://x")',
                status="new",
                message_count=0,
                last_activity_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    text = "".join([c async for c in csv_rows(db, workspace.id, BoardQuery(), None, "UTC")])  # type: ignore[arg-type]
    assert "'=HYPERLINK" in text


def test_relative_times() -> None:
    assert ago(NOW - timedelta(seconds=10), NOW) == "just now"
    assert ago(NOW - timedelta(minutes=5), NOW) == "5 min ago"
    assert ago(NOW - timedelta(hours=3), NOW) == "3 h ago"
    assert ago(NOW - timedelta(days=2), NOW) == "2 d ago"
    assert ago(NOW - timedelta(days=90), NOW) == "23 Aug 2026"


@pytest.mark.parametrize(
    ("few", "facets"),
    [(1, "counted"), (7, "counted"), (2000, "counted"), (7, "none"), (7, "rare"), (7, "common")],
)
async def test_reading_plans_never_change_the_answer(
    db: Database, workspace: Workspace, monkeypatch: pytest.MonkeyPatch, few: int, facets: str
) -> None:
    """Whether a filter's index or the sort's index reads the rows (board.FEW decides, from a
    capped count per filter, or from the facet menus' counts when given, even wrong ones),
    every view lists exactly its leads, in order, page by page."""
    from app.leads import board

    monkeypatch.setattr(board, "FEW", few)
    me = await add_me(db)
    await seed(db, workspace.id, 45, owner=me)  # type: ignore[arg-type]
    ws: int = workspace.id  # type: ignore[assignment]
    counted = await db.read(lambda c: {col: facet_counts(c, ws, col) for col in FACET_COLUMNS})
    menus: Facets | None = {
        "none": None,
        "counted": counted,
        # Stale counts: every value rare, or every value common. Plans differ; answers don't.
        "rare": {col: [(v, 1) for v, _n in values] for col, values in counted.items()},
        "common": {col: [(v, 10**6) for v, _n in values] for col, values in counted.items()},
    }[facets]
    by_id = {c.id: c for c in await contacts_of(db, workspace.id)}  # type: ignore[arg-type]
    key = {
        "activity": lambda c: (c.last_activity_at, c.id),
        "score": lambda c: (c.score if c.score is not None else -1, c.id),
        "newest": lambda c: (c.created_at, c.id),
    }

    def check(c: Contact, params: dict[str, str]) -> bool:
        owner = {"me": me, "none": None}.get(params.get("owner", ""), params.get("owner"))
        return (
            all(getattr(c, f) == v for f, v in params.items() if f not in ("owner", "stale"))
            and ("owner" not in params or c.owner_user_id == (owner and int(owner)))
            and ("stale" not in params or c.stale_flagged_at is not None)
        )

    views: list[dict[str, str]] = [
        {"business_type": "Katering"},
        {"location": "Depok"},
        {"owner": "me"},
        {"owner": "none", "status": "new"},
        {"owner": "12345"},
        {"temperature": "hot", "location": "Depok"},
        {"needs_reply": True, "phase": "qualifying"},  # type: ignore[dict-item]
        {"status": "new", "temperature": "hot", "location": "Depok", "stale": "1"},
    ]
    for params in views:
        for sort in ("activity", "score", "newest"):
            query = BoardQuery.from_params({**params, "sort": sort, "size": "25"})
            ids = await walk(db, ws, query, me, menus)
            expected = sorted(
                (i for i, c in by_id.items() if check(c, params)),
                key=lambda i, sort=sort: key[sort](by_id[i]),  # type: ignore[misc]
                reverse=True,
            )
            assert ids == expected, (params, sort)
            assert bool(expected) == (params != {"owner": "12345"}), params


async def test_facet_counts_spare_the_plan_its_counting(
    db: Database, workspace: Workspace, database_url: str
) -> None:
    """With the facet menus' counts at hand, planning a filtered view reads nothing."""
    await seed(db, workspace.id, 30)  # type: ignore[arg-type]
    ws: int = workspace.id  # type: ignore[assignment]
    query = BoardQuery(business_type="Katering", sort="score")

    def statements_per_plan(conn: Connection) -> tuple[int, int]:
        seen: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            seen.append(statement)

        facets = {col: facet_counts(conn, ws, col) for col in FACET_COLUMNS}
        event.listen(conn, "before_cursor_execute", record)
        try:
            plan_view(conn, ws, query, None, facets)
            with_facets = len(seen)
            plan_view(conn, ws, query, None)
            return with_facets, len(seen) - with_facets
        finally:
            event.remove(conn, "before_cursor_execute", record)

    with_facets, without = await db.read(statements_per_plan)
    assert with_facets == 0
    # SQLite counts the filter's leads to choose an index; PostgreSQL plans by itself.
    assert without == (1 if database_url.startswith("sqlite") else 0)


async def test_a_deep_page_starts_where_the_last_one_ended(sqlite_url: str) -> None:
    """Keyset pages: the cursor bounds the index range, so page 100 reads what page 1 reads
    (SQLite's query plan shows the bound; PostgreSQL plans from its own statistics)."""
    workspace = await add_workspace(sqlite_url)
    ws: int = workspace.id  # type: ignore[assignment]
    db = Database(sqlite_url)

    def plan_of_page(conn: Connection, query: BoardQuery) -> list[str]:
        seen: list[tuple[str, Any]] = []

        def record(_c: Any, _cur: Any, statement: str, params: Any, *_a: Any) -> None:
            seen.append((statement, params))

        event.listen(conn, "before_cursor_execute", record)
        try:
            board_rows(conn, ws, query, None)
        finally:
            event.remove(conn, "before_cursor_execute", record)
        statement, params = seen[-1]
        return [r[3] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)]

    try:
        await seed(db, ws, 30)
        for sort in ("activity", "score", "newest"):
            query = BoardQuery(sort=sort, size=10)
            first = await db.read(partial(board_rows, workspace_id=ws, query=query, user_id=None))
            assert first.next_cursor
            second = replace(query, cursor=first.next_cursor)
            lines = await db.read(partial(plan_of_page, query=second))
            reads = [line for line in lines if "contacts USING" in line]
            assert reads and "<?)" in reads[0], (sort, lines)
    finally:
        await db.dispose()
