"""The board's view of the leads: filters, search, sorts and keyset pages, as one value that lives
in the URL (shareable, and the back button works)."""

from __future__ import annotations

import base64
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, cast
from urllib.parse import urlencode

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from app.leads.changes import LEAD_STATUSES
from app.leads.models import Contact
from app.leads.queries import LeadRow, row_select, to_lead_row

contacts = Contact.__table__  # type: ignore[attr-defined]

SORTS = ("activity", "score", "newest")
PAGE_SIZES = (25, 50, 100)
STATUSES = LEAD_STATUSES  # the pipeline's columns, in this order
TEMPERATURES = ("hot", "warm", "lukewarm", "cold")


@dataclass(frozen=True, slots=True)
class BoardQuery:
    status: str = ""
    temperature: str = ""
    phase: str = ""
    business_type: str = ""
    location: str = ""
    owner: str = ""  # "" any, "me", "none", or a user id
    needs_reply: bool = False
    stale: bool = False
    q: str = ""
    sort: str = "activity"
    size: int = 50
    cursor: str = ""
    view: str = "table"  # table | pipeline

    @classmethod
    def from_params(cls, params: Any, default_size: int = 50) -> BoardQuery:
        def text(name: str, limit: int = 120) -> str:
            value = params.get(name) or ""
            # NUL: PostgreSQL refuses it in text, and FTS5 would read only up to it.
            return str(value).replace("\x00", "").strip()[:limit]

        def flag(name: str) -> bool:
            return text(name).lower() in ("1", "true", "on", "yes")

        sort = text("sort")
        size_text = text("size")
        size = (
            int(size_text) if size_text.isdigit() and int(size_text) in PAGE_SIZES else default_size
        )
        return cls(
            status=text("status") if text("status") in STATUSES else "",
            temperature=text("temperature") if text("temperature") in TEMPERATURES else "",
            phase=text("phase", 40),
            business_type=text("business_type"),
            location=text("location"),
            owner=text("owner", 20),
            needs_reply=flag("needs_reply"),
            stale=flag("stale"),
            q=text("q", 100),
            sort=sort if sort in SORTS else "activity",
            size=size,
            cursor=text("cursor", 200),
            view="pipeline" if text("view") == "pipeline" else "table",
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """Only what differs from the defaults, so URLs stay short."""
        query = replace(self, **changes) if changes else self
        out: dict[str, str] = {}
        for name, default in _DEFAULTS.items():
            value = getattr(query, name)
            if value != default:
                out[name] = "1" if value is True else str(value)
        return out

    def url(self, path: str = "/", **changes: Any) -> str:
        params = self.params(**changes)
        return f"{path}?{urlencode(params)}" if params else path

    @property
    def is_filtered(self) -> bool:
        return bool(
            self.status
            or self.temperature
            or self.phase
            or self.business_type
            or self.location
            or self.owner
            or self.needs_reply
            or self.stale
            or self.q
        )


_DEFAULTS = {f: getattr(BoardQuery(), f) for f in BoardQuery.__dataclass_fields__}


def _score_key() -> ColumnElement[int]:
    # A literal -1, not a bound parameter: the expression must read exactly like the index's
    # `coalesce(score, -1)` for the database to walk ix_contacts_ws_score instead of sorting.
    return func.coalesce(contacts.c.score, literal_column("-1"))


def _sort_columns(sort: str) -> tuple[Any, Any]:
    if sort == "score":
        return _score_key(), contacts.c.id
    if sort == "newest":
        return contacts.c.created_at, contacts.c.id
    return contacts.c.last_activity_at, contacts.c.id


# -- search ------------------------------------------------------------------------------------
# What a search finds is decided in one place: search_text LIKE '%term%' (below). On SQLite the
# FTS5 trigram table of migration 0005 only narrows the candidates first (a trigram phrase match
# is a substring match, folding case at least as widely as LIKE does), so the index changes the
# speed of a search, never its answer. On PostgreSQL the pg_trgm GIN index serves LIKE itself.
_fts = table("contacts_fts", column("rowid"))
FTS_MIN_CHARS = 3  # trigrams: shorter terms match nothing in the index, so they stay LIKE
# Fewer matching leads than this: fetch them and sort them (~1 ms per 500). More: walk an index
# in the sort's order (for the search: keeping the ids the index matched).
FEW = 2000
_fts_tables: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Search:
    """A search term and how the index takes part: "" not at all (LIKE reads the sort's index);
    "ids" (a rare term: the matching ids drive the query); "probe" (a common term: walk the
    sort's index, keeping the rows whose id the index matched)."""

    term: str
    index: Literal["", "ids", "probe"] = ""


def fts_phrase(term: str) -> str:
    """The term as one FTS5 string: operators, quotes and brackets inside are plain text."""
    return '"' + term.replace('"', '""') + '"'


def _has_fts(conn: Connection) -> bool:
    """Whether this SQLite database has the search index (migration 0005 skips it without FTS5)."""
    if conn.dialect.name != "sqlite":
        return False
    known = _fts_tables.get(conn.engine)
    if known is None:
        found = conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contacts_fts'")
        )
        known = _fts_tables[conn.engine] = found.first() is not None
    return known


