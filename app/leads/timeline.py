"""A lead's whole story in one list, newest first: messages, notes, and status, score and
temperature changes. Each source is read through its own (contact, time) index and limited before
the merge, so a lead with 5,000 items costs what one with 50 costs."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, literal, select, union_all

from app.leads.models import LeadChange, Message
from app.notes.models import Note

messages = Message.__table__  # type: ignore[attr-defined]
notes = Note.__table__  # type: ignore[attr-defined]
changes = LeadChange.__table__  # type: ignore[attr-defined]

KIND_ORDER = {"message": 0, "note": 1, "change": 2}


@dataclass(frozen=True, slots=True)
class TimelineItem:
    kind: str  # message | note | change
    id: int
    at: datetime
    text: str  # message body, note body, or the changed field
    a: str | None  # direction | author name | old value
    b: str | None  # delivery status | note kind | new value
    c: str | None  # error | author kind | source
    d: str | None  # message type | — | actor

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.id}"


@dataclass(frozen=True, slots=True)
class TimelinePage:
    items: list[TimelineItem]
    next_cursor: str | None


def _cursor(item: TimelineItem) -> str:
    raw = f"{item.at.isoformat()}|{KIND_ORDER[item.kind]}|{item.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[datetime, int, int] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, order, ident = raw.split("|")
        return datetime.fromisoformat(at), int(order), int(ident)
    except (ValueError, UnicodeDecodeError):
        return None


def _branch(
    table: Any,
    kind: str,
    at_col: Any,
    cols: list[Any],
    contact_id: int,
    before: datetime | None,
    limit: int,
) -> Any:
    stmt = select(
        literal(kind).label("kind"), table.c.id.label("id"), at_col.label("at"), *cols
    ).where(table.c.contact_id == contact_id)
    if before is not None:
        stmt = stmt.where(at_col <= before)
    return stmt.order_by(at_col.desc(), table.c.id.desc()).limit(limit)


def timeline(
    conn: Connection,
    workspace_id: int,
    contact_id: int,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> TimelinePage:
    position = _decode(cursor)
    before = position[0] if position else None
    # Each branch over-fetches by the items that may share the cursor's timestamp.
    fetch = limit + 1 + (50 if position else 0)
    branches = [
        _branch(
            messages,
            "message",
            messages.c.sent_at,
            [
                messages.c.body.label("text"),
                messages.c.direction.label("a"),
                messages.c.status.label("b"),
                messages.c.error.label("c"),
                messages.c.message_type.label("d"),
            ],
            contact_id,
            before,
            fetch,
        ).where(messages.c.workspace_id == workspace_id),
        _branch(
            notes,
            "note",
            notes.c.created_at,
            [
                notes.c.body.label("text"),
                notes.c.author_name.label("a"),
                notes.c.kind.label("b"),
                notes.c.author_kind.label("c"),
                literal(None).label("d"),
            ],
            contact_id,
            before,
            fetch,
        ).where(notes.c.workspace_id == workspace_id),
        _branch(
            changes,
            "change",
            changes.c.created_at,
            [
                changes.c.field.label("text"),
                changes.c.old_value.label("a"),
                changes.c.new_value.label("b"),
                changes.c.source.label("c"),
                changes.c.actor.label("d"),
            ],
            contact_id,
            before,
            fetch,
        ).where(changes.c.workspace_id == workspace_id),
    ]
    merged = union_all(*[b.subquery().select() for b in branches]).subquery()
    rows = conn.execute(select(merged).order_by(merged.c.at.desc()).limit(fetch * 3))
    items = [
        TimelineItem(
            kind=r.kind, id=r.id, at=_aware(r.at), text=r.text or "", a=r.a, b=r.b, c=r.c, d=r.d
        )
        for r in rows
    ]
    items.sort(key=lambda i: (i.at, KIND_ORDER[i.kind], i.id), reverse=True)
    if position is not None:
        at, order, ident = position
        items = [i for i in items if (i.at, KIND_ORDER[i.kind], i.id) < (at, order, ident)]
    page = items[:limit]
    more = len(items) > limit
    return TimelinePage(items=page, next_cursor=_cursor(page[-1]) if more and page else None)


def _aware(value: Any) -> datetime:
    """The union loses the column type on SQLite: values come back as naive text or datetimes."""
    from datetime import UTC

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