def _fts_ids(term: str) -> Any:
    """The ids of the leads whose search_text the index matches (all workspaces)."""
    return select(_fts.c.rowid).where(literal_column("contacts_fts").op("MATCH")(fts_phrase(term)))


def plan_search(conn: Connection, q: str) -> Search | None:
    """How to run the search for `q` on this database (one cheap look at the index)."""
    if not q:
        return None
    term = search_term(q)
    if len(term) < FTS_MIN_CHARS or "\x00" in term or not _has_fts(conn):
        return Search(term)
    capped = _fts_ids(term).limit(FEW).subquery()
    found = conn.execute(select(func.count()).select_from(capped)).scalar_one()
    return Search(term, "ids" if found < FEW else "probe")


def _search_clause(search: Search) -> ColumnElement[bool]:
    like = contacts.c.search_text.contains(search.term, autoescape=True)
    if not search.index:
        return like
    # `id + 0` keeps SQLite from driving the query by id: it walks the sort's index instead.
    key = contacts.c.id if search.index == "ids" else contacts.c.id + literal_column("0")
    return and_(key.in_(_fts_ids(search.term)), like)


# -- reading plan --------------------------------------------------------------------------------
# SQLite's planner knows how many leads a filter keeps on average (ANALYZE), not for the value
# asked: "owner = an agent with 3 leads, by score" walked all 100,000 entries of the score index,
# "business = the most common one, by score" sorted 15,000 rows. A capped count per filter (an
# index read of at most FEW entries) tells which: a filter that keeps fewer than FEW leads reads
# them through its own index (then sorts them); otherwise the sort's index is walked and every
# filter checked on the way (leads / FEW entries per row shown, if the kept ones are spread
# evenly). PostgreSQL keeps per-value statistics and plans this itself.


def _equalities(query: BoardQuery, user_id: int | None) -> dict[str, Any]:
    """The filters that have an index of their own: column -> value (None: IS NULL)."""
    out: dict[str, Any] = {}
    for name in ("status", "temperature", "phase", "business_type", "location"):
        if getattr(query, name):
            out[name] = getattr(query, name)
    if query.owner == "me" and user_id is not None:
        out["owner_user_id"] = user_id
    elif query.owner == "none":
        out["owner_user_id"] = None
    elif query.owner.isdigit():
        out["owner_user_id"] = int(query.owner)
    if query.needs_reply:
        out["needs_reply"] = True
    return out


def _equal(column: str, value: Any, use_index: bool = True) -> ColumnElement[bool]:
    col: Any = contacts.c[column]
    if not use_index:  # `+column`: the same test, but SQLite may not read the column's index
        col = UnaryExpression(col, operator=custom_op("+"), type_=col.type)
    if value is None or value is True:
        return cast(ColumnElement[bool], col.is_(value))
    return cast(ColumnElement[bool], col == value)


def _in_sort_order(column: str, sort: str) -> bool:
    """Whether the column's index also lists its leads in the sort's order."""
    return sort == "activity" or (column == "temperature" and sort == "score")


@dataclass(frozen=True, slots=True)
class Plan:
    """How to read a view: the search's plan, the columns whose index must not be read, and
    whether the sort's order comes from an index (else the few rows found are sorted)."""

    search: Search | None = None
    plain: frozenset[str] = frozenset()
    sort_from_index: bool = True


def _count_upto(conn: Connection, where: list[ColumnElement[bool]], cap: int) -> int:
    capped = select(literal_column("1")).select_from(contacts).where(*where).limit(cap).subquery()
    return int(conn.execute(select(func.count()).select_from(capped)).scalar_one())


Facets = Mapping[str, Sequence[tuple[str, int]]]  # column -> (value, leads), most common first


def _known_count(facets: Facets | None, column: str, value: Any) -> int | None:
    """At most how many leads have this value, from the facet menus' counts (BoardCache), when
    that settles the plan: exact for a listed value; for an unlisted one, the least listed
    count bounds it (the menus list the most common values). A count a little stale only
    changes which index is read, never the answer."""
    listed = facets.get(column) if facets is not None else None
    if listed is None or not isinstance(value, str):
        return None
    for listed_value, count in listed:
        if listed_value == value:
            return count
    bound = listed[-1][1] if listed else 0
    return bound if bound < FEW else None


def plan_view(
    conn: Connection,
    workspace_id: int,
    query: BoardQuery,
    user_id: int | None,
    facets: Facets | None = None,
) -> Plan:
    search = plan_search(conn, query.q)
    equal = _equalities(query, user_id)
    if search is not None and search.index == "ids":
        # A rare term: the index's ids drive the query, whatever the statistics say (fresh from
        # an empty database, they would have SQLite walk the workspace and probe the ids).
        return Plan(search, frozenset(equal) | {"workspace_id"}, sort_from_index=False)
    if (
        search is not None
        or not equal
        or conn.dialect.name != "sqlite"
        or (len(equal) == 1 and _in_sort_order(next(iter(equal)), query.sort))
    ):
        return Plan(search)
    ws = contacts.c.workspace_id == workspace_id
    kept = {}
    for c, v in equal.items():
        known = _known_count(facets, c, v)
        kept[c] = known if known is not None else _count_upto(conn, [ws, _equal(c, v)], FEW)
    rarest = min(kept, key=kept.__getitem__)
    if kept[rarest] < FEW:
        return Plan(search, frozenset(kept) - {rarest}, _in_sort_order(rarest, query.sort))
    # Every filter keeps many: walk an index in the sort's order (a filter's own, if it has one).
    return Plan(search, frozenset(c for c in kept if not _in_sort_order(c, query.sort)))


def filters(
    query: BoardQuery,
    workspace_id: int,
    user_id: int | None,
    plan: Plan | None = None,
) -> list[ColumnElement[bool]]:
    """The view's conditions, as plan_view planned them (without a plan: what SQL would say)."""
    plan = plan or Plan()
    where = [_equal("workspace_id", workspace_id, use_index="workspace_id" not in plan.plain)]
    for name, value in _equalities(query, user_id).items():
        where.append(_equal(name, value, use_index=name not in plan.plain))
    if query.stale:
        where.append(contacts.c.stale_flagged_at.is_not(None))
        where.append(contacts.c.stale_flagged_at >= contacts.c.last_activity_at)
    if query.q:
        where.append(_search_clause(plan.search or Search(search_term(query.q))))
    return where


def search_term(text: str) -> str:
    """What the search_text column holds: lower case, and phones as bare digits."""
    term = text.strip().lower()
    digits = "".join(ch for ch in term if ch.isdigit())
    if digits and len(digits) >= 4 and len(digits) >= len(term.replace(" ", "")) - 3:
        # A phone typed as 0812..., +62 812-... or 62812...: match on the digits after 0/62.
        if digits.startswith("0"):
            digits = digits[1:]
        elif digits.startswith("62"):
            digits = digits[2:]
        return digits
    return term


def encode_cursor(sort: str, row: LeadRow, score: int | None, created_at: datetime) -> str:
    if sort == "score":
        value = str(score if score is not None else -1)
    elif sort == "newest":
        value = created_at.isoformat()
    else:
        value = row.last_activity_at.isoformat()
    return base64.urlsafe_b64encode(f"{sort}|{value}|{row.id}".encode()).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> tuple[Any, int] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value, ident = raw.split("|")
        if kind != sort:
            return None
        key: Any = int(value) if sort == "score" else datetime.fromisoformat(value)
        return key, int(ident)
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[LeadRow]
    next_cursor: str | None
    is_first: bool
    query: BoardQuery = field(default_factory=BoardQuery)


def board_rows(
    conn: Connection,
    workspace_id: int,
    query: BoardQuery,
    user_id: int | None,
    facets: Facets | None = None,
) -> Page:
    """One page in the chosen order; keyset, so a deep page costs what the first costs.
    `facets`: the workspace's facet counts when the caller has them (they spare the plan its
    counting)."""
    key, tiebreak = _sort_columns(query.sort)
    plan = plan_view(conn, workspace_id, query, user_id, facets)
    stmt = row_select().where(*filters(query, workspace_id, user_id, plan))
    # `+key`: the same order, but SQLite must not read the sort's index for it (see Plan).
    order = (
        key
        if plan.sort_from_index
        else UnaryExpression(key, operator=custom_op("+"), type_=key.type)
    )
    position = decode_cursor(query.sort, query.cursor)
    if position is not None:
        value, ident = position
        # `key <= value` on its own bounds the index range: the page starts where the last one
        # ended instead of walking (and skipping) every entry before it.
        stmt = stmt.where(order <= value, or_(order < value, tiebreak < ident))
    stmt = stmt.order_by(order.desc(), tiebreak.desc()).limit(query.size + 1)
    result = conn.execute(stmt).all()
    rows = [to_lead_row(r) for r in result]
    more = len(rows) > query.size
    rows, result = rows[: query.size], result[: query.size]
    next_cursor = None
    if more and rows:
        last = result[-1]
        next_cursor = encode_cursor(query.sort, rows[-1], last.score, last.created_at)
    return Page(rows=rows, next_cursor=next_cursor, is_first=position is None, query=query)


def facet_counts(
    conn: Connection, workspace_id: int, column: str, *, limit: int = 30
) -> list[tuple[str, int]]:
    """Values of one column with their lead counts, most common first (for the filter menus)."""
    col = contacts.c[column]
    rows = conn.execute(
        select(col, func.count())
        .where(contacts.c.workspace_id == workspace_id, col.is_not(None))
        .group_by(col)
        .order_by(func.count().desc())
        .limit(limit)
    )
    return [(str(value), int(count)) for value, count in rows if value not in ("", None)]


@dataclass(frozen=True, slots=True)
class PipelineColumn:
    status: str
    count: int
    cards: list[LeadRow]


def pipeline_columns(
    conn: Connection,
    workspace_id: int,
    query: BoardQuery,
    user_id: int | None,
    per_column: int = 25,
    facets: Facets | None = None,
) -> list[PipelineColumn]:
    """The pipeline: one column per status, the most recently active cards first. `facets`: as
    for board_rows; without other filters, the status menu's counts are the columns' counts
    (otherwise each column is counted)."""
    counts = None
    if facets is not None and not replace(query, status="").is_filtered:
        counts = dict(facets["status"])
    columns = []
    for status in STATUSES:
        column_query = replace(query, status=status, cursor="", sort="activity")
        plan = plan_view(conn, workspace_id, column_query, user_id, facets)
        where = filters(column_query, workspace_id, user_id, plan)
        if counts is not None:
            count = counts.get(status, 0)
        else:
            count = conn.execute(
                select(func.count()).select_from(contacts).where(*where)
            ).scalar_one()
        # One plain query per column: on a reader thread five cost less than building their
        # union (whose subqueries SQLAlchemy rebuilds column by column).
        newest_first = (
            row_select()
            .where(*where)
            .order_by(contacts.c.last_activity_at.desc(), contacts.c.id.desc())
            .limit(per_column)
        )
        cards = [to_lead_row(r) for r in conn.execute(newest_first).all()]
        columns.append(PipelineColumn(status=status, count=int(count), cards=cards))
    return columns
